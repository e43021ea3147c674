"""The aggregator's round and the audit's replay read a round's ``roundState`` once
(they read it 3-4 times before: every read is an RPC round trip on a real node)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from federation import open_federation

from marketplace.audit import audit_project
from marketplace.chain.market import MarketClient, RoundInfo
from marketplace.learning import ModelSpec, load_dataset
from marketplace.nodes.aggregator import AggregatorNode, RoundSummary
from marketplace.rounds import RoundConfig

pytestmark = pytest.mark.integration


def _counting(market: MarketClient, reads: Counter[int]) -> None:
    real = market.round_state

    def round_state(project_id: int, round_: int) -> RoundInfo:
        reads[round_] += 1
        return real(project_id, round_)

    market.round_state = round_state  # type: ignore[method-assign]


def test_one_round_state_read_per_round(world: Any) -> None:
    train, validation = load_dataset("synthetic", 1, num_samples=400)
    spec = ModelSpec.for_data("logreg", train.input_shape, train.num_classes, seed=0)
    fed = open_federation(world, train, validation, spec, trainers=3, rounds=2)
    market = world.as_(world.aggregator)
    node = AggregatorNode(
        market, fed.project_id, fed.store, validation, RoundConfig(), resolver=fed.stores.get
    )
    reads: Counter[int] = Counter()
    _counting(market, reads)
    for r in (1, 2):
        for t in fed.trainers:
            t.step()
        for t in fed.trainers:
            t.step()
        reads.clear()
        assert isinstance(node.step(), RoundSummary)
        assert reads == {r: 1}, reads

    auditor = MarketClient(world.chain, world.market.address)
    _counting(auditor, reads)
    reads.clear()
    report = audit_project(auditor, fed.project_id, fed.store, fed.stores.get, validation)
    assert report.ok, report.to_dict()
    assert reads == {1: 1, 2: 1}, reads
