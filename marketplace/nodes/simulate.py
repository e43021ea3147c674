"""A whole project in one process: embedded chain, real training, real CIDs, real txs.

``simulate`` plays every role with the real code paths: the owner deploys the market,
publishes the model spec and creates a project; N trainers stake, each with its own
:class:`MemoryStore` and its own shard of the dataset; each round every
:class:`TrainerNode` trains and commits to its update (hidden), then, once every trainer
has committed, reveals it on-chain and serves it by CID; the
:class:`AggregatorNode` fetches the updates from the trainers' stores, filters,
aggregates, evaluates on the owner's validation set and commits the round in one
transaction. At the end the project is finalized and every trainer withdraws.

Attackers (``--attack NAME:FRACTION``) are chosen from the seed. A data attack
(``label_flip``) poisons their shard before training; an update attack rewrites their
rows of the round's update matrix (the omniscient attacker of the attack suite) before
they publish, so what the aggregator fetches is exactly what a malicious node would serve.

The project is attested: after each commit every trainer replays the round
(:class:`marketplace.nodes.attest.RoundAttester`, with the owner's validation set, which a
simulation shares) and attests the scores root it computed; only a stake-majority root
pays. The aggregator posts a bond (``aggregator_bond_wei``) that a replaced round slashes.

``aggregator_attack`` plays a cheating aggregator that also runs trainer 0:
``empty_rounds`` tries, at the start of every round, to commit it empty before the trainers
had their windows (on the main branch before commit-then-reveal that worked, after which
the owner reclaimed everything); ``self_deal``, ``rule_switch`` and ``grind`` cheat on the
round's result (:mod:`marketplace.nodes.cheating`) and trainer 0 attests the cheater's
root. The result's ``protocol_events`` say what the contract did.

With ``zk_shape`` set (``simulate --zk``) the owner first deploys a round verifier for that
circuit shape (:func:`marketplace.chain.verifier.deploy_round_verifier`, keys set up once
and cached under ``$LEDGERLEARN_HOME/zk``) and creates the project with it: every round is
then proved by the aggregator and checked by ``commitRound`` on-chain.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from web3.logs import DISCARD

from marketplace.attacks import (
    ATTACKS,
    apply_attack,
    choose_attackers,
    is_data_attack,
    parse_attack,
)
from marketplace.attacks.label_flip import label_flip
from marketplace.chain.connection import Chain, connect_embedded
from marketplace.chain.deploy import deploy_all
from marketplace.chain.market import ZERO32, ZERO_ADDRESS, MarketClient, RoundScores
from marketplace.chain.tx import TxSender
from marketplace.errors import ConfigError, TransactionReverted
from marketplace.learning import (
    ModelSpec,
    TrainConfig,
    TrainingRecipe,
    evaluate,
    init_params,
    load_dataset,
    partition,
)
from marketplace.learning.rule_pin import PinnedRule
from marketplace.nodes.aggregator import AggregatorNode, RoundSummary
from marketplace.nodes.attest import RoundAttester
from marketplace.nodes.cheating import ACCOMPLICE, AggregatorAttack, CheatingAggregator
from marketplace.nodes.trainer import TrainerNode
from marketplace.privacy.declare import project_privacy
from marketplace.privacy.keys import ReaderKey
from marketplace.robust.registry import check_params
from marketplace.rounds.chainview import RoundCommit, round_commit
from marketplace.rounds.codec import put_spec, validation_commitment
from marketplace.rounds.pipeline import RoundConfig, ScoreFn
from marketplace.rounds.scoring import ContributionConfig, Method
from marketplace.rounds.seeds import derive_seed
from marketplace.storage import ContentStore, MemoryStore, digest_of

log = logging.getLogger(__name__)


class SimulationConfig(BaseModel):
    """Everything a simulation depends on; the same config and seed give the same run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trainers: int = Field(default=6, ge=1, le=1000)
    rounds: int = Field(default=3, ge=1, le=10_000)
    dataset: str = "digits"
    partition: str = "iid"
    attack: str | None = None
    rule: str = "default"
    rule_params: dict[str, Any] = Field(default_factory=dict)
    model: str = "mlp"
    seed: int = Field(default=0, ge=0)
    epochs: int = Field(default=1, ge=1)
    lr: float = Field(default=0.05, gt=0)
    batch_size: int = Field(default=32, ge=1)
    round_duration: int = Field(default=3600, ge=1)
    reward_wei: int = Field(default=10**18, gt=0)
    stake_wei: int = Field(default=10**16, ge=0)
    samples: int | None = Field(default=None, ge=10)
    contribution: Method = "gtg"
    zk_shape: tuple[int, int] | None = None
    """``(n_max, dim)`` of the filter circuit that proves every round; None: no proofs."""
    aggregator_attack: AggregatorAttack | None = None
    """A cheating aggregator's attempt (see the module docstring); None: honest."""
    aggregator_bond_wei: int = Field(default=10**17, ge=0)
    """What the aggregator posts; a round whose scores the trainers replace slashes it."""
    public_updates: bool = False
    """Publish updates in clear (requires ``dp_epsilon``); default: sealed to the aggregator."""
    dp_epsilon: float | None = Field(default=None, gt=0)
    """The project's DP budget over all its rounds (None: no DP)."""
    dp_clip: float = Field(default=1.0, gt=0)
    dp_sample_rate: float = Field(default=0.1, gt=0, le=1)
    local_steps: int | None = Field(default=None, ge=1)
    min_samples: int = Field(default=32, ge=1)


@dataclass(frozen=True)
class Payout:
    index: int
    address: str
    attacker: bool
    score: int
    stake: int
    reward: int
    bond: int = 0
    """Share of the aggregator's slashed bond (0 unless a round was replaced or disputed)."""


@dataclass
class SimulationResult:
    """Per-round summaries, what the chain recorded, and the payouts."""

    project_id: int
    config: SimulationConfig
    attackers: list[int]
    initial_accuracy: float
    rounds: list[RoundSummary] = field(default_factory=list)
    round_seconds: list[float] = field(default_factory=list)
    attest_seconds: list[float] = field(default_factory=list)
    """Per round: every trainer's replay and attestation (in a real deployment the trainers
    replay in parallel, on their own machines; here one after the other)."""
    onchain_inlier_masks: list[list[bool]] = field(default_factory=list)
    payouts: list[Payout] = field(default_factory=list)
    verifier: str | None = None
    protocol_events: list[str] = field(default_factory=list)
    """What the contract did about a cheating aggregator's attempts."""
    market: MarketClient | None = field(default=None, repr=False, compare=False)
    """The embedded chain's market (still usable after the run: audits, event reads)."""

    @property
    def final_accuracy(self) -> float | None:
        if not self.rounds:
            return None
        acc = self.rounds[-1].metrics.get("accuracy")
        return None if acc is None else float(acc)

    def to_dict(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "config": self.config.model_dump(),
            "attackers": self.attackers,
            "initial_accuracy": self.initial_accuracy,
            "final_accuracy": self.final_accuracy,
            "rounds": [asdict(r) for r in self.rounds],
            "round_seconds": self.round_seconds,
            "attest_seconds": self.attest_seconds,
            "onchain_inlier_masks": self.onchain_inlier_masks,
            "payouts": [asdict(p) for p in self.payouts],
            "verifier": self.verifier,
            "aggregator_attack": self.config.aggregator_attack,
            "protocol_events": self.protocol_events,
        }


RoundCallback = Callable[[RoundSummary, float, list[int]], None]


def check_shards(sizes: list[int], min_samples: int) -> None:
    """Refuse a split whose smallest shards fall under the project's ``min_samples``
    before anything is deployed: those trainers would refuse to train (small shards leak
    the most) and the simulation would stop halfway with a project on the chain."""
    small = [(i, k) for i, k in enumerate(sizes) if k < min_samples]
    if small:
        shown = ", ".join(f"#{i} {k}" for i, k in small[:5]) + (", ..." if len(small) > 5 else "")
        raise ConfigError(
            f"{len(small)} trainer(s) would hold fewer than the {min_samples} samples the "
            f"project requires ({shown}): use fewer --trainers, another --partition, or a "
            "lower --min-samples"
        )


def simulate(
    config: SimulationConfig,
    on_round: RoundCallback | None = None,
    score_fn: ScoreFn | None = None,
    zk_keys_dir: Path | None = None,
    chain: Chain | None = None,
    aggregator_store: ContentStore | None = None,
) -> SimulationResult:
    """Run a whole project (see the module docstring); ``on_round(summary, seconds,
    attackers)`` is called after each committed round. ``zk_keys_dir`` is where the
    circuit's keys are cached (default: its build folder under ``$LEDGERLEARN_HOME/zk``).

    ``chain`` runs it on a real node (a local anvil: its dev accounts play every role, and
    the deployment is saved) instead of a fresh embedded chain; ``aggregator_store`` keeps
    the aggregator's blobs (spec, round reports, models) where other processes can read
    them (default: in memory)."""
    attack = parse_attack(config.attack) if config.attack else None
    n = config.trainers
    chain = chain if chain is not None else connect_embedded(accounts=n + 2)
    owner, aggregator_account = chain.dev_account(0), chain.dev_account(1)
    manifest = deploy_all(TxSender(chain, owner))
    market = MarketClient(chain, manifest.address("ContributionMarket"), owner)
    prover = None
    verifier = ZERO_ADDRESS
    if config.zk_shape is not None:
        from marketplace.chain.verifier import deploy_round_verifier
        from zk.filter_rule import FilterRule
        from zk.onchain import RoundProver
        from zk.shape import CircuitShape

        shape = CircuitShape(*config.zk_shape)
        if n > shape.n_max:
            raise ConfigError(
                f"{n} trainers do not fit the {shape.n_max}-slot circuit {shape.name}; "
                "pass a larger --zk-shape or fewer trainers"
            )
        prover = RoundProver(shape, zk_keys_dir)  # sets the keys up on first use
        stack = deploy_round_verifier(
            TxSender(chain, owner),
            market.address,
            shape,
            FilterRule(),
            vk=prover.verifying_key(),
        )
        verifier = stack.address

    check_params(config.rule, config.rule_params)
    train, validation = load_dataset(config.dataset, config.seed, num_samples=config.samples)
    shards = partition(train.y, n, config.partition, config.seed)
    check_shards([len(s) for s in shards], config.min_samples)
    # the project declares its trainers' recipe, so the trust anchor trains the same way
    recipe = TrainingRecipe(epochs=config.epochs, lr=config.lr, batch_size=config.batch_size)
    reader = ReaderKey.from_eth_key(aggregator_account.key)  # the aggregator opens updates
    privacy = project_privacy(
        [] if config.public_updates else [reader.public_hex],
        public_updates=config.public_updates,
        dp_epsilon=config.dp_epsilon,
        rounds=config.rounds,
        local_steps=config.local_steps,
        sample_rate=config.dp_sample_rate,
        clip_norm=config.dp_clip,
        min_samples=config.min_samples,
    )
    spec = ModelSpec.for_data(
        config.model,
        train.input_shape,
        train.num_classes,
        seed=config.seed,
        training=recipe,
        aggregation=PinnedRule(rule=config.rule, params=dict(config.rule_params)),
        privacy=privacy,
    )
    aggregator_store = aggregator_store if aggregator_store is not None else MemoryStore()
    spec_cid = put_spec(aggregator_store, spec)
    project_id, _ = market.create_project(
        reward=config.reward_wei,
        aggregator=aggregator_account.address,
        rounds=config.rounds,
        round_duration=config.round_duration,
        min_stake=config.stake_wei,
        model_spec_cid=digest_of(spec_cid),
        validation_commitment=validation_commitment(validation),
        verifier=verifier,
        aggregator_bond=config.aggregator_bond_wei,
        attested=True,
    )
    if config.aggregator_bond_wei:
        market.as_account(aggregator_account).post_bond(project_id, config.aggregator_bond_wei)

    attackers = choose_attackers(n, attack.fraction if attack else 0.0, config.seed)
    cfg = TrainConfig(**recipe.model_dump(), seed=config.seed)
    nodes: list[TrainerNode] = []
    stores: dict[str, ContentStore] = {}
    for i in range(n):
        account = chain.dev_account(i + 2)
        data = train.subset(shards[i])
        if attack is not None and bool(attackers[i]) and is_data_attack(attack):
            data = label_flip(data)
        trainer_market = market.as_account(account)
        trainer_market.register(project_id, config.stake_wei)
        store = MemoryStore()
        stores[account.address] = store
        node = TrainerNode(trainer_market, project_id, data, store, aggregator_store, cfg)
        node.attester = RoundAttester(
            trainer_market,
            project_id,
            aggregator_store,
            stores.get,
            validation,
            reader=node.reader,
            start_block=manifest.contracts["ContributionMarket"].block,
        )
        node.announce_reader_key()
        nodes.append(node)

    cheat = config.aggregator_attack not in (None, "empty_rounds")
    node_class: Callable[..., AggregatorNode] = AggregatorNode
    if config.aggregator_attack is not None and cheat:
        node_class = functools.partial(CheatingAggregator, attack=config.aggregator_attack)
    agg = node_class(
        market.as_account(aggregator_account),
        project_id,
        aggregator_store,
        validation,
        RoundConfig(
            rule=config.rule,
            rule_params=dict(config.rule_params),
            contribution=ContributionConfig(method=config.contribution),
        ),
        resolver=stores.get,
        score_fn=score_fn,
        start_block=manifest.contracts["ContributionMarket"].block,
        prover=prover,
        zk_keys_dir=zk_keys_dir,
    )
    agg.check_role()
    attacker_list = [i for i in range(n) if bool(attackers[i])]
    if config.aggregator_attack is not None and ACCOMPLICE not in attacker_list:
        attacker_list = sorted([*attacker_list, ACCOMPLICE])  # the aggregator's own slot
    result = SimulationResult(
        project_id=project_id,
        config=config,
        attackers=attacker_list,
        initial_accuracy=evaluate(spec, init_params(spec), validation)[0],
        verifier=None if verifier == ZERO_ADDRESS else verifier,
        market=market,
    )
    # a copier commits after what it copies; everyone else in index order
    commit_sequence = list(range(n))
    if attack is not None and ATTACKS[attack.name].commits_last:
        commit_sequence.sort(key=lambda i: (i in attacker_list, i))
    published: torch.Tensor | None = None  # last round's updates: all a copier can read
    for _ in range(config.rounds):
        start = time.perf_counter()
        info = market.project(project_id)
        r = info.current_round
        if config.aggregator_attack == "empty_rounds":
            result.protocol_events.append(_try_empty_round(agg.market, project_id, r))
        params = [node.global_params(info) for node in nodes]
        updates = torch.stack([node.train(r, p) for node, p in zip(nodes, params, strict=True)])
        if attack is not None and not is_data_attack(attack) and attacker_list:
            updates = apply_attack(
                attack, updates, attackers, derive_seed("attack", config.seed, r), published
            )
        published = updates
        for i in commit_sequence:
            nodes[i].commit(r, nodes[i].publish(r, updates[i]))
        for node in nodes:  # every roster trainer committed: the commit window is closed
            node.reveal(r)
        summary = agg.step()
        if not isinstance(summary, RoundSummary):
            raise ConfigError(f"round {r} did not aggregate ({summary}); this is a bug")
        seconds = time.perf_counter() - start
        result.rounds.append(summary)
        result.round_seconds.append(seconds)
        commit = round_commit(market, project_id, r, n, from_block=summary.block)
        assert commit is not None
        result.onchain_inlier_masks.append(commit.inlier_mask)
        start = time.perf_counter()
        for i, node in enumerate(nodes):
            if cheat and i == ACCOMPLICE:  # the aggregator's own slot backs its root
                _attest_committed(node, commit)
            else:
                node.attest_due(node.market.project(project_id))
        result.attest_seconds.append(time.perf_counter() - start)
        result.protocol_events.extend(_settlement(market, project_id, r, nodes, summary))
        if on_round is not None:
            on_round(summary, seconds, attacker_list)

    info = market.project(project_id)
    last = market.round_state(project_id, info.rounds_committed)
    ready = max(
        info.disputable_until, 0 if last.settled else last.committed_at + info.round_duration
    )
    wait = ready - chain.now()
    if wait >= 0:  # a dispute or attestation window must pass first
        chain.advance_time(wait + 1)
    market.finalize(project_id)
    for i, node in enumerate(nodes):
        receipt = node.withdraw()  # claims its round scores first (replaced ones: replayed)
        trainer_info = market.trainer(project_id, i)
        withdrawn = market.contract.events.Withdrawn()  # the receipt also logs claims
        event = withdrawn.process_receipt(receipt, errors=DISCARD)[0]["args"]
        result.payouts.append(
            Payout(
                index=i,
                address=node.address,
                attacker=i in attacker_list,
                score=trainer_info.score,
                stake=int(event["stake"]),
                reward=int(event["reward"]),
                bond=int(event["bond"]),
            )
        )
    return result


def _attest_committed(node: TrainerNode, commit: RoundCommit) -> None:
    """The cheating aggregator's own trainer attests the root the aggregator committed."""
    inliers = [i for i, b in enumerate(commit.inlier_mask) if b]
    node.market.attest_round(node.project_id, commit.round, RoundScores(inliers, commit.scores))


def _settlement(
    market: MarketClient,
    project_id: int,
    round_: int,
    nodes: list[TrainerNode],
    summary: RoundSummary,
) -> list[str]:
    """What the attestations did to round ``round_`` (nothing to say when a majority
    attested the aggregator's own result), and why trainers were excluded."""
    out = [f"round {round_}: trainer {i} excluded: {why}" for i, why in summary.excluded.items()]
    state = market.round_state(project_id, round_)
    info = market.project(project_id)
    if not state.settled:
        out.append(
            f"round {round_}: disputed: no stake-majority of its active trainers attested one "
            "scores root; the round pays no reward (stakes are refunded)"
        )
    elif state.replaced:
        why = next(
            (
                n.attester.problems[round_][0]
                for n in nodes
                if n.attester is not None and n.attester.problems.get(round_)
            ),
            "the replay differs",
        )
        out.append(
            f"round {round_}: disputed: a stake-majority of its trainers replayed it and "
            f"attested another scores root ({why}); it replaced the aggregator's root and "
            f"the aggregator's bond ({info.bond_posted / 10**18:g} ETH) is slashed to the trainers"
        )
    return out


def _try_empty_round(market: MarketClient, project_id: int, round_: int) -> str:
    """The aggregator commits ``round_`` empty before anyone could take part; what happened."""
    try:
        market.commit_round(
            project_id,
            round_,
            global_model_cid=ZERO32,
            inlier_mask=[],
            scores=[],
            trainer_count=0,
        )
    except TransactionReverted as exc:
        return f"round {round_}: the aggregator's empty commit was refused ({exc.error_name})"
    return f"round {round_}: the aggregator committed the round empty"
