"""The noise floor (issue 13.3): a round score counts only above random updates of the
same norm, and only for what is not a copy of last round's published updates."""

from __future__ import annotations

import torch

from marketplace.contribution import SubsetUtility
from marketplace.contribution.noise_floor import NoiseFloorConfig, noise_floor

D = 400


def _game(updates: torch.Tensor, target: torch.Tensor) -> SubsetUtility:
    """U = -||params - target||^2 / D: a smooth loss whose descent direction is ``target``."""

    def neg_loss(params: torch.Tensor) -> torch.Tensor:
        return -((params - target) ** 2).sum(dim=1) / D

    return SubsetUtility(torch.zeros(D), updates, torch.ones(updates.shape[0]), neg_loss)


def _federation(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    target = torch.randn(D, generator=gen)
    # honest: a step towards the target plus their own data's noise
    honest = 0.3 * target + 0.3 * torch.randn(4, D, generator=gen)
    return target, honest


def test_trained_updates_pass_and_noise_of_any_scale_does_not() -> None:
    for seed in range(3):
        target, honest = _federation(seed)
        gen = torch.Generator().manual_seed(100 + seed)
        norm = float(honest[0].norm())
        riders = torch.stack(
            [
                torch.zeros(D),  # plain free rider
                0.01 * torch.randn(D, generator=gen),  # disguised, small
                torch.randn(D, generator=gen) * norm / D**0.5,  # disguised, honest-sized
            ]
        )
        verdicts = noise_floor(
            _game(torch.cat([honest, riders]), target), NoiseFloorConfig(), seed=seed
        )
        assert [v.passed for v in verdicts] == [True] * 4 + [False] * 3, verdicts
        assert all("noise floor" in (v.reason or "") for v in verdicts[4:])


def test_a_copy_of_a_published_update_fails_the_novelty_test() -> None:
    target, honest = _federation(7)
    gen = torch.Generator().manual_seed(8)
    last_round = 0.3 * target + 0.3 * torch.randn(4, D, generator=gen)
    copy = last_round[2] + 0.01 * torch.randn(D, generator=gen)
    updates = torch.cat([honest, copy.unsqueeze(0)])
    public = {i: torch.cat([last_round[:i], last_round[i + 1 :]]) for i in range(4)}
    public[4] = last_round
    verdicts = noise_floor(_game(updates, target), NoiseFloorConfig(), seed=1, public=public)
    assert [v.passed for v in verdicts] == [True, True, True, True, False]
    assert verdicts[4].signal_z > NoiseFloorConfig().z  # it helps: the first test passes
    assert "copy of public work" in (verdicts[4].reason or "")


def test_verdicts_are_deterministic_given_the_seed() -> None:
    target, honest = _federation(3)
    a = noise_floor(_game(honest, target), NoiseFloorConfig(samples=8), seed=5)
    b = noise_floor(_game(honest, target), NoiseFloorConfig(samples=8), seed=5)
    assert a == b
