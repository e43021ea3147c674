"""Properties every rule must keep, checked with hypothesis, plus the basic rules
(FedAvg, coordinate-wise median, trimmed mean, norm clipping)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from marketplace.errors import AssumptionViolated, UpdateRejected
from marketplace.robust import AGGREGATORS, aggregate, fedavg, median, norm_clip, trimmed_mean
from marketplace.robust.stats import coordinate_median, pairwise_sq_distances

SETTINGS = settings(max_examples=30, deadline=None)

# parameters that make every registered rule applicable to n >= 5 updates
PARAMS: dict[str, dict] = {
    "fedavg": {},
    "median": {},
    "trimmed_mean": {"beta": 0.2},
    "krum": {"f": 1},
    "multi_krum": {"f": 1},
    "sigma_krum": {"k": 1.0},
    "norm_clip": {},
    "foolsgold": {},
    "cosine_check": {},
    "default": {},
}


@st.composite
def stacks(draw: st.DrawFn, min_n: int = 1, max_n: int = 12) -> torch.Tensor:
    """A float32 [n, d] stack; small integer-valued entries make ties and duplicates likely."""
    n = draw(st.integers(min_n, max_n))
    d = draw(st.integers(1, 6))
    values = st.one_of(
        st.integers(-4, 4).map(float),
        st.floats(-1e3, 1e3, allow_nan=False, width=32),
    )
    return torch.from_numpy(draw(arrays(np.float32, (n, d), elements=values)))


def random_stack(seed: int, n: int, d: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen) + torch.randn(d, generator=gen)


@pytest.mark.parametrize("name", sorted(PARAMS))
@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(5, 14), d=st.integers(2, 40))
def test_every_rule_returns_consistent_result(name: str, seed: int, n: int, d: int) -> None:
    updates = random_stack(seed, n, d)
    before = updates.clone()
    state = updates.mean(dim=0) if name == "cosine_check" else None
    result = aggregate(name, updates, state=state, **PARAMS[name])
    assert result.inlier_mask.dtype == torch.bool and result.inlier_mask.shape == (n,)
    assert result.aggregate.shape == (d,) and result.aggregate.dtype == updates.dtype
    assert result.scores.shape == (n,)
    assert set(result.reason) == set(result.excluded)
    assert result.n_inliers >= 1
    assert torch.isfinite(result.aggregate).all()
    if result.weights is not None:
        assert result.weights.shape == (n,)
        assert float(result.weights.sum()) == pytest.approx(1.0)
        assert bool((result.weights[~result.inlier_mask] == 0).all())
    assert torch.equal(updates, before), "rules must not modify their input"
    again = aggregate(name, updates, state=state, **PARAMS[name])
    assert torch.equal(again.aggregate, result.aggregate), "rules must be deterministic"
    assert torch.equal(again.inlier_mask, result.inlier_mask)


def test_registry_names() -> None:
    expected = {"fedavg", "median", "trimmed_mean", "krum", "multi_krum", "sigma_krum"}
    expected |= {"foolsgold", "default"}
    assert expected <= set(AGGREGATORS)
    assert set(PARAMS) == set(AGGREGATORS)


@SETTINGS
@given(row=arrays(np.float32, st.integers(1, 30), elements=st.floats(-1e4, 1e4, width=32)))
def test_fedavg_of_identical_updates_is_that_update(row: np.ndarray) -> None:
    n = 7
    updates = torch.from_numpy(row).repeat(n, 1)
    weights = torch.arange(1, n + 1, dtype=torch.float64)
    for w in (None, weights):
        result = fedavg(updates, w)
        torch.testing.assert_close(result.aggregate, torch.from_numpy(row), rtol=1e-5, atol=1e-3)
        assert bool(result.inlier_mask.all())


def test_fedavg_weights_by_sample_count() -> None:
    updates = torch.tensor([[0.0, 0.0], [4.0, 8.0]])
    result = fedavg(updates, torch.tensor([3.0, 1.0]))
    torch.testing.assert_close(result.aggregate, torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(result.weights, torch.tensor([0.75, 0.25], dtype=torch.float64))


@SETTINGS
@given(updates=stacks())
def test_median_and_trimmed_mean_stay_within_coordinate_range(updates: torch.Tensor) -> None:
    lo, hi = updates.min(dim=0).values, updates.max(dim=0).values
    for result in (median(updates), trimmed_mean(updates, beta=0.2), trimmed_mean(updates)):
        agg = result.aggregate
        assert bool((agg >= lo - 1e-3).all()) and bool((agg <= hi + 1e-3).all())


@SETTINGS
@given(updates=stacks())
def test_median_matches_numpy_and_ignores_row_order(updates: torch.Tensor) -> None:
    expected = np.median(updates.numpy().astype(np.float64), axis=0)
    np.testing.assert_allclose(median(updates).aggregate.numpy(), expected, rtol=1e-6, atol=1e-3)
    flipped = median(updates.flip(0)).aggregate
    assert torch.equal(flipped, median(updates).aggregate)


def test_trimmed_mean_drops_extremes_per_coordinate() -> None:
    updates = torch.tensor([[1.0, -50.0], [2.0, 2.0], [3.0, 3.0], [100.0, 4.0]])
    result = trimmed_mean(updates, beta=0.25)
    torch.testing.assert_close(result.aggregate, torch.tensor([2.5, 2.5]))
    # row 3 is trimmed in coordinate 0 (largest) and coordinate 1 (largest 4.0)
    assert float(result.scores[3]) == pytest.approx(1.0)
    assert torch.equal(trimmed_mean(updates, beta=0.0).aggregate, updates.mean(dim=0))


def test_norm_clip_bounds_every_update() -> None:
    updates = torch.tensor([[3.0, 4.0], [0.6, 0.8], [30.0, 40.0]])
    result = norm_clip(updates)
    # median norm 5: the third update is scaled to norm 5, the others kept
    torch.testing.assert_close(result.aggregate, torch.tensor([2.2, 2.9333333]))
    torch.testing.assert_close(result.scores, torch.tensor([5.0, 1.0, 50.0], dtype=torch.float64))


def test_pairwise_distances_match_brute_force() -> None:
    x = random_stack(3, 9, 17)
    brute = ((x[:, None, :].double() - x[None, :, :].double()) ** 2).sum(-1)
    torch.testing.assert_close(pairwise_sq_distances(x), brute, rtol=1e-5, atol=1e-5)
    far = x + 1e4  # a large shared component must not cost precision
    brute_far = ((far[:, None, :].double() - far[None, :, :].double()) ** 2).sum(-1)
    torch.testing.assert_close(pairwise_sq_distances(far), brute_far, rtol=1e-5, atol=1e-4)
    sq = pairwise_sq_distances(torch.cat([x, x[:2]]))
    assert float(sq[0, 9]) == pytest.approx(0.0, abs=1e-5)
    assert bool((sq.diagonal() == 0).all())


def test_coordinate_median_even_n_averages_middle_pair() -> None:
    x = torch.tensor([[1.0], [2.0], [10.0], [4.0]])
    assert float(coordinate_median(x)[0]) == 3.0


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda u: median(u, f=3), "n >= 2f + 1 (Yin et al. 2018); got n=5, f=3"),
        (lambda u: trimmed_mean(u, beta=0.5), "0 <= beta < 0.5"),
        (lambda u: fedavg(u, torch.tensor([1.0, -1.0, 1.0, 1.0, 1.0])), "non-negative"),
        (lambda u: fedavg(u, torch.ones(3)), "one weight per update"),
        (lambda u: fedavg(u, torch.zeros(5)), "positive weight"),
        (lambda u: norm_clip(u, bound=0.0), "positive finite bound"),
    ],
)
def test_assumption_violations_name_the_assumption(call, needle: str) -> None:
    with pytest.raises(AssumptionViolated, match=re.escape(needle)):
        call(random_stack(0, 5, 3))


@pytest.mark.parametrize("name", ["fedavg", "median", "trimmed_mean", "krum", "sigma_krum"])
def test_plain_rules_refuse_nonfinite_and_malformed(name: str) -> None:
    updates = random_stack(1, 7, 4)
    updates[2, 1] = float("nan")
    updates[5, 0] = float("inf")
    params = {"f": 1} if name == "krum" else {}
    with pytest.raises(UpdateRejected, match=r"NaN/inf in updates \[2, 5\]"):
        aggregate(name, updates, **params)
    with pytest.raises(UpdateRejected, match="non-empty"):
        aggregate(name, torch.zeros(3), **params)
    with pytest.raises(UpdateRejected, match="floating-point"):
        aggregate(name, torch.ones(5, 2, dtype=torch.int64), **params)
