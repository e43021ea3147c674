"""The default rule's trust anchor on the embedded chain: an aggregator whose anchor (the
server update on the owner's validation data) excludes label flippers on non-IID data
commits a mask that ``ledgerlearn audit`` replays exactly from the same validation data."""

from __future__ import annotations

from typing import Any

import pytest

from marketplace.attacks.label_flip import label_flip
from marketplace.audit import audit_project, validation_commitment
from marketplace.learning import ModelSpec, TrainConfig, load_dataset, partition
from marketplace.nodes.aggregator import AggregatorNode
from marketplace.nodes.trainer import TrainerNode
from marketplace.rounds import RoundConfig
from marketplace.rounds.codec import put_spec
from marketplace.storage import MemoryStore, digest_of

pytestmark = pytest.mark.integration

TRAINERS, FLIPPERS, ROUNDS = 6, (4, 5), 2
RECIPE = TrainConfig(epochs=1, lr=0.1, batch_size=32)


def test_anchored_mask_is_replayed_by_the_audit(world: Any) -> None:
    train, validation = load_dataset("synthetic", 4, num_samples=900)
    spec = ModelSpec.for_data("mlp", train.input_shape, train.num_classes, seed=0)
    store = MemoryStore()
    project_id, _ = world.market.create_project(
        reward=10**18,
        aggregator=world.aggregator.address,
        rounds=ROUNDS,
        round_duration=3600,
        min_stake=10**15,
        model_spec_cid=digest_of(put_spec(store, spec)),
        validation_commitment=validation_commitment(validation),
    )
    shards = partition(train.y, TRAINERS, "dirichlet:0.5", 0)
    trainers, stores = [], {}
    for i, account in enumerate(world.trainers[:TRAINERS]):
        market = world.as_(account)
        market.register(project_id, 10**15)
        stores[account.address] = own = MemoryStore()
        data = train.subset(shards[i])
        data = label_flip(data) if i in FLIPPERS else data
        trainers.append(TrainerNode(market, project_id, data, own, store, RECIPE))
    config = RoundConfig(rule_params={"anchor_epochs": 1, "anchor_lr": 0.1, "anchor_momentum": 0.0})
    node = AggregatorNode(
        world.as_(world.aggregator), project_id, store, validation, config, resolver=stores.get
    )
    anchored: list[int] = []
    for r in range(1, ROUNDS + 1):
        for t in trainers:
            assert t.step().status == "committed"
        prepared = node.prepare(r)
        node.commit(prepared)
        exclusions = prepared.outcome.exclusions
        anchored += [i for i, why in exclusions.items() if "server update" in why]
        assert not any(prepared.outcome.inlier_mask[i] for i in FLIPPERS), exclusions
    assert set(anchored) & set(FLIPPERS)  # the anchor, not only the other stages, decided

    report = audit_project(world.market, project_id, store, stores.get, validation)
    assert report.ok, report.to_dict()
    assert all(r.checks["mask"] is True for r in report.rounds)
