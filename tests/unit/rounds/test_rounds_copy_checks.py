"""Copycats (issue 13.2): of byte-identical updates, the earliest committed is accepted
and the copies are rejected before any rule runs, whatever the rule."""

from __future__ import annotations

import pytest
import torch

from marketplace.rounds import RoundConfig, RoundState, run_round
from marketplace.rounds.hyper import HyperConfig

D = 12


def _updates() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(D, generator=gen) for _ in range(5)]


@pytest.mark.parametrize("rule", ["default", "fedavg", "median"])
def test_the_earliest_committer_keeps_its_update(rule: str) -> None:
    updates = _updates()
    updates[1] = updates[3].clone()  # trainer 1 copies trainer 3, which committed first
    order = [1, 4, 2, 0, 3]  # commit positions: trainer 3 first, trainer 1 after it
    outcome = run_round(
        torch.zeros(D),
        updates,
        None,
        RoundConfig(rule=rule),
        RoundState.initial(HyperConfig()),
        commit_order=order,
    )
    assert outcome.rejected_mask == [False, True, False, False, False]
    assert "trainer 3" in outcome.rejections[1] and "copycat" in outcome.rejections[1]
    assert 3 not in outcome.rejections and 3 not in outcome.exclusions


def test_without_a_commit_order_the_lower_index_keeps_it() -> None:
    updates = _updates()
    updates[4] = updates[2].clone()
    outcome = run_round(
        torch.zeros(D), updates, None, RoundConfig(rule="fedavg"), RoundState.initial(HyperConfig())
    )
    assert list(outcome.rejections) == [4]
