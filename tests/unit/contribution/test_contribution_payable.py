"""Payable scores, fixed-point encoding, scattering to all trainers, accumulation."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from marketplace.contribution import (
    accumulate,
    round_scores,
    scatter_to_all,
    to_fixed_point,
    to_payable,
)
from marketplace.errors import ConfigError


def test_to_payable_clips_negatives_per_round() -> None:
    out = to_payable(torch.tensor([0.2, -0.1, 0.0, 1e-9], dtype=torch.float64))
    assert out.tolist() == [0.2, 0.0, 0.0, 1e-9]
    with pytest.raises(ConfigError):
        to_payable(torch.tensor([float("nan")]))


@given(st.lists(st.integers(min_value=0, max_value=10**12), max_size=20))
def test_fixed_point_round_trips_exact_micro_units(micros: list[int]) -> None:
    values = torch.tensor([m / 1e6 for m in micros], dtype=torch.float64)
    assert to_fixed_point(values) == micros


def test_fixed_point_rounds_half_up_and_refuses_negatives() -> None:
    assert to_fixed_point([0.0000005, 0.0000004, 1.5], scale=1e6) == [1, 0, 1_500_000]
    assert to_fixed_point([2.5], scale=1) == [3]
    with pytest.raises(ConfigError, match="to_payable"):
        to_fixed_point([-0.1])
    with pytest.raises(ConfigError, match="uint256"):
        to_fixed_point([1e80], scale=1e6)


def test_scatter_gives_outliers_zero() -> None:
    out = scatter_to_all(torch.tensor([0.5, 0.25]), [False, True, False, True])
    assert out.tolist() == [0.0, 0.5, 0.0, 0.25]
    with pytest.raises(ConfigError, match="inlier mask"):
        scatter_to_all(torch.tensor([0.5]), [True, True])


def test_accumulate_is_pure_and_adds_per_trainer() -> None:
    old = {"0xa": 10, "0xb": 5}
    new = accumulate(old, round_scores(["0xb", "0xc"], [3, 7]))
    assert new == {"0xa": 10, "0xb": 8, "0xc": 7}
    assert old == {"0xa": 10, "0xb": 5}
    with pytest.raises(ConfigError, match="negative"):
        accumulate(old, {"0xa": -1})
    with pytest.raises(ConfigError, match="repeat"):
        round_scores(["0xa", "0xa"], [1, 2])


@given(st.lists(st.dictionaries(st.sampled_from("abcde"), st.integers(0, 1000)), max_size=6))
def test_accumulated_total_is_sum_of_rounds(rounds: list[dict[str, int]]) -> None:
    totals: dict[str, int] = {}
    for r in rounds:
        totals = accumulate(totals, r)
    assert sum(totals.values()) == sum(sum(r.values()) for r in rounds)
