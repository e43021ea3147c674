"""A project with trainer nodes on the embedded chain, as several integration tests need it.

One place that creates the project (escrow, model spec, validation commitment), registers
the trainers and gives each its own shard and content store, so each test states only what
it varies: the split, which trainers flip their labels, the local recipe.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from marketplace.attacks.label_flip import label_flip
from marketplace.audit import validation_commitment
from marketplace.learning import Dataset, ModelSpec, TrainConfig, load_dataset, partition
from marketplace.nodes.aggregator import AggregatorNode
from marketplace.nodes.trainer import TrainerNode
from marketplace.rounds.codec import put_spec
from marketplace.rounds.pipeline import RoundConfig
from marketplace.storage import MemoryStore, digest_of


@dataclass
class Federation:
    project_id: int
    store: MemoryStore  # the aggregator's (model spec, models, reports)
    stores: dict[str, MemoryStore]  # trainer address -> its own store
    trainers: list[TrainerNode]

    def aggregator(
        self, world: Any, validation: Dataset, config: RoundConfig | None = None
    ) -> AggregatorNode:
        """The project's aggregator node, fetching each update from its trainer's store."""
        return AggregatorNode(
            world.as_(world.aggregator),
            self.project_id,
            self.store,
            validation,
            config or RoundConfig(),
            resolver=self.stores.get,
        )

    def play_round(self, node: AggregatorNode, round_: int) -> None:
        """Every trainer commits, then reveals; the aggregator commits the round."""
        for t in self.trainers:
            assert t.step().status == "committed"
        for t in self.trainers:
            assert t.step().status == "revealed"
        node.commit(node.prepare(round_))


def open_federation(
    world: Any,
    train: Dataset,
    validation: Dataset,
    spec: ModelSpec,
    *,
    trainers: int,
    rounds: int,
    split: str = "iid",
    flippers: Collection[int] = (),
    recipe: TrainConfig | None = None,
    attested: bool = False,
) -> Federation:
    """Create a project and ``trainers`` registered trainer nodes over a ``split`` of
    ``train``; the trainers in ``flippers`` train on flipped labels."""
    store = MemoryStore()
    project_id, _ = world.market.create_project(
        reward=10**18,
        aggregator=world.aggregator.address,
        rounds=rounds,
        round_duration=3600,
        min_stake=10**15,
        model_spec_cid=digest_of(put_spec(store, spec)),
        validation_commitment=validation_commitment(validation),
        attested=attested,
    )
    shards = partition(train.y, trainers, split, 0)
    nodes, stores = [], {}
    for i, account in enumerate(world.trainers[:trainers]):
        market = world.as_(account)
        market.register(project_id, 10**15)
        stores[account.address] = own = MemoryStore()
        data = train.subset(shards[i])
        data = label_flip(data) if i in flippers else data
        config = recipe or TrainConfig(lr=0.1)
        nodes.append(TrainerNode(market, project_id, data, own, store, config))
    return Federation(project_id, store, stores, nodes)


def synthetic_federation(
    world: Any, rounds: int, flippers: Collection[int] = (3,)
) -> tuple[Federation, Dataset, ModelSpec]:
    """Four logistic-regression trainers on synthetic data (600 samples, seed 1), those in
    ``flippers`` flipping labels: the project the status, view and audit tests play."""
    train, validation = load_dataset("synthetic", 1, num_samples=600)
    spec = ModelSpec.for_data("logreg", train.input_shape, train.num_classes, seed=0)
    fed = open_federation(
        world, train, validation, spec, trainers=4, rounds=rounds, flippers=flippers
    )
    return fed, validation, spec


def self_dealing_federation(world: Any) -> tuple[Federation, Any]:
    """An attested 3-trainer, 1-round project whose trainer nodes replay and attest each
    round (``RoundAttester``), and a ``CheatingAggregator`` that scores its own slot
    (``self_deal``): the round the trainers' majority replaces. Returns (federation,
    aggregator node)."""
    from marketplace.nodes.attest import RoundAttester
    from marketplace.nodes.cheating import CheatingAggregator

    train, validation = load_dataset("synthetic", 0, num_samples=240)
    spec = ModelSpec.for_data("logreg", train.input_shape, train.num_classes, seed=0)
    fed = open_federation(world, train, validation, spec, trainers=3, rounds=1, attested=True)
    for node in fed.trainers:
        node.attester = RoundAttester(
            node.market, fed.project_id, fed.store, fed.stores.get, validation
        )
    agg = CheatingAggregator(
        world.as_(world.aggregator),
        fed.project_id,
        fed.store,
        validation,
        resolver=fed.stores.get,
        attack="self_deal",
    )
    return fed, agg
