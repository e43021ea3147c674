"""Krum, Multi-Krum and 3-sigma-Krum: selection properties and stated assumptions."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import marketplace.robust.stats as stats
from marketplace.errors import AssumptionViolated
from marketplace.robust import krum, multi_krum, sigma_krum
from marketplace.robust.krum import krum_scores

SETTINGS = settings(max_examples=40, deadline=None)


def cluster_with_outlier(seed: int, n: int, d: int, scale: float) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    honest = torch.randn(n - 1, d, generator=gen)
    far = torch.full((1, d), scale)
    return torch.cat([honest, far])


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(5, 16),
    d=st.integers(2, 30),
    scale=st.floats(50.0, 1e4),
)
def test_krum_never_selects_a_far_outlier(seed: int, n: int, d: int, scale: float) -> None:
    updates = cluster_with_outlier(seed, n, d, scale)
    f = (n - 3) // 2
    chosen = krum(updates, f=f)
    assert chosen.n_inliers == 1 and not bool(chosen.inlier_mask[-1])
    picked = int(chosen.inlier_mask.nonzero()[0])
    assert torch.equal(chosen.aggregate, updates[picked])
    multi = multi_krum(updates, f=f)
    assert multi.n_inliers == n - f and not bool(multi.inlier_mask[-1])
    assert n - 1 in multi.reason


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(5, 12), d=st.integers(2, 20))
def test_krum_is_permutation_equivariant(seed: int, n: int, d: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    updates = torch.randn(n, d, generator=gen)
    perm = torch.randperm(n, generator=gen)
    torch.testing.assert_close(
        krum_scores(updates[perm], n - 3), krum_scores(updates, n - 3)[perm], rtol=1e-5, atol=1e-5
    )
    assert torch.equal(krum(updates[perm], f=1).aggregate, krum(updates, f=1).aggregate)


def test_krum_scores_sum_nearest_squared_distances() -> None:
    updates = torch.tensor([[0.0], [1.0], [3.0], [10.0]])
    scores = krum_scores(updates, 2)
    torch.testing.assert_close(scores, torch.tensor([1 + 9, 1 + 4, 4 + 9, 49 + 81.0]).double())


def test_krum_uses_one_cdist_over_the_whole_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, ...]] = []
    real = torch.cdist

    def spy(x1: torch.Tensor, x2: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        calls.append(tuple(x1.shape))
        return real(x1, x2, *args, **kwargs)

    monkeypatch.setattr(stats.torch, "cdist", spy)
    multi_krum(torch.randn(11, 7, generator=torch.Generator().manual_seed(0)), f=2)
    assert calls == [(11, 7)]


def test_multi_krum_weights_selected_by_sample_count() -> None:
    updates = torch.tensor([[0.0], [0.1], [0.2], [0.3], [50.0]])
    result = multi_krum(updates, torch.tensor([1.0, 1.0, 1.0, 5.0, 100.0]), f=1, m=4)
    assert result.inlier_mask.tolist() == [True, True, True, True, False]
    torch.testing.assert_close(result.aggregate, torch.tensor([(0.1 + 0.2 + 1.5) / 8]))


@pytest.mark.parametrize(
    ("n", "f", "m"), [(5, 2, None), (4, 1, None), (3, 1, None), (9, 2, 0), (9, 2, 10)]
)
def test_krum_refuses_too_few_updates(n: int, f: int, m: int | None) -> None:
    updates = torch.randn(n, 3, generator=torch.Generator().manual_seed(1))
    with pytest.raises(AssumptionViolated, match=r"Blanchard et al\. 2017"):
        multi_krum(updates, f=f, m=m)


def test_krum_message_names_assumption_and_fix() -> None:
    with pytest.raises(AssumptionViolated) as info:
        krum(torch.randn(5, 3), f=2)
    assert str(info.value) == (
        "Krum needs n >= 2f + 3 (Blanchard et al. 2017); got n=5, f=2: lower f or add trainers"
    )


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(6, 30), d=st.integers(5, 60))
def test_sigma_krum_drops_an_update_scaled_by_ten(seed: int, n: int, d: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    mean = torch.randn(d, generator=gen)
    honest = mean + 0.5 * torch.randn(n - 1, d, generator=gen)
    updates = torch.cat([honest, 10 * honest[:1]])
    result = sigma_krum(updates)
    assert not bool(result.inlier_mask[-1])
    assert "Krum reference" in result.reason[n - 1]
    kept = result.inlier_mask
    torch.testing.assert_close(result.aggregate, updates[kept].mean(dim=0))


def test_sigma_krum_threshold_is_mean_plus_k_sigma_of_reference_distances() -> None:
    updates = torch.tensor([[0.0], [0.0], [1.0], [2.0], [9.0]])
    # h = ceil(5/2) - 1 = 2: rows 0 and 1 (score 0+1) are best; reference = 0
    dist = torch.tensor([0.0, 0.0, 1.0, 2.0, 9.0], dtype=torch.float64)
    bound = float(dist.mean() + dist.std())
    result = sigma_krum(updates, k=1.0)
    torch.testing.assert_close(result.scores, dist)
    assert result.inlier_mask.tolist() == [bool(v <= bound) for v in dist]
    assert sigma_krum(updates, k=3.0).n_inliers == 5
    assert sigma_krum(updates, k=0.0).n_inliers == 4  # only 9 > mean 2.4


def test_sigma_krum_assumptions() -> None:
    with pytest.raises(AssumptionViolated, match=r"n >= 3 .*got n=2"):
        sigma_krum(torch.randn(2, 4))
    with pytest.raises(AssumptionViolated, match="k >= 0"):
        sigma_krum(torch.randn(5, 4), k=-1.0)
    with pytest.raises(AssumptionViolated, match="k >= 0"):
        sigma_krum(torch.randn(5, 4), k=math.nan)
