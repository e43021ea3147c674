"""The protocol holes of issue #13 on the embedded chain, each as the attack it closes.

Every test here failed on the main branch before commit-then-reveal (the attack worked
there); it passes now because the contract refuses or excludes the cheat.
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
    opening_of,
    play,
    reveal,
)

from marketplace.chain.market import ProjectStatus

pytestmark = pytest.mark.integration


def project(world, n: int = 3, rounds: int = 2, bond: int = 0) -> int:
    return open_project(world, n, rounds, bond)


# ------------------------------------------------------------ 13.1 copying


def test_commitment_hides_the_update_until_the_commit_window_closes(world):
    """On main the CID and sketch were public at commit time. Now the event carries only a
    keccak hash, no opening is accepted while trainers can still commit, and a copier that
    committed blind cannot open the victim's update."""
    pid = project(world)
    victim, copier = world.trainers[0], world.trainers[1]
    opening = commit(world, victim, pid, 1, cid_of(0))
    receipt_logs = world.market.contract.events.UpdateCommitted().get_logs(
        from_block=0, argument_filters={"projectId": pid}
    )
    (event,) = receipt_logs
    assert set(event["args"]) == {"projectId", "round", "trainer", "index", "commitment"}
    assert event["args"]["commitment"] == opening.commitment(pid, 1)
    with reverts("RevealWindowNotOpen"):  # the victim's own reveal waits for the window
        reveal(world, victim, pid, 1, opening)
    blind = commit(world, copier, pid, 1, cid_of(1))
    commit(world, world.trainers[2], pid, 1, cid_of(2))  # roster complete: window closes
    reveal(world, victim, pid, 1, opening)
    stolen = opening_of(copier, 1, opening.cid_digest, opening.sketch_commitment)
    with reverts("InvalidOpening"):  # seen now, too late: its commitment binds its own CID
        reveal(world, copier, pid, 1, stolen)
    reveal(world, copier, pid, 1, blind)
    assert world.market.round_masks(pid, 1).revealed == [True, True, False]


def test_trainer_node_serves_its_blob_only_after_revealing(world):
    """Node level: the update blob (with its sketch salt) is not in the store the trainer's
    gateway serves until the trainer has revealed."""
    from federation import open_federation

    from marketplace.learning import ModelSpec, load_dataset

    train, validation = load_dataset("synthetic", 0, num_samples=200)
    spec = ModelSpec.for_data("logreg", train.input_shape, train.num_classes, seed=0)
    fed = open_federation(world, train, validation, spec, trainers=2, rounds=1)
    first, second = fed.trainers
    step = first.step()
    assert step.status == "committed" and step.cid is not None
    assert not first.store.has(step.cid)
    assert first.step().status == "waiting"  # the other trainer has not committed yet
    assert second.step().status == "committed"
    assert first.step().status == "revealed"
    assert first.store.has(step.cid)


def test_unmatched_reveal_and_reveal_without_commitment_are_refused(world):
    pid = project(world, n=3)
    good = commit(world, world.trainers[0], pid, 1, cid_of(0))
    world.chain.advance_time(DURATION + 1)  # trainers 1 and 2 missed the commit window
    with reverts("CommitWindowClosed"):
        commit(world, world.trainers[1], pid, 1, cid_of(1))
    with reverts("NotCommitted"):
        reveal(world, world.trainers[1], pid, 1, opening_of(world.trainers[1], 1, cid_of(1)))
    wrong = opening_of(world.trainers[0], 1, cid_of(5))
    with reverts("InvalidOpening"):
        reveal(world, world.trainers[0], pid, 1, wrong)
    world.chain.advance_time(DURATION)
    with reverts("RevealWindowClosed"):  # too late: excluded from the round
        reveal(world, world.trainers[0], pid, 1, good)
    assert world.market.round_masks(pid, 1).revealed == [False] * 3
    with reverts("MaskIncludesUnrevealed"):
        commit_round(world, pid, 1, [True, False, False])


# ------------------------------------------------------------ 13.2 copycat by CID


@pytest.mark.parametrize("victim_reveals_first", [True, False])
def test_first_committer_keeps_a_cid_and_the_copier_is_excluded(world, victim_reveals_first):
    """On main a copy of another trainer's CID made the clone filter drop both. Now the
    earlier committer keeps it whatever the reveal order; the later one is excluded."""
    pid = project(world, n=3)
    victim, copier = world.trainers[0], world.trainers[1]
    mine = commit(world, victim, pid, 1, cid_of(0))
    copy = commit(world, copier, pid, 1, cid_of(0))  # learned out of band, committed later
    other = commit(world, world.trainers[2], pid, 1, cid_of(2))
    order = [(victim, mine), (copier, copy)]
    for who, o in order if victim_reveals_first else reversed(order):
        reveal(world, who, pid, 1, o)
    reveal(world, world.trainers[2], pid, 1, other)
    assert world.market.round_masks(pid, 1).revealed == [True, False, True]
    excluded = world.market.contract.events.UpdateExcluded().get_logs(
        from_block=0, argument_filters={"projectId": pid}
    )
    assert [(e["args"]["index"], e["args"]["holder"]) for e in excluded] == [(1, 0)]
    with reverts("MaskIncludesUnrevealed"):
        commit_round(world, pid, 1, [True, True, True])
    commit_round(world, pid, 1, [True, False, True])


# ------------------------------------------------------------ 13.4 roster


def test_registration_during_a_round_joins_the_next_round(world):
    """On main a registration while a round was open changed the mask length and made the
    honest aggregator's commit revert. Now the roster is fixed by the round's first
    commitment; the newcomer takes part from the next round."""
    pid = project(world, n=3)
    first = commit(world, world.trainers[0], pid, 1, cid_of(0))
    world.as_(world.trainers[3]).register(pid, STAKE)
    assert world.market.trainer(pid, 3).joined_round == 2
    with reverts("NotInRoster"):
        commit(world, world.trainers[3], pid, 1, cid_of(3))
    rest = [commit(world, t, pid, 1, cid_of(i + 1)) for i, t in enumerate(world.trainers[1:3])]
    for t, o in zip(world.trainers[:3], [first, *rest], strict=True):
        reveal(world, t, pid, 1, o)
    assert world.market.round_state(pid, 1).roster == 3
    commit_round(world, pid, 1, [True, True, True])  # a 3-trainer mask, as it was opened
    play(world, pid, 2, world.trainers[:4])
    assert world.market.round_state(pid, 2).roster == 4
    commit_round(world, pid, 2, [True] * 4)


# ------------------------------------------------------------ 13.8 empty rounds


def test_aggregator_cannot_commit_rounds_back_to_back(world):
    """On main an aggregator could commit every round at once with empty masks. Now a round
    can only be committed once its reveal window is closed: everyone committed and
    revealed, or both windows ran out."""
    pid = project(world, n=3, rounds=3)
    with reverts("RevealsPending"):
        commit_round(world, pid, 1, [])
    commit(world, world.trainers[0], pid, 1, cid_of(0))
    world.chain.advance_time(DURATION + 1)
    with reverts("RevealsPending"):  # the committer may still reveal
        commit_round(world, pid, 1, [False] * 3)
    world.chain.advance_time(DURATION)
    commit_round(world, pid, 1, [False] * 3)
    with reverts("RevealsPending"):
        commit_round(world, pid, 2, [])


def test_rounds_need_the_declared_aggregator_bond(world):
    pid = project(world, n=1, rounds=1)
    pid_bonded, _ = world.market.create_project(
        reward=ETH,
        aggregator=world.aggregator.address,
        rounds=1,
        round_duration=DURATION,
        min_stake=STAKE,
        aggregator_bond=ETH,
    )
    world.as_(world.trainers[0]).register(pid_bonded, STAKE)
    play(world, pid_bonded, 1, world.trainers[:1])
    with reverts("BondMissing"):
        commit_round(world, pid_bonded, 1, [True])
    with reverts("Unauthorized"):
        world.as_(world.trainers[0]).post_bond(pid_bonded, ETH)
    world.as_(world.aggregator).post_bond(pid_bonded, ETH)
    commit_round(world, pid_bonded, 1, [True])
    world.market.finalize(pid_bonded)
    world.as_(world.aggregator).withdraw_bond(pid_bonded)
    assert world.market.project(pid_bonded).bond_posted == 0
    assert world.market.project(pid).status is ProjectStatus.OPEN


def test_dispute_window_closes_and_then_the_round_pays(world):
    """A rejection nobody disputes in time stands: after the window the project finalizes
    and the rejected trainer cannot dispute any more."""
    pid = project(world, n=3, rounds=1)
    play(world, pid, 1, world.trainers[:3])
    commit_round(world, pid, 1, [True, True, False], rejected=[False, False, True])
    with reverts("NotFinalizable"):
        world.market.finalize(pid)
    world.chain.advance_time(DURATION + 1)
    with reverts("NotDisputable"):
        world.as_(world.trainers[2]).dispute_rejection(pid, 1)
    world.market.finalize(pid)
    assert world.market.expected_payout(pid, world.trainers[0].address) == (STAKE, ETH // 2)


# ------------------------------------------------------------ 13.10 seed grinding


def test_round_randomness_does_not_depend_on_reveal_order(world):
    """On main the seed folded commitments in arrival order, which the aggregator controls
    (it batches them): reordering moved a share by 12.5%. Now it is the XOR of the
    trainers' hidden salts, the same for every order of the same reveals."""
    pid = project(world, n=4)
    openings = [commit(world, t, pid, 1, cid_of(i)) for i, t in enumerate(world.trainers[:4])]
    snapshot = world.chain.snapshot()
    folds = []
    for order in ([0, 1, 2, 3], [3, 1, 0, 2]):
        world.chain.revert(snapshot)
        world.as_(world.aggregator).reveal_updates(pid, 1, [openings[i] for i in order])
        folds.append(world.market.round_state(pid, 1).reveal_fold)
    assert folds[0] == folds[1] and folds[0] != bytes(32)


# ------------------------------------------------------------ 13.6 commit size


def test_scores_are_a_merkle_root_that_trainers_claim(world):
    """commitRound stores one root per round instead of one score per trainer; a score is
    credited only with a proof of its leaf, once, for the trainer it names."""
    from marketplace.chain.market import ScoreClaim

    pid = project(world, n=3, rounds=1)
    play(world, pid, 1, world.trainers[:3])
    world.as_(world.aggregator).commit_round(
        pid, 1, global_model_cid=bytes(32), inlier_mask=[True, True, False], scores=[3, 1]
    )
    assert world.market.round_state(pid, 1).scores_root != bytes(32)
    assert world.market.trainer(pid, 0).score == 0  # nothing stored per trainer yet
    (claim,) = world.market.score_claims(pid, 0)
    assert (claim.round, claim.index, claim.score) == (1, 0, 3)
    inflated = ScoreClaim(1, 0, 300, claim.proof)
    with reverts("InvalidClaim"):
        world.as_(world.trainers[0]).claim_scores(pid, [inflated])
    stolen = ScoreClaim(1, 2, 3, claim.proof)  # trainer 2's index with trainer 0's proof
    with reverts("InvalidClaim"):
        world.as_(world.trainers[2]).claim_scores(pid, [stolen])
    world.as_(world.stranger).claim_scores(pid, [claim])  # anyone may submit it
    assert world.market.trainer(pid, 0).score == 3
    with reverts("AlreadyClaimed"):
        world.as_(world.trainers[0]).claim_scores(pid, [claim])
    world.market.finalize(pid)
    w3 = world.chain.w3
    before = w3.eth.get_balance(world.market.address)
    for t in world.trainers[:3]:
        world.as_(t).withdraw(pid)  # trainer 1 claims inside its withdraw
    assert before - w3.eth.get_balance(world.market.address) == 3 * STAKE + ETH * 3 // 4 + ETH // 4
