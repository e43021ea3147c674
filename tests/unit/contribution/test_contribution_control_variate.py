"""The control-variate surrogate and the default estimator built on it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import marketplace.contribution.surrogate as surrogate
from marketplace.contribution import (
    CallableUtility,
    GTGConfig,
    SubsetUtility,
    estimate,
    exact_shapley,
    gtg_shapley,
    members,
)
from marketplace.contribution.surrogate import SurrogateBasis, feature_shapley, membership_of

N, D = 8, 12


def _quadratic_round() -> SubsetUtility:
    """U = -||g + FedAvg(S) - target||^2: exactly linear-plus-quadratic in the averaging
    coefficients, so the surrogate family contains U itself."""
    gen = torch.Generator().manual_seed(5)
    target = torch.randn(D, generator=gen, dtype=torch.float64)
    updates = target + 0.8 * torch.randn(N, D, generator=gen, dtype=torch.float64)
    weights = torch.arange(1, N + 1, dtype=torch.float64)

    def evaluate(params: torch.Tensor) -> torch.Tensor:
        return -((params - target) ** 2).sum(dim=1)

    return SubsetUtility(torch.zeros(D, dtype=torch.float64), updates, weights, evaluate)


def test_features_are_fedavg_coefficients() -> None:
    basis = SurrogateBasis.build(np.array([1.0, 3.0, 4.0]), np.eye(3))
    rows = basis.features(membership_of([0, 0b011, 0b111], 3))
    assert rows[0].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    coef = rows[:, 1:4]
    assert coef[1].tolist() == pytest.approx([0.25, 0.75, 0.0])
    assert coef[2].sum() == pytest.approx(1.0)


def test_sampled_feature_shapley_matches_enumeration(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(6, 4))
    basis = SurrogateBasis.build(rng.uniform(1, 5, 6), raw @ raw.T)
    exact = feature_shapley(basis, seed=0)
    monkeypatch.setattr(surrogate, "EXACT_SURROGATE_PLAYERS", 0)
    sampled = feature_shapley(basis, seed=0, permutations=6000)
    assert np.abs(sampled - exact).max() < 0.01
    assert exact.sum(axis=0) == pytest.approx(
        basis.features(np.ones((1, 6)))[0] - basis.features(np.zeros((1, 6)))[0]
    )


def test_control_variate_is_exact_when_the_surrogate_family_contains_u() -> None:
    exact = exact_shapley(_quadratic_round()).values
    u = _quadratic_round()
    res = gtg_shapley(u, GTGConfig(within_eps=None, min_permutations=4), seed=0)
    assert res.details["surrogate_r2"] == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(res.values, exact, rtol=1e-4, atol=1e-4 * float(exact.abs().max()))
    assert res.evaluations < 0.25 * 2**N


def test_control_variate_keeps_efficiency() -> None:
    u = _quadratic_round()
    res = gtg_shapley(u, GTGConfig(within_eps=None), seed=3)
    gain = res.details["v_all"] - res.details["v_empty"]
    assert res.values.sum().item() == pytest.approx(gain, rel=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_default_converges_to_exact_on_a_saturating_game(seed: int) -> None:
    quality = [0.30, 0.22, 0.15, 0.10, 0.06, 0.03, 0.12]

    def fn(mask: int) -> float:
        keep = 1.0
        for i in members(mask):
            keep *= 1.0 - quality[i]
        return 1.0 - keep

    exact = exact_shapley(CallableUtility(fn, len(quality))).values
    res = estimate(CallableUtility(fn, len(quality)), seed=seed)
    assert torch.allclose(res.values, exact, atol=0.01)
    many = gtg_shapley(
        CallableUtility(fn, len(quality)),
        GTGConfig(within_eps=None, min_permutations=1000, max_permutations=1000, confidence_z=None),
        seed=seed,
    )
    assert torch.allclose(many.values, exact, atol=0.003)


def test_paper_config_turns_our_additions_off() -> None:
    cfg = GTGConfig.paper()
    assert (cfg.design, cfg.antithetic, cfg.confidence_z, cfg.control_variate) == (
        "guided",
        False,
        None,
        False,
    )
