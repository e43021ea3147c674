"""ChainDirectory on the embedded chain: scores in one call, feedback in one transaction,
and a resent batch (used receipts) filtered instead of reverting."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth_account import Account

from drag.chain_directory import ChainDirectory
from drag.feedback import FeedbackDelta, FeedbackQueue
from drag.receipts import sign_receipt
from marketplace.chain.connection import connect_embedded
from marketplace.chain.deploy import DEFAULT_SOURCE_STAKE, deploy_contract
from marketplace.chain.registry import RegistryClient
from marketplace.chain.tx import TxSender
from marketplace.errors import ConfigError

KEYS = ["0x" + f"{0x31 + i:02x}" * 32 for i in range(3)]


@dataclass
class World:
    directory: ChainDirectory
    admin: RegistryClient
    nonces: dict[int, int]

    def delta(self, sid: int, rel: float, use: float = 0.0, key: str | None = None):
        self.nonces[sid] = self.nonces.get(sid, 0) + 1
        nonce = self.nonces[sid]
        qid = (1000 * sid + nonce).to_bytes(32, "big")
        receipt = sign_receipt(
            key or KEYS[sid - 1], self.directory.domain, sid, nonce, qid, [f"p{sid}-{nonce}"]
        )
        return FeedbackDelta(sid, receipt, rel, use)


@pytest.fixture(scope="module")
def world() -> World:
    chain = connect_embedded()
    admin_account = chain.dev_account(0)
    address = deploy_contract(
        TxSender(chain, admin_account), "SourceRegistry", DEFAULT_SOURCE_STAKE
    ).address
    admin = RegistryClient(chain, address, admin_account)
    for i, key in enumerate(KEYS):
        owner = admin.as_account(chain.dev_account(1 + i))
        owner.register_source(Account.from_key(key).address, f"http://127.0.0.1:{9100 + i}")
    evaluator = chain.dev_account(5)
    admin.grant_evaluator(evaluator.address)
    return World(ChainDirectory(admin.as_account(evaluator)), admin, {})


def test_list_sources_reads_the_registry(world: World) -> None:
    records = world.directory.list_sources()
    assert [r.source_id for r in records] == [1, 2, 3]
    assert records[0].address == Account.from_key(KEYS[0]).address
    assert records[2].endpoint == "http://127.0.0.1:9102" and records[0].usefulness == 1.0


def test_feedback_moves_scores_and_a_resend_never_reverts(world: World) -> None:
    before = {r.source_id: r for r in world.directory.list_sources()}
    batch = [world.delta(1, 0.5, 0.5), world.delta(2, -0.25), world.delta(3, 2.0)]  # 2.0: clipped
    assert world.directory.submit_feedback(batch) is not None
    after = {r.source_id: r for r in world.directory.list_sources()}
    assert after[1].reliability_pos == before[1].reliability_pos + 0.5
    assert after[1].usefulness == before[1].usefulness + 0.5
    assert after[2].reliability_neg == before[2].reliability_neg + 0.25
    assert after[3].reliability_pos == before[3].reliability_pos + 1.0

    dropped = world.directory.dropped
    assert world.directory.submit_feedback(batch) is None  # the whole batch was used
    assert world.directory.dropped == dropped + 3
    fresh = world.delta(1, 0.1)
    assert world.directory.submit_feedback([*batch, fresh, fresh]) is not None
    final = {r.source_id: r for r in world.directory.list_sources()}
    assert final[1].reliability_pos == pytest.approx(after[1].reliability_pos + 0.1)
    assert final[2] == after[2]


def test_receipts_signed_by_a_wrong_key_are_dropped(world: World) -> None:
    before = world.directory.list_sources()
    forged = world.delta(2, 1.0, key=KEYS[0])
    assert world.directory.submit_feedback([forged]) is None
    assert world.directory.list_sources() == before


def test_a_reader_without_the_role_is_told_how_to_get_it(world: World) -> None:
    stranger = world.admin.as_account(world.admin.chain.dev_account(7))
    with pytest.raises(ConfigError, match="grant-evaluator"):
        ChainDirectory(stranger).check_evaluator()
    ChainDirectory(world.directory.registry).check_evaluator()


# ------------------------------------------------------------------ nothing dropped in silence


def fresh_world() -> World:
    """A registry of its own (tests below rotate keys, deactivate and slash sources)."""
    chain = connect_embedded()
    admin_account = chain.dev_account(0)
    address = deploy_contract(
        TxSender(chain, admin_account), "SourceRegistry", DEFAULT_SOURCE_STAKE
    ).address
    admin = RegistryClient(chain, address, admin_account)
    for i, key in enumerate(KEYS):
        owner = admin.as_account(chain.dev_account(1 + i))
        owner.register_source(Account.from_key(key).address, f"http://127.0.0.1:{9100 + i}")
    evaluator = chain.dev_account(5)
    admin.grant_evaluator(evaluator.address)
    return World(ChainDirectory(admin.as_account(evaluator)), admin, {})


def test_rotated_keys_and_deactivated_sources_still_take_their_feedback(tmp_path) -> None:
    """The client used to drop, without a word, deltas whose receipt was signed by a key
    the source has since rotated away from, and deltas for deactivated sources."""
    world = fresh_world()
    chain = world.admin.chain
    signed_before = world.delta(1, -1.0)
    owner1 = world.admin.as_account(chain.dev_account(1))
    owner1.update_source(1, Account.from_key(KEYS[2]).address, "http://127.0.0.1:9200")
    world.admin.as_account(chain.dev_account(2)).deactivate(2)
    inactive = world.delta(2, -1.0)
    queue = FeedbackQueue(tmp_path / "q.jsonl", world.directory.submit, max_batch=10)
    queue.put([signed_before, inactive])
    assert queue.flush() == 2
    rows = {r.source_id: r for r in world.directory.list_sources()}
    assert rows[1].reliability_neg == 1.0 and rows[2].reliability_neg == 1.0
    assert not rows[2].active and queue.dropped == [] and queue.status().dropped == 0


def test_every_dropped_delta_is_reported_with_its_reason(tmp_path) -> None:
    world = fresh_world()
    good = world.delta(1, 0.5)
    forged = world.delta(2, 1.0, key=KEYS[0])
    unknown = FeedbackDelta(9, good.receipt, 1.0, 0.0)
    queue = FeedbackQueue(tmp_path / "q.jsonl", world.directory.submit, max_batch=10)
    queue.put([good, forged, unknown, good])
    queue.flush()
    reasons = {(d.delta.source_id, d.reason) for d in queue.dropped}
    assert reasons == {
        (2, "receipt is signed by neither the source's key nor a former key valid for nonce 1"),
        (9, "source 9 is not registered"),
        (1, "the same receipt appears twice in the batch"),
    }
    queue.put([good])  # a resend: already applied in this account's lane
    queue.flush()
    status = queue.status()
    assert status.pending == 0 and status.dropped == 4
    assert status.dropped_by_reason["receipt already applied in this evaluator's lane"] == 1
    assert status.last_flush is not None and status.last_flush["applied"] == 0
    # the log survives a restart of the process
    reopened = FeedbackQueue(tmp_path / "q.jsonl", world.directory.submit)
    assert reopened.status().dropped == 4 and world.directory.dropped == 4


def test_two_receipts_with_one_nonce_are_reported_as_equivocation(tmp_path) -> None:
    world = fresh_world()
    first = world.delta(3, 1.0)
    # the source answers another query under the same nonce
    receipt = sign_receipt(KEYS[2], world.directory.domain, 3, 1, b"\x07" * 32, ["other"])
    second = FeedbackDelta(3, receipt, -1.0, 0.0)
    assert first.receipt.nonce == second.receipt.nonce
    outcome = world.directory.submit([first, second])
    assert outcome.applied == 1 and len(outcome.dropped) == 1
    assert "equivocation" in outcome.dropped[0].reason
    assert world.admin.is_slashed(3) and not world.admin.source(3).active
    assert world.admin.stake_of(3)[0] == 0


def test_a_non_evaluator_cannot_queue_feedback_it_could_never_send(tmp_path) -> None:
    world = fresh_world()
    stranger = ChainDirectory(world.admin.as_account(world.admin.chain.dev_account(7)))
    queue = FeedbackQueue(tmp_path / "q.jsonl", stranger.submit, check=stranger.check_evaluator)
    with pytest.raises(ConfigError, match="grant-evaluator"):
        queue.put([world.delta(1, 1.0)])
    assert len(queue) == 0 and not (tmp_path / "q.jsonl").exists()


def test_a_nonce_reused_across_batches_is_proven_from_the_applied_calldata() -> None:
    """The source answers this account twice under one nonce, and the first verdict was
    already sent: the second is not just 'already applied', the pair is an equivocation,
    proven with the first receipt read back from the earlier transaction."""
    world = fresh_world()
    first = world.delta(2, 1.0)
    assert world.directory.submit([first]).applied == 1
    resend = world.directory.submit([first])  # our own receipt again: a plain resend
    assert [d.reason for d in resend.dropped] == [
        "receipt already applied in this evaluator's lane"
    ]
    assert not world.admin.is_slashed(2)
    receipt = sign_receipt(KEYS[1], world.directory.domain, 2, 1, b"\x09" * 32, ["other"])
    outcome = world.directory.submit([FeedbackDelta(2, receipt, -1.0, 0.0)])
    assert outcome.applied == 0 and "equivocation" in outcome.dropped[0].reason
    assert world.admin.is_slashed(2) and world.admin.stake_of(2)[0] == 0
