"""Issue #13.7 on the embedded chain: a round pays only what its trainers attest.

Contribution scores are not covered by the ZK proof, so on main an aggregator that also ran
a trainer slot could score it ~100% and be paid. In an attested project a round's scores
root pays only once more than half of the round's active trainers (by stake) attested it;
a majority root that differs from the aggregator's replaces it and slashes the bond.
Every test here fails on main (no ``attested`` projects, no ``attestRound``).
"""

from __future__ import annotations

import pytest
from chain_asserts import reverts
from market_rounds import (
    DURATION,
    ETH,
    STAKE,
    cid_of,
    commit,
    commit_round,
    open_project,
    play,
    reveal,
)
from web3.logs import DISCARD

from marketplace.chain.market import RoundScores, ScoreClaim
from marketplace.chain.merkle import ScoreTree

pytestmark = pytest.mark.integration

BOND = ETH // 10


def attested_project(world, n: int = 3, rounds: int = 1, bond: int = BOND) -> int:
    return open_project(world, n, rounds, bond, attested=True)


def commit_scores(world, pid: int, round_: int, scores: RoundScores, n: int) -> None:
    world.as_(world.aggregator).commit_round(
        pid,
        round_,
        global_model_cid=bytes([3]) * 32,
        inlier_mask=[i in scores.inliers for i in range(n)],
        scores=scores.scores,
    )


def payouts(world, pid: int, trainers, replayed=None) -> list[tuple[int, int, int]]:
    out = []
    for t in trainers:
        receipt = world.as_(t).withdraw(pid, replayed=replayed)
        (event,) = world.market.contract.events.Withdrawn().process_receipt(receipt, errors=DISCARD)
        out.append((event["args"]["stake"], event["args"]["reward"], event["args"]["bond"]))
    return out


def test_self_dealt_scores_are_replaced_by_the_majority_and_the_bond_slashed(world):
    """The aggregator scores its own slot (trainer 0) 98% and that slot attests it; the two
    honest trainers attest the scores their replay gives: that root replaces the
    aggregator's, every trainer is paid the honest shares, the bond goes to the trainers
    and the aggregator cannot take it back."""
    pid = attested_project(world)
    trainers = world.trainers[:3]
    play(world, pid, 1, trainers)
    dealt = RoundScores([0, 1, 2], [98, 1, 1])
    honest = RoundScores([0, 1, 2], [1, 1, 2])
    commit_scores(world, pid, 1, dealt, 3)
    assert world.market.project(pid).total_score == 0  # nothing pays before attestation
    world.as_(trainers[0]).attest_round(pid, 1, dealt)
    world.as_(trainers[1]).attest_round(pid, 1, honest)
    assert not world.market.round_state(pid, 1).settled  # 1/3 and 1/3 of the stake
    receipt = world.as_(trainers[2]).attest_round(pid, 1, honest)
    (settled,) = world.market.contract.events.RoundSettled().process_receipt(
        receipt, errors=DISCARD
    )
    assert settled["args"]["replaced"] is True
    (slashed,) = world.market.contract.events.BondSlashed().process_receipt(receipt, errors=DISCARD)
    assert slashed["args"]["amount"] == BOND
    state = world.market.round_state(pid, 1)
    assert (state.settled, state.replaced, state.scores_root) == (True, True, honest.root)
    with reverts("RoundSettledAlready"):
        world.as_(trainers[0]).attest_round(pid, 1, dealt)
    world.market.finalize(pid)
    dealt_claim = ScoreClaim(1, 0, 98, ScoreTree.of_scores(dealt.inliers, dealt.scores).proof(0))
    with reverts("InvalidClaim"):  # the aggregator's leaves do not prove the settled root
        world.as_(trainers[0]).claim_scores(pid, [dealt_claim])
    paid = payouts(world, pid, trainers, replayed={1: honest})
    assert [r for _, r, _ in paid] == [ETH // 4, ETH // 4, ETH // 2]
    assert all(s == STAKE and b == BOND // 3 for s, _, b in paid)
    with reverts("BondWasSlashed"):
        world.as_(world.aggregator).withdraw_bond(pid)


def test_honest_round_settles_unchanged_and_the_bond_comes_back(world):
    """A majority attesting the aggregator's own root settles it as committed."""
    pid = attested_project(world)
    trainers = world.trainers[:3]
    play(world, pid, 1, trainers)
    honest = RoundScores([0, 1, 2], [1, 1, 2])
    commit_scores(world, pid, 1, honest, 3)
    for t in trainers[:2]:
        world.as_(t).attest_round(pid, 1, honest)
    state = world.market.round_state(pid, 1)
    assert (state.settled, state.replaced) == (True, False)
    world.market.finalize(pid)
    assert [r for _, r, _ in payouts(world, pid, trainers)] == [ETH // 4, ETH // 4, ETH // 2]
    world.as_(world.aggregator).withdraw_bond(pid)
    assert world.market.project(pid).bond_posted == 0


def test_round_without_a_majority_pays_no_reward_but_refunds_stakes(world):
    """Attesters split (or stay silent): the round never settles, its scores cannot be
    claimed, the owner reclaims the reward and every trainer gets its stake back."""
    pid = attested_project(world)
    trainers = world.trainers[:3]
    play(world, pid, 1, trainers)
    commit_scores(world, pid, 1, RoundScores([0, 1, 2], [98, 1, 1]), 3)
    world.as_(trainers[0]).attest_round(pid, 1, RoundScores([0, 1, 2], [98, 1, 1]))
    world.as_(trainers[1]).attest_round(pid, 1, RoundScores([0, 1, 2], [1, 1, 2]))
    with reverts("NotFinalizable"):  # the attestation window is still open
        world.market.finalize(pid)
    world.chain.advance_time(DURATION + 1)
    with reverts("AttestationClosed"):
        world.as_(trainers[2]).attest_round(pid, 1, RoundScores([0, 1, 2], [1, 1, 2]))
    world.market.finalize(pid)
    assert world.market.score_claims(pid, 0) == []
    assert payouts(world, pid, trainers) == [(STAKE, 0, 0)] * 3
    world.market.reclaim(pid)  # the whole reward goes back to the owner
    assert world.market.project(pid).status.name == "FINALIZED"


def test_only_active_trainers_attest_once_each_in_attested_projects(world):
    """Access control and replay protection of ``attestRound``."""
    pid = attested_project(world, n=4, rounds=2)
    trainers = world.trainers[:4]
    openings = [commit(world, t, pid, 1, cid_of(i)) for i, t in enumerate(trainers[:3])]
    world.chain.advance_time(DURATION + 1)  # trainer 3 never commits: not active
    for t, o in zip(trainers[:3], openings, strict=True):
        reveal(world, t, pid, 1, o)
    world.chain.advance_time(DURATION + 1)
    scores = RoundScores([0, 1, 2], [1, 1, 1])
    with reverts("AttestationClosed"):  # the round is not committed yet
        world.as_(trainers[0]).attest_round(pid, 1, scores)
    commit_scores(world, pid, 1, scores, 4)
    with reverts("NotActive"):
        world.as_(trainers[3]).attest_round(pid, 1, scores)
    with reverts("NotRegistered"):
        world.as_(world.stranger).attest_round(pid, 1, scores)
    with reverts("NotRegistered"):  # the aggregator has no vote of its own
        world.as_(world.aggregator).attest_round(pid, 1, scores)
    world.as_(trainers[0]).attest_round(pid, 1, scores)
    with reverts("AlreadyAttested"):
        world.as_(trainers[0]).attest_round(pid, 1, scores)
    assert world.market.attestation(pid, 1, 0, scores) == (True, STAKE)
    plain, _ = world.market.create_project(
        reward=ETH,
        aggregator=world.aggregator.address,
        rounds=1,
        round_duration=DURATION,
        min_stake=STAKE,
    )
    world.as_(trainers[0]).register(plain, STAKE)
    play(world, plain, 1, trainers[:1])
    commit_scores(world, plain, 1, RoundScores([0], [1]), 1)
    with reverts("NotAttested"):
        world.as_(trainers[0]).attest_round(plain, 1, RoundScores([0], [1]))


def test_trainer_nodes_replay_and_attest_in_their_own_loop(world):
    """Node level: ``TrainerNode.step`` replays a committed round and attests it with no
    outside help; a self-dealing aggregator's root is replaced by the trainers' and each
    node claims the replaced round from its own replay."""
    from federation import self_dealing_federation

    fed, agg = self_dealing_federation(world)
    assert [n.step().status for n in fed.trainers] == ["committed"] * 3
    assert [n.step().status for n in fed.trainers] == ["revealed"] * 3
    agg.step()
    steps = [n.step() for n in fed.trainers]
    assert [s.status for s in steps[:2]] == ["attested", "attested"]
    assert "scores[0]: committed" in steps[0].detail  # the replay found the over-score
    assert steps[2].status == "done"  # settled by the first two: nothing left to attest
    state = world.market.round_state(fed.project_id, 1)
    assert (state.settled, state.replaced) == (True, True)
    world.market.finalize(fed.project_id)
    rewards = []
    for node in fed.trainers:
        receipt = node.withdraw()
        (event,) = world.market.contract.events.Withdrawn().process_receipt(receipt, errors=DISCARD)
        rewards.append(event["args"]["reward"])
    assert sum(rewards) > ETH * 99 // 100  # every share claimed, from the replayed root
    assert max(rewards) < ETH // 2  # no ~99% for the aggregator's slot


def test_a_rejection_in_an_attested_project_is_judged_by_replay_not_by_dispute(world):
    """A trainer rejected by the aggregator used to halt the project with one dispute,
    after which the owner reclaimed the whole reward: an owner running a trainer that
    publishes garbage on purpose evaded payment at no cost. In an attested project the
    co-trainers' replay re-checks every update, so the dispute is refused; a wrong
    rejection is outvoted instead (the victim's score is in the majority's root)."""
    pid = attested_project(world)
    trainers = world.trainers[:3]
    play(world, pid, 1, trainers)
    commit_round(world, pid, 1, [True, True, False], rejected=[False, False, True])
    with reverts("JudgedByAttestation"):
        world.as_(trainers[2]).dispute_rejection(pid, 1)
    replayed = RoundScores([0, 1, 2], [1, 1, 2])  # the replay accepted trainer 2's update
    for t in trainers[:2]:
        world.as_(t).attest_round(pid, 1, replayed)
    state = world.market.round_state(pid, 1)
    assert (state.settled, state.replaced) == (True, True)
    world.chain.advance_time(DURATION + 1)
    with reverts("JudgedByAttestation"):
        world.as_(trainers[2]).dispute_rejection(pid, 1)
    world.market.finalize(pid)
    paid = payouts(world, pid, trainers, replayed={1: replayed})
    assert [r for _, r, _ in paid] == [ETH // 4, ETH // 4, ETH // 2]
    assert world.market.project(pid).status.name == "FINALIZED"


def test_expected_payout_is_what_withdraw_pays_when_the_bond_was_slashed(world):
    """`expected_payout` recomputed the reward share from the scores and dropped the
    slashed bond's share the contract adds: a trainer of a replaced round was shown less
    than its withdrawal then paid."""
    pid = attested_project(world)
    trainers = world.trainers[:3]
    play(world, pid, 1, trainers)
    honest = RoundScores([0, 1, 2], [1, 1, 2])
    commit_scores(world, pid, 1, RoundScores([0, 1, 2], [98, 1, 1]), 3)
    for t in trainers[1:]:
        world.as_(t).attest_round(pid, 1, honest)
    world.market.finalize(pid)
    world.as_(trainers[2]).claim_scores(
        pid, world.market.score_claims(pid, 2, replayed={1: honest})
    )
    expected = world.market.expected_payout(pid, trainers[2].address)
    ((stake, reward, bond),) = payouts(world, pid, trainers[2:], replayed={1: honest})
    assert expected == (stake, reward + bond) == (STAKE, ETH // 2 + BOND // 3)
