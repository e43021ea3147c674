"""The default rule's trust anchor on the embedded chain: an aggregator whose anchor (the
server update on the owner's validation data) excludes label flippers on non-IID data
commits a mask that ``ledgerlearn audit`` replays exactly from the same validation data."""

from __future__ import annotations

from typing import Any

import pytest
from federation import open_federation

from marketplace.audit import audit_project
from marketplace.learning import ModelSpec, TrainConfig, load_dataset
from marketplace.nodes.aggregator import AggregatorNode
from marketplace.rounds import RoundConfig

pytestmark = pytest.mark.integration

TRAINERS, FLIPPERS, ROUNDS = 6, (4, 5), 2
RECIPE = TrainConfig(epochs=1, lr=0.1, batch_size=32)


def test_anchored_mask_is_replayed_by_the_audit(world: Any) -> None:
    train, validation = load_dataset("synthetic", 4, num_samples=900)
    spec = ModelSpec.for_data("mlp", train.input_shape, train.num_classes, seed=0)
    fed = open_federation(
        world,
        train,
        validation,
        spec,
        trainers=TRAINERS,
        rounds=ROUNDS,
        split="dirichlet:0.5",
        flippers=FLIPPERS,
        recipe=RECIPE,
    )
    project_id, store, stores, trainers = fed.project_id, fed.store, fed.stores, fed.trainers
    config = RoundConfig(rule_params={"anchor_epochs": 1, "anchor_lr": 0.1, "anchor_momentum": 0.0})
    node = AggregatorNode(
        world.as_(world.aggregator), project_id, store, validation, config, resolver=stores.get
    )
    anchored: list[int] = []
    for r in range(1, ROUNDS + 1):
        for t in trainers:
            assert t.step().status == "committed"
        for t in trainers:  # all committed: the window closed
            assert t.step().status == "revealed"
        prepared = node.prepare(r)
        node.commit(prepared)
        exclusions = prepared.outcome.exclusions
        anchored += [i for i, why in exclusions.items() if "server update" in why]
        assert not any(prepared.outcome.inlier_mask[i] for i in FLIPPERS), exclusions
    assert set(anchored) & set(FLIPPERS)  # the anchor, not only the other stages, decided

    report = audit_project(world.market, project_id, store, stores.get, validation)
    assert report.ok, report.to_dict()
    assert all(r.checks["mask"] is True for r in report.rounds)
