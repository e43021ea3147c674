"""Whole rounds on the embedded chain: simulation, on-chain masks, restart determinism."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from federation import open_federation

from marketplace.learning import ModelSpec, load_dataset
from marketplace.nodes.aggregator import AggregatorNode, RoundSummary
from marketplace.nodes.simulate import SimulationConfig, SimulationResult, simulate
from marketplace.rounds import RoundConfig, get_report, get_rule_state
from marketplace.rounds.chainview import round_commit, update_commits
from marketplace.storage import put_blob

pytestmark = pytest.mark.integration


def test_four_trainers_two_rounds_exclude_the_attacker_and_pay_the_rest() -> None:
    config = SimulationConfig(
        trainers=4, rounds=2, dataset="digits", attack="sign_flip:0.25", epochs=2, lr=0.2
    )
    result = simulate(config)
    assert len(result.attackers) == 1
    attacker = result.attackers[0]
    accuracies = [float(s.metrics["accuracy"]) for s in result.rounds]
    assert result.initial_accuracy < accuracies[0] < accuracies[1]
    assert accuracies[1] > 0.6
    for summary, onchain in zip(result.rounds, result.onchain_inlier_masks, strict=True):
        assert onchain == [i in summary.inliers for i in range(4)]
        assert not onchain[attacker]
        assert attacker in summary.excluded
    paid = {p.index: p for p in result.payouts}
    assert paid[attacker].reward == 0 and paid[attacker].score == 0
    honest = [p for p in result.payouts if not p.attacker]
    assert all(p.reward > 0 and p.stake == config.stake_wei for p in honest)
    assert sum(p.reward for p in honest) == pytest.approx(config.reward_wei, rel=1e-9)


def test_restarted_aggregator_commits_the_same_round(world: Any) -> None:
    train, validation = load_dataset("synthetic", 0, num_samples=400)
    spec = ModelSpec.for_data("logreg", train.input_shape, train.num_classes, seed=0)
    fed = open_federation(world, train, validation, spec, trainers=5, rounds=2)
    project_id, agg_store, stores, trainers = fed.project_id, fed.store, fed.stores, fed.trainers
    cheat = trainers[4]

    def node() -> AggregatorNode:
        return AggregatorNode(
            world.as_(world.aggregator),
            project_id,
            agg_store,
            validation,
            RoundConfig(),
            resolver=stores.get,
        )

    def play_round(r: int) -> None:
        for t in trainers[:4]:
            assert t.step().status == "committed"
        cheat.commit(r, put_blob(cheat.store, b"not an update"))
        for t in trainers[:4]:  # every roster trainer committed: reveals are open
            assert t.step().status == "revealed"
        cheat.reveal(r)

    play_round(1)
    crashed = node().prepare(1)  # computed and stored, then "killed" before commitRound
    assert world.market.project(project_id).rounds_committed == 0
    restarted = node()
    again = restarted.prepare(1)
    assert (again.model_cid, again.report_cid) == (crashed.model_cid, crashed.report_cid)
    summary = restarted.step()
    assert isinstance(summary, RoundSummary)
    assert summary.model_cid == crashed.model_cid
    onchain = round_commit(world.market, project_id, 1, 5)
    assert onchain is not None and onchain.global_model_cid == crashed.model_cid
    assert onchain.rejected_mask == [False] * 4 + [True]
    assert onchain.inlier_mask[4] is False and sum(onchain.inlier_mask) >= 3
    report = get_report(agg_store, onchain.report_cid)
    assert report.rejected[4].startswith("truncated")
    assert set(update_commits(world.market, project_id, 1)) == set(range(5))

    play_round(2)
    uninterrupted = restarted.prepare(2)  # node that committed round 1 (event-scan hint)
    fresh = node().prepare(2)  # a new process: state only from chain + store
    assert fresh.model_cid == uninterrupted.model_cid
    assert fresh.report_cid == uninterrupted.report_cid
    assert fresh.report.hyper_used == report.hyper_next
    assert fresh.report.previous_model_cid == crashed.model_cid
    # the default rule's anchor record came back from the store, keyed by trainer index;
    # the cheat's blobs never reached the rule
    carried = get_rule_state(agg_store, fresh.report.rule_state_cid)
    assert carried.record.rounds == {str(i): 2 for i in range(4)}
    assert fresh.outcome.metrics["accuracy"] > report.metrics["accuracy_before"]
    assert isinstance(node().step(), RoundSummary)
    assert world.market.project(project_id).rounds_committed == 2
    assert all(t.step().status == "done" for t in trainers)
    assert torch.isfinite(fresh.outcome.new_global_params).all()


def test_empty_rounds_aggregator_attack_is_refused_and_pays_as_honest() -> None:
    """#13.8: an aggregator committing every round empty before the trainers' windows
    (on main the owner then reclaimed everything) is refused each round by the contract;
    every payout equals the honest run's."""
    base = SimulationConfig(
        trainers=3, rounds=2, dataset="synthetic", model="logreg", samples=300, epochs=1
    )
    honest = simulate(base)
    attacked = simulate(base.model_copy(update={"aggregator_attack": "empty_rounds"}))
    assert [e for e in attacked.protocol_events if "empty commit" in e] == [
        f"round {r}: the aggregator's empty commit was refused (RevealsPending)" for r in (1, 2)
    ]
    assert attacked.to_dict()["aggregator_attack"] == "empty_rounds"
    assert [p.reward for p in attacked.payouts] == [p.reward for p in honest.payouts]
    assert sum(p.reward for p in honest.payouts) > 0


CHEAT_BASE = SimulationConfig(
    trainers=3, rounds=2, dataset="synthetic", model="logreg", samples=300, epochs=1
)


@pytest.fixture(scope="module")
def honest_run() -> SimulationResult:
    return simulate(CHEAT_BASE)


@pytest.mark.parametrize("attack", ["self_deal", "rule_switch", "grind"])
def test_cheating_aggregator_is_outvoted_and_every_trainer_is_paid_as_honest(
    attack: str, honest_run: SimulationResult
) -> None:
    """#13.7, 13.9, 13.10: an aggregator that also runs trainer 0 over-scores it (self_deal),
    aggregates with FedAvg instead of the pinned rule (rule_switch) or picks the seed and
    arrival order that favour trainer 0 (grind). The two honest trainers replay each round
    with the pinned rule and the chain's seed and attest what they get: their stake-majority
    root replaces the aggregator's, its bond is slashed to the trainers, and every trainer's
    reward stays within 1 percentage point of the honest run's (same seed)."""
    attacked = simulate(CHEAT_BASE.model_copy(update={"aggregator_attack": attack}))
    out = attacked.to_dict()
    assert out["aggregator_attack"] == attack
    assert [(p["index"], p["attacker"]) for p in out["payouts"]] == [
        (0, True),
        (1, False),
        (2, False),
    ]
    reward = CHEAT_BASE.reward_wei
    assert sum(p.reward for p in honest_run.payouts) > reward // 2
    for cheated, honest in zip(attacked.payouts, honest_run.payouts, strict=True):
        assert abs(cheated.reward - honest.reward) <= reward // 100, (cheated, honest)
    replaced = [e for e in attacked.protocol_events if "replaced the aggregator's root" in e]
    assert replaced, attacked.protocol_events
    assert all("bond (0.1 ETH) is slashed to the trainers" in e for e in replaced)
    assert [p.bond for p in attacked.payouts] == [CHEAT_BASE.aggregator_bond_wei // 3] * 3
    assert all(p.bond == 0 for p in honest_run.payouts)


def test_honest_rounds_settle_as_committed_and_the_bond_stays(honest_run: SimulationResult) -> None:
    """With an honest aggregator every trainer's replay gives the committed root: each round
    settles unchanged, nothing is slashed, and the output reports no dispute."""
    market = honest_run.market
    assert market is not None
    for r in range(1, CHEAT_BASE.rounds + 1):
        state = market.round_state(honest_run.project_id, r)
        assert (state.settled, state.replaced) == (True, False)
    assert not market.project(honest_run.project_id).bond_slashed
    assert not any("disputed" in e for e in honest_run.protocol_events)
