"""Verifiable rounds end to end on the embedded chain: the aggregator proves each round.

A ``simulate --zk`` run commits every round through a ``FilterRoundVerifier`` (so each
proof verified on-chain), keeps the sign-flip attacker out, and every round re-verifies
off-chain with py_ecc. A trainer whose published sketch does not open its on-chain
commitment, or is not the sketch of its update, is rejected with a reason and the round
still proves. Keys (shape 10x16) are set up once into pytest's cache folder, shared with
``test_zk_onchain.py``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from marketplace.audit import audit_project
from marketplace.chain.tx import TxSender
from marketplace.chain.verifier import audit_round, deploy_round_verifier
from marketplace.learning import ModelSpec, TrainConfig, load_dataset, partition
from marketplace.nodes.aggregator import AggregatorNode, RoundSummary
from marketplace.nodes.chainview import round_commit
from marketplace.nodes.simulate import SimulationConfig, simulate
from marketplace.nodes.trainer import TrainerNode
from marketplace.rounds import RoundConfig, equal_scores, get_report, run_round
from marketplace.rounds.codec import put_spec
from marketplace.rounds.sketches import (
    SketchOpening,
    check_opening,
    make_opening,
    project_sketch_spec,
)
from marketplace.rounds.state import RoundState
from marketplace.rounds.zkfilter import ZkFilterConfig
from marketplace.storage import MemoryStore, digest_of, put_blob
from zk.build import build_dir
from zk.onchain import RoundProver
from zk.shape import CircuitShape

pytestmark = pytest.mark.integration

SHAPE = CircuitShape(10, 16)


@pytest.fixture(scope="module")
def keys_dir(request: pytest.FixtureRequest) -> Path:
    root = Path(request.config.cache.mkdir("ledgerlearn-zk"))
    return build_dir(SHAPE, root) / "groth16py"


def test_simulate_zk_proves_every_round_and_excludes_the_attacker(keys_dir: Path) -> None:
    config = SimulationConfig(
        trainers=4,
        rounds=2,
        dataset="digits",
        attack="sign_flip:0.25",
        epochs=2,
        lr=0.2,
        zk_shape=(SHAPE.n_max, SHAPE.dim),
    )
    result = simulate(config, zk_keys_dir=keys_dir)
    market = result.market
    assert market is not None and result.verifier is not None
    info = market.project(result.project_id)
    assert info.verifier == result.verifier and info.rounds_committed == 2
    [attacker] = result.attackers
    for summary, onchain in zip(result.rounds, result.onchain_inlier_masks, strict=True):
        assert summary.prove_seconds is not None and summary.prove_seconds > 0
        assert onchain == [i in summary.inliers for i in range(4)]
        assert not onchain[attacker] and sum(onchain) == 3
        assert "provable sketch-median rule" in summary.excluded[attacker]
        audit = audit_round(market, result.project_id, summary.round)
        assert audit.ok, audit.reason
        assert audit.inliers == 3
    assert float(result.rounds[-1].metrics["accuracy"]) > 0.6
    paid = {p.index: p for p in result.payouts}
    assert paid[attacker].reward == 0
    assert all(p.reward > 0 for p in result.payouts if not p.attacker)


def test_trainer_whose_sketch_does_not_open_is_rejected_and_the_round_proves(
    world: Any, keys_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prover = RoundProver(SHAPE, keys_dir)
    stack = deploy_round_verifier(
        TxSender(world.chain, world.owner),
        world.market.address,
        SHAPE,
        vk=prover.verifying_key(),
    )
    train, validation = load_dataset("synthetic", 0, num_samples=500)
    spec = ModelSpec.for_data("logreg", train.input_shape, train.num_classes, seed=0)
    agg_store = MemoryStore()
    project_id, _ = world.market.create_project(
        reward=10**18,
        aggregator=world.aggregator.address,
        rounds=1,
        round_duration=3600,
        min_stake=10**15,
        model_spec_cid=digest_of(put_spec(agg_store, spec)),
        verifier=stack.address,
    )
    shards = partition(train.y, 5, "iid", 0)
    trainers, stores = [], {}
    for i, account in enumerate(world.trainers[:5]):
        market = world.as_(account)
        market.register(project_id, 10**15)
        stores[account.address] = store = MemoryStore()
        data = train.subset(shards[i])
        trainers.append(
            TrainerNode(market, project_id, data, store, agg_store, TrainConfig(lr=0.1))
        )
    # trainer 5 is a copycat that learned trainer 0's update and sketch opening before
    # committing (a leak: under commit-then-reveal nobody else can read them in time). It
    # publishes them as its own blob (another CID: its metadata differ) and commits to
    # trainer 0's sketch commitment; the opening checks out, but two active slots may not
    # share one commitment. It registers before the round opens, so it is in its roster.
    copycat = world.as_(world.trainers[5])
    copycat.register(project_id, 10**15)
    stores[world.trainers[5].address] = copy_store = MemoryStore()
    copier = TrainerNode(
        copycat, project_id, train.subset(shards[0][:-7]), copy_store, agg_store, TrainConfig()
    )
    for t in trainers[:3]:
        assert t.step().status == "committed"
    info = world.market.project(project_id)
    victim_update = trainers[0].train(1, trainers[0].global_params(info))
    copied = copier.publish(1, victim_update, opening=trainers[0].opening(1, victim_update))
    copier.commit(1, copied)
    # trainer 3 commits a commitment its published sketch and salt do not open
    wrong_salt, params = trainers[3], trainers[3].global_params(info)
    update = wrong_salt.train(1, params)
    cid = wrong_salt.publish(1, update)
    honest = wrong_salt.opening(1, update)
    other = SketchOpening(honest.sketch, honest.salt + 1).commitment_bytes()
    bad = replace(wrong_salt.update_opening(1, cid), sketch_commitment=other)
    wrong_salt.market.commit_update(project_id, 1, bad.commitment(project_id, 1))
    # trainer 4 commits the sketch of an honest update but serves a boosted one
    liar = trainers[4]
    update = liar.train(1, liar.global_params(info))
    liar.commit(1, liar.publish(1, 10 * update, opening=liar.opening(1, update)))
    for t in trainers[:3]:  # everyone committed: the reveals are open
        assert t.step().status == "revealed"
    wrong_salt.market.reveal_updates(project_id, 1, [bad])
    put_blob(wrong_salt.store, wrong_salt._staged.pop(cid))
    liar.reveal(1)
    copier.reveal(1)

    node = AggregatorNode(
        world.as_(world.aggregator),
        project_id,
        agg_store,
        validation,
        RoundConfig(),
        resolver=stores.get,
        prover=prover,
    )
    summary = node.step()
    assert isinstance(summary, RoundSummary)
    assert set(summary.rejected) == {3, 4, 5}
    assert summary.rejected[5] == "sketch: copies trainer 0's commitment"
    assert "do not open the on-chain commitment" in summary.rejected[3]
    assert "not the sketch of the published update" in summary.rejected[4]
    assert all(summary.rejected[i].startswith("sketch:") for i in (3, 4))
    onchain = round_commit(world.market, project_id, 1, 6)
    assert onchain is not None
    assert onchain.rejected_mask == [False, False, False, True, True, True]
    assert sum(onchain.inlier_mask[:3]) >= 2 and not any(onchain.inlier_mask[3:])
    report = get_report(agg_store, onchain.report_cid)
    assert report.config.zk is not None and report.rejected[3] == summary.rejected[3]
    audit = audit_round(world.market, project_id, 1)
    assert audit.ok, audit.reason
    replay = audit_project(world.market, project_id, agg_store, stores.get, validation)
    assert replay.ok, replay.to_dict()  # the replay re-checks the sketch openings too
    assert replay.rounds[0].checks["zk_outputs"] is True  # and the proof's claimed outputs
    # outputs other than the rule's (only a forged proof, e.g. from whoever ran the UNSAFE
    # setup, could carry them) are caught: simulate by changing the auditor's recomputation
    import zk.witness

    honest_outputs = zk.witness.rule_outputs
    monkeypatch.setattr(zk.witness, "rule_outputs", lambda *a: honest_outputs(*a) + 1)
    lied = audit_project(world.market, project_id, agg_store, stores.get, validation)
    assert not lied.ok and lied.rounds[0].checks["zk_outputs"] is False


def test_replay_recomputes_the_proved_mask_from_the_updates() -> None:
    """run_round in zk mode gives the same mask from the opened sketches as from the updates
    alone (what an auditor's replay does); a missing or foreign opening is refused."""
    torch.manual_seed(0)
    base = torch.randn(300)
    updates = [base + 0.1 * torch.randn(300) for _ in range(5)] + [-5 * base]
    zk = ZkFilterConfig(dim=16, seed=7)
    assert project_sketch_spec(0).dim == 16  # the sketch of a project without a verifier
    opened = {}
    for i, u in enumerate(updates):
        opening = make_opening(u, zk.sketch_spec(), salt=i + 1)
        commitment = opening.commitment_bytes()
        assert check_opening(u, opening.metadata(), commitment, zk.sketch_spec()) == opening
        assert "no sketch opening" in str(check_opening(u, {}, commitment, zk.sketch_spec()))
        foreign = make_opening(updates[(i + 1) % 6], zk.sketch_spec(), salt=i + 1)
        refused = check_opening(u, foreign.metadata(), commitment, zk.sketch_spec())
        assert isinstance(refused, str) and "do not open" in refused
        opened[i] = opening.sketch
    config = RoundConfig(zk=zk)
    start = torch.zeros(300)
    state = RoundState.initial(config.hyper)
    a = run_round(start, updates, None, config, state, sketches=opened, score_fn=equal_scores)
    b = run_round(start, updates, None, config, state, score_fn=equal_scores)
    assert a.inlier_mask == b.inlier_mask == [True] * 5 + [False]
    assert torch.equal(a.new_global_params, b.new_global_params)
    assert "sketch distance" in a.exclusions[5]
