"""The registry on a chain as the dRAG client sees it: a :class:`SourceDirectory` over
:class:`marketplace.chain.registry.RegistryClient`.

Reads: every source and its scores from one ``allScores`` call (step 1 of the dRAG query).
Writes: one ``applyFeedback`` transaction per batch, sent by an account holding
``EVALUATOR_ROLE`` (step 6).

The contract applies a batch all or nothing, so one stale update would sink the rest. The
feedback queue may resend a batch after a crash (:class:`drag.feedback.FeedbackQueue`), a
source may have rotated its key or been deactivated since it answered, and a receipt falls
out of the 96-nonce window once newer ones of the same source are applied. Before sending,
:meth:`ChainDirectory.submit_feedback` therefore keeps only the updates the contract would
accept: the source is registered and active, the receipt recovers to its *current* signer,
``receiptUsable(sourceId, nonce)`` is true, and no other update of the batch uses the same
``(sourceId, nonce)``; deltas are clipped to the per-query cap. What it drops is logged and
counted in :attr:`ChainDirectory.dropped`, never sent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from web3.types import TxReceipt

from drag.feedback import FeedbackDelta
from drag.receipts import ReceiptDomain, recover_signer
from drag.registry import SourceRecord
from marketplace.chain.registry import (
    MAX_DELTA_PER_QUERY,
    SCALE,
    FeedbackUpdate,
    RegistryClient,
    SourceInfo,
)
from marketplace.errors import ConfigError, DragError

log = logging.getLogger(__name__)


def to_record(info: SourceInfo) -> SourceRecord:
    """A registry row as the client's :class:`SourceRecord` (scores as floats)."""
    return SourceRecord(
        source_id=info.source_id,
        address=info.signer,
        endpoint=info.endpoint,
        reliability_pos=info.reliability_pos,
        reliability_neg=info.reliability_neg,
        usefulness=info.usefulness_score,
        active=info.active,
    )


def _clip(value: int) -> int:
    return max(-MAX_DELTA_PER_QUERY, min(MAX_DELTA_PER_QUERY, value))


def to_update(delta: FeedbackDelta) -> FeedbackUpdate:
    """A queued delta as the contract's update (fixed point, clipped to the per-query cap)."""
    receipt = delta.receipt
    if receipt.source_id != delta.source_id:
        raise DragError(
            f"delta for source {delta.source_id} carries a receipt of source {receipt.source_id}"
        )
    reliability, usefulness = delta.to_fixed(SCALE)
    return FeedbackUpdate(
        source_id=delta.source_id,
        nonce=receipt.nonce,
        query_id=receipt.query_id,
        passages_hash=receipt.passages_hash,
        reliability_delta=_clip(reliability),
        usefulness_delta=_clip(usefulness),
        signature=receipt.signature,
    )


class ChainDirectory:
    """:class:`drag.registry.SourceDirectory` backed by a deployed ``SourceRegistry``.

    ``registry`` must be bound to an account for :meth:`submit_feedback`; that account needs
    ``EVALUATOR_ROLE`` (granted by the registry admin, ``ledgerlearn registry
    grant-evaluator``). Reading needs no account.
    """

    def __init__(self, registry: RegistryClient) -> None:
        self.registry = registry
        self._domain = ReceiptDomain(registry.chain.chain_id, registry.address)
        self.dropped = 0
        self.last_receipt: TxReceipt | None = None

    @property
    def domain(self) -> ReceiptDomain:
        return self._domain

    def sources_info(self) -> list[SourceInfo]:
        """Raw registry rows (fixed point), one ``eth_call``."""
        return self.registry.all_scores()

    def list_sources(self) -> list[SourceRecord]:
        return [to_record(info) for info in self.sources_info()]

    def check_evaluator(self) -> None:
        """Raise :class:`ConfigError` unless the bound account may submit feedback."""
        sender = self.registry.sender
        if sender is None:
            raise ConfigError("no signing account to submit feedback: pass --key or --account")
        if not self.registry.is_evaluator(sender.address):
            raise ConfigError(
                f"account {sender.address} lacks EVALUATOR_ROLE on the SourceRegistry; ask the "
                f"registry admin to run `ledgerlearn registry grant-evaluator {sender.address}`"
            )

    def usable_updates(self, batch: Sequence[FeedbackDelta]) -> list[FeedbackUpdate]:
        """The updates of ``batch`` the contract would accept (see module doc)."""
        sources = {info.source_id: info for info in self.sources_info()}
        kept: list[FeedbackUpdate] = []
        seen: set[tuple[int, int]] = set()
        for delta in batch:
            why = self._reject_reason(delta, sources, seen)
            if why is not None:
                self.dropped += 1
                log.warning(
                    "feedback for source %d (nonce %d) dropped: %s",
                    delta.source_id,
                    delta.receipt.nonce,
                    why,
                )
                continue
            seen.add((delta.source_id, delta.receipt.nonce))
            kept.append(to_update(delta))
        return kept

    def _reject_reason(
        self,
        delta: FeedbackDelta,
        sources: dict[int, SourceInfo],
        seen: set[tuple[int, int]],
    ) -> str | None:
        info = sources.get(delta.source_id)
        key = (delta.source_id, delta.receipt.nonce)
        if info is None:
            return "source is not registered"
        if not info.active:
            return "source is deactivated"
        if delta.receipt.source_id != delta.source_id:
            return "receipt is for another source"
        if key in seen:
            return "the same receipt appears twice in the batch"
        try:
            signer = recover_signer(delta.receipt, self._domain)
        except DragError:
            return "receipt signature is unrecoverable"
        if signer != info.signer:
            return "receipt is not signed by the source's current key"
        if not self.registry.receipt_usable(delta.source_id, delta.receipt.nonce):
            return "receipt already used or expired on-chain"
        return None

    def submit_feedback(self, batch: Sequence[FeedbackDelta]) -> str | None:
        """Send the usable updates of ``batch`` in one ``applyFeedback`` transaction.

        Returns the transaction hash, or None when nothing in the batch was still usable
        (then nothing is sent, and the caller may drop the batch).
        """
        updates = self.usable_updates(batch)
        if not updates:
            return None
        receipt = self.registry.apply_feedback(updates)
        self.last_receipt = receipt
        log.info(
            "applied %d feedback updates in tx %s (%d gas)",
            len(updates),
            receipt["transactionHash"].hex(),
            receipt["gasUsed"],
        )
        return "0x" + bytes(receipt["transactionHash"]).hex()
