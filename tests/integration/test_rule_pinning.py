"""Issue 13.9: the robust rule is pinned in the model spec (its CID is on-chain); the
aggregator refuses another rule, and the audit catches one that switches anyway."""

from __future__ import annotations

from typing import Any

import pytest
from federation import open_federation

from marketplace.audit import audit_project
from marketplace.chain.market import ProjectInfo
from marketplace.errors import ConfigError
from marketplace.learning import ModelSpec, load_dataset
from marketplace.learning.rule_pin import PinnedRule
from marketplace.nodes.aggregator import AggregatorNode
from marketplace.rounds import RoundConfig

pytestmark = pytest.mark.integration


class RuleSwitcher(AggregatorNode):
    """A cheating aggregator: skips the pin check and runs ``median`` from round 2."""

    def check_pinned(self, spec: ModelSpec, config: RoundConfig | None = None) -> None:
        return None

    def round_config(self, info: ProjectInfo) -> RoundConfig:
        if info.current_round >= 2:
            return RoundConfig(rule="median")
        return super().round_config(info)


def _federation(world: Any) -> tuple[Any, Any]:
    train, validation = load_dataset("synthetic", 1, num_samples=600)
    pin = PinnedRule(rule="fedavg")
    spec = ModelSpec.for_data(
        "logreg", train.input_shape, train.num_classes, seed=0, aggregation=pin
    )
    return open_federation(world, train, validation, spec, trainers=4, rounds=2), validation


def test_aggregator_refuses_a_rule_other_than_the_pinned_one(world: Any) -> None:
    fed, validation = _federation(world)
    node = fed.aggregator(world, validation, RoundConfig(rule="median"))
    with pytest.raises(ConfigError, match="pins: fedavg") as err:
        node.check_pinned(node.spec())
    assert "\n" not in str(err.value) and "--rule fedavg" in str(err.value)
    for t in fed.trainers:
        assert t.step().status == "committed"
    with pytest.raises(ConfigError, match="pins"):
        node.prepare(1)


def test_audit_catches_an_aggregator_that_switches_rule_in_round_2(world: Any) -> None:
    fed, validation = _federation(world)
    node = RuleSwitcher(
        world.as_(world.aggregator),
        fed.project_id,
        fed.store,
        validation,
        RoundConfig(rule="fedavg"),
        resolver=fed.stores.get,
    )
    for r in (1, 2):
        for t in fed.trainers:
            assert t.step().status == "committed"
        for t in fed.trainers:  # all committed: the window closed
            assert t.step().status == "revealed"
        node.commit(node.prepare(r))
    report = audit_project(world.market, fed.project_id, fed.store, fed.stores.get, validation)
    first, second = report.rounds
    assert first.ok and first.checks["rule"] is True
    assert not second.ok and second.checks["rule"] is False
    assert any("median" in p and "pins: fedavg" in p for p in second.problems)
