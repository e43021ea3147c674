"""FoolsGold (Sybil dampening) and the cross-round cosine check."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.errors import AssumptionViolated
from marketplace.robust import FoolsGoldHistory, aggregate, cosine_check, foolsgold

SETTINGS = settings(max_examples=30, deadline=None)


def honest_and_clones(seed: int, n_honest: int, n_clones: int, d: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    shared = torch.randn(d, generator=gen)
    honest = 0.5 * shared + torch.randn(n_honest, d, generator=gen)
    poison = torch.randn(d, generator=gen)
    clones = poison + 1e-3 * torch.randn(n_clones, d, generator=gen)
    return torch.cat([honest, clones])


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    n_honest=st.integers(3, 12),
    n_clones=st.integers(2, 8),
    d=st.integers(20, 80),
)
def test_foolsgold_gives_clones_lower_weight_than_honest(
    seed: int, n_honest: int, n_clones: int, d: int
) -> None:
    updates = honest_and_clones(seed, n_honest, n_clones, d)
    result = foolsgold(updates)
    assert result.weights is not None
    clone_w = result.weights[n_honest:]
    honest_w = result.weights[:n_honest]
    assert float(clone_w.max()) < float(honest_w.max())
    assert float(clone_w.max()) == 0.0
    assert not bool(result.inlier_mask[n_honest:].any())
    assert all("Sybil-like" in result.reason[i] for i in range(n_honest, n_honest + n_clones))


def test_foolsgold_history_accumulates_per_client_and_is_not_mutated() -> None:
    gen = torch.Generator().manual_seed(7)
    ids = ["alice", "bob", "carol", "dave"]
    first = torch.randn(4, 10, generator=gen)
    r1 = foolsgold(first, client_ids=ids)
    history = r1.state
    assert isinstance(history, FoolsGoldHistory)
    snapshot = {k: v.clone() for k, v in history.sums.items()}
    second = torch.randn(4, 10, generator=gen)
    order = [2, 0, 3, 1]
    r2 = foolsgold(second[order], history=history, client_ids=[ids[i] for i in order])
    for k, v in history.sums.items():
        assert torch.equal(v, snapshot[k]), "the input history must not change"
    for i, cid in enumerate(ids):
        torch.testing.assert_close(r2.state.sums[cid], first[i] + second[i])


def test_foolsgold_history_catches_clones_that_hide_within_one_round() -> None:
    """Sybils that add independent noise each round still share a consistent direction;
    the accumulated history exposes them (the paper's motivation for H_i)."""
    gen = torch.Generator().manual_seed(3)
    d, honest_n, sybil_n = 200, 6, 4
    honest_dirs = torch.randn(honest_n, d, generator=gen)
    poison = torch.randn(d, generator=gen)
    history = None
    ids = [f"c{i}" for i in range(honest_n + sybil_n)]
    for _ in range(10):
        honest = honest_dirs + 3 * torch.randn(honest_n, d, generator=gen)
        sybils = poison + 3 * torch.randn(sybil_n, d, generator=gen)
        updates = torch.cat([honest, sybils])
        result = foolsgold(updates, history=history, client_ids=ids)
        history = result.state
    one_round = foolsgold(updates, use_history=False)
    assert result.weights is not None and one_round.weights is not None
    assert float(result.weights[honest_n:].max()) < float(result.weights[:honest_n].min())
    # within a single round the sybils' shared direction drowns in their noise
    assert float(one_round.weights[honest_n:].min()) == float(one_round.weights.max())


def test_foolsgold_assumptions() -> None:
    with pytest.raises(AssumptionViolated, match="n >= 2"):
        foolsgold(torch.randn(1, 5))
    with pytest.raises(AssumptionViolated, match="not all collinear"):
        foolsgold(torch.ones(4, 5))
    with pytest.raises(AssumptionViolated, match="distinct client id"):
        foolsgold(torch.randn(3, 5), client_ids=["a", "a", "b"])
    r = foolsgold(torch.randn(3, 5), client_ids=["a", "b", "c"])
    with pytest.raises(AssumptionViolated, match="start a new history"):
        foolsgold(torch.randn(3, 6), history=r.state, client_ids=["a", "b", "c"])


def test_cosine_check_flags_updates_against_previous_direction() -> None:
    gen = torch.Generator().manual_seed(5)
    previous = torch.randn(50, generator=gen)
    honest = previous + 0.5 * torch.randn(8, 50, generator=gen)
    flipped = -honest[:3]
    updates = torch.cat([honest, flipped])
    result = cosine_check(updates, previous_aggregate=previous)
    assert result.inlier_mask.tolist() == [True] * 8 + [False] * 3
    assert all("against" in result.reason[i] for i in (8, 9, 10))
    torch.testing.assert_close(result.aggregate, honest.mean(dim=0))
    assert torch.equal(result.state, result.aggregate)
    chained = aggregate("cosine_check", updates, state=result.state)
    assert chained.n_inliers == 8


@pytest.mark.parametrize("previous", [None, torch.zeros(4)])
def test_cosine_check_keeps_every_update_until_it_has_a_reference(
    previous: torch.Tensor | None,
) -> None:
    """The first round (or one after a round that kept nobody) has no direction to check
    against. The rule refused it and the round kept nobody, so the state never formed and
    no round of a cosine_check project ever kept anyone (red team: 0% paid). It now keeps
    all, and their mean is the next round's reference, which does filter."""
    updates = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    first = aggregate("cosine_check", updates, state=previous)
    assert first.n_inliers == 5
    torch.testing.assert_close(first.aggregate, updates.mean(dim=0))
    flipped = torch.cat([updates, -3.0 * first.state.unsqueeze(0)])
    assert aggregate("cosine_check", flipped, state=first.state).inlier_mask.tolist()[-1] is False


def test_cosine_check_refuses_a_malformed_reference() -> None:
    with pytest.raises(AssumptionViolated, match="skip the check on the first round"):
        aggregate("cosine_check", torch.randn(5, 4), state=torch.ones(3))
