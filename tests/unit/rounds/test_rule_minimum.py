"""Each rule's minimum number of updates (issue 15): ``min_updates`` is what the rule
itself enforces (one fewer and it refuses, so the round keeps nobody), and the one-line
message names the minimum and the fix."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from marketplace.errors import AssumptionViolated
from marketplace.learning import ModelSpec
from marketplace.learning.rule_pin import PinnedRule
from marketplace.robust import AGGREGATORS, aggregate
from marketplace.robust.registry import min_updates
from marketplace.rounds.pinning import spec_rule, too_few_trainers

PARAMS: dict[str, dict[str, Any]] = {
    "krum": {"f": 1},
    "multi_krum": {"f": 1},
    "median": {"f": 2},
    "trimmed_mean": {"beta": 0.2},
}


@pytest.mark.parametrize("name", sorted(AGGREGATORS))
def test_min_updates_is_what_the_rule_enforces(name: str) -> None:
    params = PARAMS.get(name, {})
    need = min_updates(name, params)
    gen = torch.Generator().manual_seed(0)
    updates = torch.randn(need, 16, generator=gen)
    # the cosine check needs a past aggregate (the direction of this round's updates)
    state = updates.sum(dim=0) if name == "cosine_check" else None
    result = aggregate(name, updates, None, state, **params)  # runs on the minimum
    assert result.inlier_mask.shape == (need,)
    if need > 1:
        with pytest.raises(AssumptionViolated):
            aggregate(name, updates[: need - 1], None, state, **params)


def test_known_minimums() -> None:
    assert min_updates("default", {}) == 3
    assert min_updates("krum", {"f": 1}) == 5
    assert min_updates("median", {"f": 2}) == 5
    assert min_updates("fedavg", {}) == 1
    assert min_updates("foolsgold", {}) == 2


def test_too_few_trainers_says_the_minimum_and_the_fix() -> None:
    line = too_few_trainers("default", {}, 1)
    assert line is not None and "\n" not in line
    assert "fewer than 3 trainers (1 here)" in line and "register at least 3" in line
    assert too_few_trainers("default", {}, 3) is None
    assert too_few_trainers("fedavg", {}, 1) is None
    assert too_few_trainers("krum", {"f": "1"}, 4) is not None  # CLI strings parse
    assert too_few_trainers("fedavg", {}, None) is None
    ahead = too_few_trainers("default", {}, None)  # at project creation: nobody yet
    assert ahead is not None and "here" not in ahead


def test_spec_rule_is_the_pinned_one() -> None:
    spec = ModelSpec.for_data("logreg", (4,), 2, seed=0)
    assert spec_rule(spec.model_copy(update={"aggregation": None}))[0] == "default"
    pinned = spec.model_copy(update={"aggregation": PinnedRule(rule="median", params={"f": 1})})
    assert spec_rule(pinned) == ("median", {"f": 1})
