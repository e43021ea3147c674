"""A hostile trainer on the embedded chain: its update claims ``num_samples="²"`` (a Unicode
digit that ``str.isdigit`` accepts and ``int`` refuses), another announces a loopback
endpoint on a chain that is treated as public. The aggregator rejects both with their
reasons in the round report, the round completes for everyone else, and ``audit``
replays it exactly instead of dying on the same ValueError."""

from __future__ import annotations

from typing import Any

import pytest
from federation import open_federation
from market_rounds import opening_of

from marketplace.audit import audit_project
from marketplace.learning import ModelSpec, init_params, load_dataset
from marketplace.nodes.aggregator import AggregatorNode, GatewayResolver
from marketplace.rounds import RoundConfig
from marketplace.rounds.codec import KIND_UPDATE, put_params
from marketplace.rounds.report import get_report
from marketplace.storage import ContentStore, digest_of

pytestmark = pytest.mark.integration


def test_a_unicode_digit_trainer_is_rejected_and_the_round_completes(world: Any) -> None:
    train, validation = load_dataset("synthetic", 1, num_samples=600)
    spec = ModelSpec.for_data("logreg", train.input_shape, train.num_classes, seed=0)
    fed = open_federation(world, train, validation, spec, trainers=4, rounds=1)
    honest, hostile = fed.trainers[:3], fed.trainers[3]
    for t in honest:
        assert t.step().status == "committed"
    meta = {"kind": KIND_UPDATE, "project": str(fed.project_id), "round": "1", "num_samples": "²"}
    update = hostile.train(1, init_params(spec))
    cid = put_params(hostile.store, spec, update, meta)
    # a hidden commitment to the hostile blob's CID (no sketch), opened once the window
    # has closed (every roster trainer committed), after the honest trainers reveal
    opening = opening_of(hostile, 1, digest_of(cid), b"\0" * 32)
    hostile.market.commit_update(fed.project_id, 1, opening.commitment(fed.project_id, 1))
    for t in honest:
        assert t.step().status == "revealed"
    hostile.market.reveal_updates(fed.project_id, 1, [opening])

    node = fed.aggregator(world, validation)
    prepared = node.prepare(1)
    node.commit(prepared)
    report = get_report(fed.store, prepared.report_cid)
    assert set(report.rejected) == {3}
    assert report.rejected[3].startswith("metadata") and "'²'" in report.rejected[3]
    assert set(report.inliers) <= {0, 1, 2} and len(report.inliers) >= 2

    audit = audit_project(world.market, fed.project_id, fed.store, fed.stores.get, validation)
    assert audit.ok, audit.to_dict()


def test_a_loopback_endpoint_is_refused_when_the_chain_is_not_local(world: Any) -> None:
    train, validation = load_dataset("synthetic", 1, num_samples=400)
    spec = ModelSpec.for_data("logreg", train.input_shape, train.num_classes, seed=0)
    fed = open_federation(world, train, validation, spec, trainers=4, rounds=1)
    for t in fed.trainers:
        assert t.step().status == "committed"
    for t in fed.trainers:  # all committed: the window closed; all revealed closes reveals
        assert t.step().status == "revealed"
    fed.trainers[2].market.announce_endpoint(fed.project_id, "http://127.0.0.1:5001/")
    fed.trainers[3].market.announce_endpoint(fed.project_id, "http://user:pw@1.2.3.4/")
    market = world.as_(world.aggregator)
    gateways = GatewayResolver(market, fed.project_id, timeout=2.0, allow_private=False)
    addresses = {t.address: i for i, t in enumerate(fed.trainers)}

    def resolver(trainer: str) -> ContentStore | None:
        # trainers 0 and 1 are reached through their stores; 2 and 3 through what they
        # announced, as a node on a public chain would
        return fed.stores[trainer] if addresses[trainer] < 2 else gateways(trainer)

    node = AggregatorNode(
        market, fed.project_id, fed.store, validation, RoundConfig(), resolver=resolver
    )
    prepared = node.prepare(1)
    node.commit(prepared)
    rejected = get_report(fed.store, prepared.report_cid).rejected
    assert set(rejected) == {2, 3}
    assert rejected[2].startswith("endpoint") and "development chain" in rejected[2]
    assert rejected[3].startswith("endpoint") and "userinfo" in rejected[3]
