"""SubsetUtility / CallableUtility: FedAvg coalitions, memoisation, batching, errors."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from marketplace.contribution import CallableUtility, SubsetUtility, full_mask, mask_of, members
from marketplace.contribution.utility import masks_to_matrix
from marketplace.errors import ConfigError, LedgerLearnError


def _recording_evaluator(calls: list[torch.Tensor]):
    """Utility = sum of parameters; records every batch it is given."""

    def evaluate_batch(params: torch.Tensor) -> torch.Tensor:
        calls.append(params.clone())
        return params.sum(dim=1)

    return evaluate_batch


def _fixture(n: int = 4, d: int = 3, chunk_size: int | None = None):
    gen = torch.Generator().manual_seed(0)
    g = torch.randn(d, generator=gen)
    updates = torch.randn(n, d, generator=gen)
    weights = torch.arange(1, n + 1, dtype=torch.float64)
    calls: list[torch.Tensor] = []
    u = SubsetUtility(g, updates, weights, _recording_evaluator(calls), chunk_size=chunk_size)
    return g, updates, weights, u, calls


def test_mask_helpers_round_trip() -> None:
    assert members(mask_of([0, 3, 7])) == [0, 3, 7]
    assert full_mask(5) == 0b11111
    m = masks_to_matrix([mask_of([0, 2]), 0, full_mask(3)], 3)
    assert m.tolist() == [[True, False, True], [False, False, False], [True, True, True]]
    big = mask_of([0, 99])
    row = masks_to_matrix([big], 100)[0]
    assert row.sum() == 2 and bool(row[0]) and bool(row[99])


def test_params_are_global_plus_the_coalitions_share_of_the_fedavg_step() -> None:
    g, updates, weights, u, _ = _fixture()
    subset = mask_of([1, 3])
    w = weights[[1, 3]].to(torch.float32)
    expected = g + (w[0] * updates[1] + w[1] * updates[3]) / weights.sum().item()
    assert torch.allclose(u.params_of([subset])[0], expected, atol=1e-6)
    assert torch.equal(u.params_of([0])[0], g)
    fedavg = g + (weights.to(torch.float32)[:, None] * updates).sum(0) / weights.sum().item()
    assert torch.allclose(u.params_of([full_mask(4)])[0], fedavg, atol=1e-6)


def test_mean_step_is_the_coalitions_own_fedavg() -> None:
    g, updates, weights, _, _ = _fixture()
    u = SubsetUtility(g, updates, weights, lambda p: p.sum(dim=1), step="mean")
    w = weights[[1, 3]].to(torch.float32)
    expected = g + (w[0] * updates[1] + w[1] * updates[3]) / w.sum()
    assert torch.allclose(u.params_of([mask_of([1, 3])])[0], expected, atol=1e-6)


def test_zero_update_is_a_null_player_under_the_share_step() -> None:
    """Issue 13.3: under FedAvg(S) a zero update shrinks a coalition's step and is paid
    for it; under the share step it changes no coalition, so exact Shapley gives it 0."""
    from marketplace.contribution import exact_shapley

    gen = torch.Generator().manual_seed(3)
    target = torch.randn(5, generator=gen)
    updates = torch.randn(4, 5, generator=gen) * 3.0
    updates[2] = 0.0

    def loss(params: torch.Tensor) -> torch.Tensor:  # overshooting steps: shrinking helps
        return -((params - target) ** 2).sum(dim=1)

    share = exact_shapley(SubsetUtility(torch.zeros(5), updates, [1, 1, 1, 1], loss))
    mean = exact_shapley(
        SubsetUtility(torch.zeros(5), updates, [1, 1, 1, 1], loss, step="mean")
    )
    assert share.values[2].item() == 0.0
    assert abs(mean.values[2].item()) > 1e-3


def test_no_subset_is_evaluated_twice() -> None:
    _, _, _, u, calls = _fixture(n=4)
    first = u.values([0, 1, 2, 1, 3])
    assert u.evaluations == 4
    again = u.values([3, 2, 1, 0, 15])
    assert u.evaluations == 5
    assert again[:3] == [first[4], first[2], first[1]]
    rows = torch.cat(calls)
    assert rows.shape[0] == 5
    assert torch.unique(rows, dim=0).shape[0] == 5


def test_uncached_subsets_go_in_chunks_of_one_call_each() -> None:
    _, _, _, u, calls = _fixture(n=4, chunk_size=3)
    u.values(list(range(16)))
    assert [c.shape[0] for c in calls] == [3, 3, 3, 3, 3, 1]
    assert u.batch_calls == 6


def test_mapping_evaluator_selects_metric() -> None:
    g = torch.zeros(2)
    updates = torch.tensor([[1.0, 0.0], [0.0, 2.0]])

    def evaluate_batch(params: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"accuracy": params[:, 0], "loss": params[:, 1]}

    acc = SubsetUtility(g, updates, [1, 1], evaluate_batch, metric="accuracy")
    neg = SubsetUtility(g, updates, [1, 1], evaluate_batch, metric="neg_loss")
    assert acc.values([3]) == [0.5]
    assert neg.values([3]) == [-1.0]


def test_callable_utility_counts_and_memoises() -> None:
    seen: Counter[int] = Counter()

    def fn(mask: int) -> float:
        seen[mask] += 1
        return float(bin(mask).count("1"))

    u = CallableUtility(fn, 3)
    assert u.values([7, 7, 1]) == [3.0, 3.0, 1.0]
    assert u.value(7) == 3.0
    assert max(seen.values()) == 1 and u.evaluations == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"weights": [1.0, 0.0]},
        {"weights": [1.0]},
        {"updates": torch.tensor([[float("nan"), 0.0], [0.0, 0.0]])},
        {"global_params": torch.zeros(3)},
        {"metric": "f1"},
    ],
)
def test_bad_inputs_raise_config_error(kwargs: dict) -> None:
    args = {
        "global_params": torch.zeros(2),
        "updates": torch.zeros(2, 2),
        "weights": [1.0, 2.0],
        "evaluate_batch": lambda p: p.sum(1),
    }
    args.update(kwargs)
    with pytest.raises(ConfigError):
        SubsetUtility(**args)


def test_out_of_range_mask_and_wrong_length_result_raise() -> None:
    u = CallableUtility(lambda m: 0.0, 2)
    with pytest.raises(LedgerLearnError, match="outside"):
        u.values([4])
    bad = SubsetUtility(torch.zeros(2), torch.zeros(2, 2), [1, 1], lambda p: torch.zeros(1))
    with pytest.raises(ConfigError, match="one per row"):
        bad.values([0, 1, 2])
