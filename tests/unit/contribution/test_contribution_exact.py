"""Exact Shapley and leave-one-out on constructed games with known answers."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.contribution import (
    CallableUtility,
    exact_shapley,
    full_mask,
    leave_one_out,
    members,
)
from marketplace.errors import AssumptionViolated


def _random_game(n: int, table: list[float]) -> CallableUtility:
    return CallableUtility(lambda m: table[m] if m else 0.0, n)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=1, max_value=6).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(st.floats(-10, 10, allow_nan=False), min_size=1 << n, max_size=1 << n),
        )
    )
)
def test_efficiency_on_arbitrary_games(game: tuple[int, list[float]]) -> None:
    n, table = game
    u = _random_game(n, table)
    res = exact_shapley(u)
    assert res.values.sum().item() == pytest.approx(table[full_mask(n)] - 0.0, abs=1e-9)
    assert res.evaluations == 1 << n


def test_symmetry_and_null_player() -> None:
    """Players 0 and 1 are interchangeable, player 3 never changes the utility."""
    weight = [3.0, 3.0, 5.0, 0.0]

    def fn(mask: int) -> float:
        s = sum(weight[i] for i in members(mask))
        return float(s >= 6.0) + 0.1 * s**0.5

    res = exact_shapley(CallableUtility(fn, 4))
    assert res.values[0].item() == pytest.approx(res.values[1].item(), abs=1e-12)
    assert res.values[3].item() == pytest.approx(0.0, abs=1e-12)
    assert res.values[2].item() > res.values[0].item()


def test_matches_permutation_definition() -> None:
    """Shapley = average marginal over all n! orders (independent formula)."""
    n = 4
    table = [((m * 2654435761) % 97) / 10.0 for m in range(1 << n)]
    table[0] = 0.0
    expected = torch.zeros(n, dtype=torch.float64)
    orders = list(itertools.permutations(range(n)))
    for order in orders:
        mask = 0
        for i in order:
            expected[i] += table[mask | (1 << i)] - table[mask]
            mask |= 1 << i
    expected /= len(orders)
    assert torch.allclose(exact_shapley(_random_game(n, table)).values, expected, atol=1e-12)


def test_refuses_more_than_twelve_players() -> None:
    u = CallableUtility(lambda m: 0.0, 13)
    with pytest.raises(AssumptionViolated, match=r"n <= 12.*GTG") as err:
        exact_shapley(u)
    assert "\n" not in str(err.value)
    assert u.evaluations == 0


def test_loo_on_additive_game_equals_weights() -> None:
    weights = [0.5, -1.0, 2.0, 0.0, 3.25]
    u = CallableUtility(lambda m: sum(weights[i] for i in members(m)), len(weights))
    res = leave_one_out(u)
    assert res.values.tolist() == pytest.approx(weights)
    assert res.evaluations == len(weights) + 1
    assert exact_shapley(u).values.tolist() == pytest.approx(weights)


def test_loo_underpays_a_duplicated_player() -> None:
    """Two copies of the same data: each is redundant given the other, so LOO gives 0."""
    u = CallableUtility(lambda m: float(bool(m & 0b011)) + float(bool(m & 0b100)), 3)
    loo = leave_one_out(u).values
    shap = exact_shapley(u).values
    assert loo[:2].tolist() == [0.0, 0.0]
    assert shap[:2].tolist() == pytest.approx([0.5, 0.5])
