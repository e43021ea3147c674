"""Gaming the contribution scores, measured in real payouts (``withdraw``) on the
embedded chain: free riders, split identities and filtered outliers."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from web3.logs import DISCARD

from marketplace.learning import Dataset, ModelSpec, TrainConfig, load_dataset, partition
from marketplace.nodes.aggregator import AggregatorNode, RoundSummary
from marketplace.nodes.simulate import SimulationConfig, simulate
from marketplace.nodes.trainer import TrainerNode
from marketplace.rounds import RoundConfig
from marketplace.rounds.codec import put_spec
from marketplace.storage import MemoryStore, digest_of

pytestmark = pytest.mark.integration

REWARD = 10**18


def test_free_rider_is_filtered_and_earns_under_one_percent() -> None:
    """A zero update (the plain free rider) is dropped by the default filter before
    contribution, so it scores 0 in every round and withdraws only its stake."""
    config = SimulationConfig(
        trainers=5, rounds=2, dataset="digits", attack="free_rider:0.2", epochs=1, lr=0.2
    )
    result = simulate(config)
    (rider,) = result.attackers
    for summary in result.rounds:
        assert rider in summary.excluded and rider not in summary.inliers
        assert len(set(summary.scores)) > 1  # Shapley-based, not equal shares
    paid = {p.index: p for p in result.payouts}
    assert paid[rider].reward <= 0.01 * REWARD
    assert paid[rider].score == 0 and paid[rider].stake == config.stake_wei
    assert sum(p.reward for p in result.payouts) == pytest.approx(REWARD, rel=1e-9)


def _play(world: Any, shards: list[Dataset], validation: Dataset, rounds: int) -> list[int]:
    """A project whose i-th trainer holds ``shards[i]``; returns rewards withdrawn."""
    spec = ModelSpec.for_data("mlp", validation.input_shape, validation.num_classes, seed=0)
    store = MemoryStore()
    project_id, _ = world.market.create_project(
        reward=REWARD,
        aggregator=world.aggregator.address,
        rounds=rounds,
        round_duration=3600,
        min_stake=10**15,
        model_spec_cid=digest_of(put_spec(store, spec)),
    )
    trainers, stores = [], {}
    for data, account in zip(shards, world.trainers, strict=False):
        market = world.as_(account)
        market.register(project_id, 10**15)
        stores[account.address] = own = MemoryStore()
        cfg = TrainConfig(epochs=1, lr=0.2)
        trainers.append(TrainerNode(market, project_id, data, own, store, cfg))
    node = AggregatorNode(
        world.as_(world.aggregator),
        project_id,
        store,
        validation,
        RoundConfig(),
        resolver=stores.get,
    )
    for _ in range(rounds):
        for t in trainers:
            assert t.step().status == "committed"
        for t in trainers:  # all committed: the window closed
            assert t.step().status == "revealed"
        assert isinstance(node.step(), RoundSummary)
    world.market.finalize(project_id)
    rewards = []
    for t in trainers:
        receipt = t.market.withdraw(project_id)
        withdrawn = world.market.contract.events.Withdrawn()  # the receipt also logs claims
        event = withdrawn.process_receipt(receipt, errors=DISCARD)[0]["args"]
        rewards.append(int(event["reward"]))
    return rewards


def test_splitting_a_dataset_across_two_identities_earns_no_more(world: Any) -> None:
    train, validation = load_dataset("digits", 0)
    parts = partition(train.y, 5, "iid", 0)
    honest = [train.subset(p) for p in parts[:4]]
    whole = torch.as_tensor(parts[4])
    single = _play(world, [*honest, train.subset(whole)], validation, rounds=2)
    halves = [train.subset(whole[: len(whole) // 2]), train.subset(whole[len(whole) // 2 :])]
    split = _play(world, [*honest, *halves], validation, rounds=2)
    assert single[4] > 0
    assert split[4] + split[5] <= 1.05 * single[4], (single, split)


def test_outlier_earns_nothing(world: Any) -> None:
    """A trainer with flipped labels is excluded as an outlier and withdraws no reward."""
    train, validation = load_dataset("digits", 0)
    parts = partition(train.y, 5, "iid", 1)
    shards = [train.subset(p) for p in parts]
    bad = shards[4]
    shards[4] = Dataset(bad.x, (bad.num_classes - 1) - bad.y, bad.num_classes, bad.input_shape)
    rewards = _play(world, shards, validation, rounds=1)
    assert rewards[4] == 0
    assert all(r > 0 for r in rewards[:4])
    assert sum(rewards) == pytest.approx(REWARD, rel=1e-9)
