"""TMC- and GTG-Shapley: convergence to exact values, determinism, truncation, budgets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from marketplace.contribution import (
    CallableUtility,
    GTGConfig,
    TMCConfig,
    estimate,
    exact_shapley,
    gtg_shapley,
    members,
    tmc_shapley,
)
from marketplace.contribution.gtg import _PermutationSource
from marketplace.contribution.sampling import permutation_marginals, window_disagreement
from marketplace.errors import ConfigError

QUALITY = [0.30, 0.22, 0.15, 0.10, 0.06, 0.0]


def _saturating_game() -> CallableUtility:
    """Diminishing returns (like accuracy): U(S) = 1 - prod(1 - q_i); player 5 is null."""

    def fn(mask: int) -> float:
        keep = 1.0
        for i in members(mask):
            keep *= 1.0 - QUALITY[i]
        return 1.0 - keep

    return CallableUtility(fn, len(QUALITY))


def _exact() -> torch.Tensor:
    return exact_shapley(_saturating_game()).values


def test_gtg_converges_to_exact_on_small_n() -> None:
    cfg = GTGConfig(within_eps=None, min_permutations=200, max_permutations=400)
    res = gtg_shapley(_saturating_game(), cfg, seed=1)
    assert torch.allclose(res.values, _exact(), atol=0.01)
    assert res.values[5].item() == pytest.approx(0.0, abs=1e-12)


def test_default_estimator_ranks_like_exact() -> None:
    res = estimate(_saturating_game(), seed=3)
    assert torch.argsort(res.values, descending=True).tolist() == [0, 1, 2, 3, 4, 5]
    assert res.details["stop"] in {"converged", "confident"}
    assert torch.allclose(res.values, _exact(), atol=0.02)


def test_tmc_converges_to_exact_on_small_n() -> None:
    cfg = TMCConfig(tolerance=None, min_permutations=400, max_permutations=400)
    res = tmc_shapley(_saturating_game(), cfg, seed=2)
    assert torch.allclose(res.values, _exact(), atol=0.01)
    assert res.details["permutations"] == 400


@pytest.mark.parametrize("run", [gtg_shapley, tmc_shapley])
def test_same_seed_same_values_other_seed_differs(run) -> None:
    a = run(_saturating_game(), seed=7)
    b = run(_saturating_game(), seed=7)
    c = run(_saturating_game(), seed=8)
    assert torch.equal(a.values, b.values) and a.evaluations == b.evaluations
    assert not torch.equal(a.values, c.values)


def test_round_truncation_pays_nothing_for_a_flat_round() -> None:
    u = CallableUtility(lambda m: 0.80 + 0.001 * bin(m).count("1"), 5)
    res = gtg_shapley(u, GTGConfig(round_eps=0.01))
    assert res.values.tolist() == [0.0] * 5
    assert res.evaluations == 2 and res.details["stop"] == "round_truncated"


def test_within_round_truncation_skips_evaluations() -> None:
    """Player 0 alone reaches U(all): after it, nothing more in that permutation is evaluated."""
    u = CallableUtility(lambda m: 1.0 if m & 1 else 0.1 * bin(m).count("1") / 5, 6)
    perms = np.array([[0, 1, 2, 3, 4, 5], [1, 0, 2, 3, 4, 5]])
    marg, cut = permutation_marginals(u, perms, 0.0, 1.0, threshold=1e-3)
    assert cut.tolist() == [1, 2]
    assert marg[0].tolist() == [1.0, 0, 0, 0, 0, 0]
    assert u.evaluations == 3  # {0}, {1}, {1, 0}


def test_cyclic_design_puts_every_player_in_every_position_once_per_sweep() -> None:
    n = 7
    source = _PermutationSource(n, np.random.default_rng(0), "cyclic", antithetic=True)
    perms = source.take(2 * n)
    assert perms.shape == (2 * n, n)
    forward = perms[0::2]
    for position in range(n):
        assert sorted(forward[:, position].tolist()) == list(range(n))
    assert np.array_equal(perms[1::2], forward[:, ::-1])


def test_antithetic_reverses_of_rotations_cost_no_extra_evaluation() -> None:
    n = 6
    source = _PermutationSource(n, np.random.default_rng(0), "cyclic", antithetic=True)
    u = CallableUtility(lambda m: float(bin(m).count("1")), n)
    permutation_marginals(u, source.take(2 * n), 0.0, float(n), None)
    assert u.evaluations == n * (n - 1) + 1


def test_max_evaluations_caps_the_cost() -> None:
    game = _saturating_game()
    res = gtg_shapley(game, GTGConfig(within_eps=None, max_evaluations=30, confidence_z=None))
    assert res.details["stop"] == "max_evaluations"
    assert 30 - 2 * (game.n - 1) < res.evaluations <= 30


def test_window_rule_normalises_by_the_whole_vector() -> None:
    est = np.array([[1.0, 0.0], [1.0, 1e-9], [1.02, -1e-9]])
    assert window_disagreement(est, 3) == pytest.approx(0.02 / 1.02, rel=1e-6)
    assert window_disagreement(est, 4) == float("inf")


def test_bad_config_raises() -> None:
    with pytest.raises(ConfigError):
        GTGConfig(block=3)
    with pytest.raises(ConfigError):
        GTGConfig(min_permutations=50, max_permutations=10)
    with pytest.raises(ConfigError):
        GTGConfig(design="sobol")  # type: ignore[arg-type]
