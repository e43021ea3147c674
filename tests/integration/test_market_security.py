"""ContributionMarket on the embedded chain: access control, round rules, payouts,
deadlines and re-entrancy, each failing with its named custom error."""

from __future__ import annotations

import pytest
from chain_asserts import reverts
from market_rounds import commit, opening_of, play, reveal

from marketplace.chain.artifacts import load_artifact
from marketplace.chain.market import ProjectStatus
from marketplace.chain.tx import TxSender

pytestmark = pytest.mark.integration

ETH = 10**18
STAKE = 10**16
DURATION = 3600
CID = bytes([7]) * 32
SKETCH = bytes([9]) * 32


def new_project(world, rounds: int = 2, reward: int = ETH) -> int:
    pid, _ = world.market.create_project(
        reward=reward,
        aggregator=world.aggregator.address,
        rounds=rounds,
        round_duration=DURATION,
        min_stake=STAKE,
    )
    return pid


def registered_project(world, n: int = 3, rounds: int = 2) -> int:
    pid = new_project(world, rounds)
    for t in world.trainers[:n]:
        world.as_(t).register(pid, STAKE)
    return pid


def commit_all(world, pid: int, round_: int, n: int = 3) -> None:
    """Every trainer commits; the commit window closes at once and each reveals."""
    play(world, pid, round_, world.trainers[:n])


def finished_project(world, scores=(3, 1, 0)) -> int:
    pid = registered_project(world, n=3, rounds=1)
    commit_all(world, pid, 1)
    agg = world.as_(world.aggregator)
    inliers = [s > 0 for s in scores]
    agg.commit_round(
        pid, 1, global_model_cid=CID, inlier_mask=inliers, scores=[s for s in scores if s]
    )
    agg.finalize(pid)
    return pid


# ------------------------------------------------------------------ access control


def test_every_aggregator_function_rejects_everyone_else(world):
    pid = registered_project(world)
    signed = [world.market.sign_update(world.trainers[3], pid, 1, SKETCH)]
    commit_all(world, pid, 1)
    for intruder in (world.owner, world.trainers[0], world.stranger):
        m = world.as_(intruder)
        with reverts("Unauthorized"):
            m.commit_round(pid, 1, global_model_cid=CID, inlier_mask=[True] * 3, scores=[1, 1, 1])
        with reverts("Unauthorized"):
            m.commit_updates_signed(pid, 1, signed)


def test_owner_only_functions_reject_everyone_else(world):
    pid = new_project(world)
    for intruder in (world.aggregator, world.trainers[0], world.stranger):
        with reverts("Unauthorized"):
            world.as_(intruder).cancel_project(pid)
    done = finished_project(world)
    for intruder in (world.aggregator, world.trainers[0], world.stranger):
        with reverts("Unauthorized"):
            world.as_(intruder).reclaim(done)


def test_trainer_functions_reject_non_trainers(world):
    pid = registered_project(world, rounds=1)
    for outsider in (world.owner, world.aggregator, world.stranger):
        with reverts("NotRegistered"):
            world.as_(outsider).commit_update(pid, 1, SKETCH)
    commit_all(world, pid, 1)
    agg = world.as_(world.aggregator)
    agg.commit_round(pid, 1, global_model_cid=CID, inlier_mask=[True] * 3, scores=[1, 1, 1])
    with reverts("Unauthorized"):
        world.as_(world.stranger).finalize(pid)
    agg.finalize(pid)
    for outsider in (world.owner, world.aggregator, world.stranger):
        with reverts("NotRegistered"):
            world.as_(outsider).withdraw(pid)


def test_signed_update_from_wrong_key_is_rejected(world):
    pid = registered_project(world)
    forged = world.market.sign_update(world.stranger, pid, 1, SKETCH)
    forged = type(forged)(world.trainers[0].address, SKETCH, forged.signature)
    with reverts("InvalidSignature"):
        world.as_(world.aggregator).commit_updates_signed(pid, 1, [forged])


def test_signed_update_cannot_be_replayed_or_moved_to_another_round(world):
    pid = registered_project(world, rounds=2)
    agg = world.as_(world.aggregator)
    opening = opening_of(world.trainers[0], 1, CID)
    commitment = opening.commitment(pid, 1)
    signed = world.market.sign_update(world.trainers[0], pid, 1, commitment)
    agg.commit_updates_signed(pid, 1, [signed])
    with reverts("AlreadyCommitted"):
        agg.commit_updates_signed(pid, 1, [signed])
    world.chain.advance_time(DURATION + 1)  # the others never commit: the window closes
    agg.reveal_updates(pid, 1, [opening])  # anyone may send a trainer's opening
    agg.commit_round(pid, 1, global_model_cid=CID, inlier_mask=[True, False, False], scores=[1])
    with reverts("InvalidSignature"):  # the signature binds round 1: invalid for round 2
        agg.commit_updates_signed(pid, 2, [signed])


# ------------------------------------------------------------------ round rules


def test_double_registration_fails(world):
    pid = registered_project(world, n=1)
    with reverts("AlreadyRegistered"):
        world.as_(world.trainers[0]).register(pid, STAKE)


def test_insufficient_stake_fails(world):
    pid = new_project(world)
    with reverts("StakeTooLow"):
        world.as_(world.trainers[0]).register(pid, STAKE - 1)


def test_unknown_project_fails(world):
    with reverts("ProjectNotFound"):
        world.as_(world.trainers[0]).register(99, STAKE)


def test_commit_for_wrong_round_fails(world):
    pid = registered_project(world)
    with reverts("WrongRound"):
        world.as_(world.trainers[0]).commit_update(pid, 2, SKETCH)
    commit_all(world, pid, 1)
    with reverts("WrongRound"):
        world.as_(world.aggregator).commit_round(
            pid, 2, global_model_cid=CID, inlier_mask=[True] * 3, scores=[1, 1, 1]
        )


def test_late_commitment_fails(world):
    pid = registered_project(world)
    world.chain.advance_time(DURATION + 1)
    with reverts("CommitWindowClosed"):
        world.as_(world.trainers[0]).commit_update(pid, 1, SKETCH)


def test_double_commitment_fails(world):
    pid = registered_project(world)
    world.as_(world.trainers[0]).commit_update(pid, 1, SKETCH)
    with reverts("AlreadyCommitted"):
        world.as_(world.trainers[0]).commit_update(pid, 1, SKETCH)


def test_mask_must_only_name_revealed_trainers(world):
    pid = registered_project(world)
    first = commit(world, world.trainers[0], pid, 1, CID)
    commit(world, world.trainers[1], pid, 1, bytes([8]) * 32)  # commits, never reveals
    world.chain.advance_time(DURATION + 1)
    reveal(world, world.trainers[0], pid, 1, first)
    world.chain.advance_time(DURATION)
    with reverts("MaskIncludesUnrevealed"):
        world.as_(world.aggregator).commit_round(
            pid, 1, global_model_cid=CID, inlier_mask=[True, True, False], scores=[1, 1]
        )


def test_scores_are_given_for_inliers_only(world):
    pid = registered_project(world)
    commit_all(world, pid, 1)
    with reverts("ScoresLengthMismatch"):
        world.as_(world.aggregator).commit_round(
            pid, 1, global_model_cid=CID, inlier_mask=[True, False, False], scores=[1, 5]
        )


def test_inlier_and_rejected_masks_are_disjoint(world):
    pid = registered_project(world)
    commit_all(world, pid, 1)
    with reverts("MaskOverlap"):
        world.as_(world.aggregator).commit_round(
            pid,
            1,
            global_model_cid=CID,
            inlier_mask=[True, False, False],
            rejected_mask=[True, False, False],
            scores=[1],
        )


def test_outlier_earns_nothing(world):
    pid = finished_project(world, scores=(3, 1, 0))
    third = world.trainers[2]
    assert world.market.expected_payout(pid, third.address) == (STAKE, 0)
    assert world.market.expected_payout(pid, world.trainers[0].address) == (STAKE, ETH * 3 // 4)


def test_cannot_finalize_early(world):
    pid = registered_project(world)
    with reverts("NotFinalizable"):
        world.market.finalize(pid)


# ------------------------------------------------------------------ payouts


def test_payouts_are_proportional_and_dust_returns_to_owner(world):
    pid = finished_project(world, scores=(2, 1, 0))
    w3 = world.chain.w3
    before = w3.eth.get_balance(world.market.address)
    for t in world.trainers[:3]:
        world.as_(t).withdraw(pid)
    paid = before - w3.eth.get_balance(world.market.address)
    assert paid == 3 * STAKE + ETH * 2 // 3 + ETH * 1 // 3
    world.market.reclaim(pid)
    assert w3.eth.get_balance(world.market.address) == 0
    with reverts("NothingToReclaim"):
        world.market.reclaim(pid)


def test_owner_cannot_take_dust_before_scored_trainers_withdraw(world):
    pid = finished_project(world, scores=(2, 1, 0))
    with reverts("NothingToReclaim"):
        world.market.reclaim(pid)


def test_withdraw_twice_fails(world):
    pid = finished_project(world)
    world.as_(world.trainers[0]).withdraw(pid)
    with reverts("AlreadyWithdrawn"):
        world.as_(world.trainers[0]).withdraw(pid)


def test_withdraw_before_finalize_fails(world):
    pid = registered_project(world)
    with reverts("ProjectNotFinalized"):
        world.as_(world.trainers[0]).withdraw(pid)


def test_owner_cannot_cancel_once_trainers_joined(world):
    pid = registered_project(world, n=1)
    with reverts("CancelNotAllowed"):
        world.market.cancel_project(pid)


def test_cancel_before_anyone_joins_refunds_owner(world):
    pid = new_project(world)
    world.market.cancel_project(pid)
    world.market.reclaim(pid)
    assert world.chain.w3.eth.get_balance(world.market.address) == 0
    with reverts("ProjectNotOpen"):
        world.as_(world.trainers[0]).register(pid, STAKE)


# ------------------------------------------------------------------ deadlines


def test_vanished_aggregator_cannot_lock_stakes(world):
    pid = registered_project(world)
    commit_all(world, pid, 1)
    world.chain.advance_time(3 * DURATION + 1)
    with reverts("AggregationWindowClosed"):
        world.as_(world.aggregator).commit_round(
            pid, 1, global_model_cid=CID, inlier_mask=[True] * 3, scores=[1, 1, 1]
        )
    world.as_(world.trainers[1]).finalize(pid)  # a trainer closes the stale project
    info = world.market.project(pid)
    assert info.status is ProjectStatus.FINALIZED
    world.as_(world.trainers[0]).withdraw(pid)
    world.market.reclaim(pid)  # nobody scored: the whole reward goes back
    assert world.chain.w3.eth.get_balance(world.market.address) == 2 * STAKE


def test_vanished_trainers_cannot_lock_reward(world):
    pid = registered_project(world, rounds=1)
    world.chain.advance_time(3 * DURATION + 1)
    world.market.finalize(pid)
    world.market.reclaim(pid)
    assert world.chain.w3.eth.get_balance(world.market.address) == 3 * STAKE


# ------------------------------------------------------------------ re-entrancy


def test_reentrant_receiver_cannot_withdraw_twice(world):
    attacker_eoa = world.stranger
    sender = TxSender(world.chain, attacker_eoa)
    art = load_artifact("ReentrantTrainer")
    factory = world.chain.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    receipt = sender.transact(factory.constructor(world.market.address))
    evil = world.chain.w3.eth.contract(address=receipt["contractAddress"], abi=art.abi)
    pid = registered_project(world, n=1, rounds=1)
    sender.transact(evil.functions.join(pid), value=STAKE)
    first = commit(world, world.trainers[0], pid, 1, CID)
    sender.transact(evil.functions.commit(1, bytes([8]) * 32))
    reveal(world, world.trainers[0], pid, 1, first)
    sender.transact(evil.functions.reveal(1, bytes([8]) * 32))
    world.as_(world.aggregator).commit_round(
        pid, 1, global_model_cid=CID, inlier_mask=[True, True], scores=[1, 1]
    )
    world.market.finalize(pid)
    balance = world.chain.w3.eth.get_balance(world.market.address)
    with reverts("ReentrancyGuardReentrantCall"):
        sender.transact(evil.functions.cashOut())
    assert world.chain.w3.eth.get_balance(world.market.address) == balance


def test_only_registered_trainers_announce_endpoints(world):
    pid = registered_project(world, n=1)
    world.as_(world.trainers[0]).announce_endpoint(pid, "http://127.0.0.1:9000")
    assert world.market.endpoints(pid) == {world.trainers[0].address: "http://127.0.0.1:9000"}
    with reverts("NotRegistered"):
        world.as_(world.stranger).announce_endpoint(pid, "http://evil")
    with reverts("EndpointTooLong"):
        world.as_(world.trainers[0]).announce_endpoint(pid, "x" * 300)
