"""The registry on a chain as the dRAG client sees it: a :class:`SourceDirectory` over
:class:`marketplace.chain.registry.RegistryClient`.

Reads: every source and its scores, paged through ``scores(offset, limit)`` (step 1 of the
dRAG query); one call over all sources failed past ~900 sources (30M eth_call gas).
Writes: one ``applyFeedback`` transaction per batch, sent by an account holding
``EVALUATOR_ROLE`` (step 6); the deltas land in that account's lane of each source.

Before sending, :meth:`ChainDirectory.submit` keeps the updates the contract would apply
and names a reason for every other one, which the feedback queue records
(:class:`drag.feedback.FlushOutcome`): the source is not registered; the receipt is for
another source; the same receipt twice in the batch; a receipt signed by neither the
source's current key nor a former key valid for its nonce (a rotated key still signs valid
receipts for the nonces it could have issued, so rotation drops nothing); the nonce is
already applied or expired in this account's lane, or beyond the registry's step bound.
Two *different* receipts of one source with one nonce are an equivocation, whether both
sit in the batch or the other was applied by this account before (read back from that
transaction's calldata): the directory reports it on-chain (``reportEquivocation``: the
source loses its stake and is deactivated for good) and drops the second. Deactivated
sources are not skipped: their feedback lands. Updates the chain itself skips (a nonce
race with the account's own concurrent flush) come back as ``FeedbackSkipped`` events and
are reported the same way. Deltas are clipped to the per-query cap.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from web3.types import TxReceipt

from drag.feedback import Dropped, FeedbackDelta, FlushOutcome
from drag.receipts import ReceiptDomain, recover_signer
from drag.registry import SourceRecord
from marketplace.chain.registry import (
    MAX_DELTA_PER_QUERY,
    SCALE,
    SKIP_EXPIRED,
    SKIP_REASONS,
    SKIP_USED,
    FeedbackUpdate,
    FormerSigner,
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


def to_update(delta: FeedbackDelta, key_index: int = 0) -> FeedbackUpdate:
    """A queued delta as the contract's update (fixed point, clipped to the per-query cap),
    naming the source key that signed it (0 = current, k = k-th former signer)."""
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
        key_index=key_index,
    )


@dataclass
class _Screen:
    """What one batch's screening found: updates to send (with their deltas), drops, and
    equivocations to prove on-chain."""

    kept: list[tuple[FeedbackDelta, FeedbackUpdate]]
    dropped: list[Dropped]
    equivocations: list[tuple[FeedbackUpdate, FeedbackUpdate]]


def _equivocation(delta: FeedbackDelta) -> str:
    return (
        f"source {delta.source_id} signed two receipts with nonce {delta.receipt.nonce} "
        "(equivocation, reported on-chain)"
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
        self.dropped = 0  # deltas dropped by this directory (count, for old callers)
        self.drops: list[Dropped] = []  # the same, with their reasons
        self.last_receipt: TxReceipt | None = None

    @property
    def domain(self) -> ReceiptDomain:
        return self._domain

    def sources_info(self) -> list[SourceInfo]:
        """Raw registry rows (fixed point), paged (one ``eth_call`` per 500 sources)."""
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

    def _key_index(
        self, delta: FeedbackDelta, info: SourceInfo, formers: dict[int, list[FormerSigner]]
    ) -> int | None:
        """0 if the source's current key signed the receipt, k if its k-th former key (valid
        for the nonce) did, None if no key of the source did."""
        signer = recover_signer(delta.receipt, self._domain)
        if signer == info.signer:
            return 0
        if delta.source_id not in formers:
            formers[delta.source_id] = self.registry.former_signers(delta.source_id)
        for f in formers[delta.source_id]:
            if f.signer == signer and delta.receipt.nonce <= f.until:
                return f.key_index
        return None

    def _screen(self, batch: Sequence[FeedbackDelta]) -> _Screen:
        sources = {info.source_id: info for info in self.sources_info()}
        formers: dict[int, list[FormerSigner]] = {}
        out = _Screen([], [], [])
        seen: dict[tuple[int, int], FeedbackUpdate] = {}
        for delta in batch:
            why, update = self._check(delta, sources, formers, out.equivocations)
            if update is not None:
                key = (delta.source_id, delta.receipt.nonce)
                first = seen.get(key)
                if first is None:
                    seen[key] = update
                    out.kept.append((delta, update))
                    continue
                same = (first.query_id, first.passages_hash) == (
                    update.query_id,
                    update.passages_hash,
                )
                if same:
                    why = "the same receipt appears twice in the batch"
                else:
                    why = _equivocation(delta)
                    out.equivocations.append((first, update))
            out.dropped.append(Dropped(delta, why or "unknown"))
        return out

    def _check(
        self,
        delta: FeedbackDelta,
        sources: dict[int, SourceInfo],
        formers: dict[int, list[FormerSigner]],
        equivocations: list[tuple[FeedbackUpdate, FeedbackUpdate]],
    ) -> tuple[str | None, FeedbackUpdate | None]:
        """(None, update) if the contract would apply the delta now, else (reason, None).

        A nonce this account already applied with a *different* receipt is an equivocation
        of the source: the pair is added to ``equivocations`` (reported on-chain)."""
        info = sources.get(delta.source_id)
        if info is None:
            return f"source {delta.source_id} is not registered", None
        if delta.receipt.source_id != delta.source_id:
            return "receipt is for another source", None
        try:
            key_index = self._key_index(delta, info, formers)
        except DragError:
            return "receipt signature is unrecoverable", None
        if key_index is None:
            return (
                "receipt is signed by neither the source's key nor a former key valid "
                f"for nonce {delta.receipt.nonce}"
            ), None
        update = to_update(delta, key_index)
        status = self.registry.receipt_status(delta.source_id, delta.receipt.nonce)
        if status in (SKIP_USED, SKIP_EXPIRED):  # applied before by us, with another receipt?
            applied = self.registry.applied_update(delta.source_id, delta.receipt.nonce)
            if applied is not None and (applied.query_id, applied.passages_hash) != (
                update.query_id,
                update.passages_hash,
            ):
                equivocations.append((applied, update))
                return _equivocation(delta), None
        if status != 0:
            return SKIP_REASONS.get(status, f"registry status {status}"), None
        return None, update

    def usable_updates(self, batch: Sequence[FeedbackDelta]) -> list[FeedbackUpdate]:
        """The updates of ``batch`` the contract would apply (see module doc); the others
        are logged and counted in :attr:`dropped`."""
        screen = self._screen(batch)
        self._note(screen.dropped)
        return [u for _, u in screen.kept]

    def _note(self, dropped: Sequence[Dropped]) -> None:
        for d in dropped:
            self.dropped += 1
            log.warning(
                "feedback for source %d (nonce %d) dropped: %s",
                d.delta.source_id,
                d.delta.receipt.nonce,
                d.reason,
            )
        self.drops.extend(dropped)

    def submit(self, batch: Sequence[FeedbackDelta]) -> FlushOutcome:
        """Send the usable updates of ``batch`` in one ``applyFeedback`` transaction and
        account for every delta: applied, or dropped with its reason."""
        screen = self._screen(batch)
        for a, b in screen.equivocations:
            self.registry.report_equivocation(a, b)
            log.warning("source %d equivocated on nonce %d: reported", a.source_id, a.nonce)
        dropped = list(screen.dropped)
        tx = None
        applied = len(screen.kept)
        if screen.kept:
            receipt = self.registry.apply_feedback([u for _, u in screen.kept])
            self.last_receipt = receipt
            tx = "0x" + bytes(receipt["transactionHash"]).hex()
            by_head = {u.head: d for d, u in screen.kept}
            for skip in self.registry.skipped(receipt):
                delta = by_head.get(skip.word)
                if delta is not None:
                    dropped.append(Dropped(delta, skip.why))
                    applied -= 1
            log.info(
                "applied %d feedback updates in tx %s (%d gas)", applied, tx, receipt["gasUsed"]
            )
        self._note(dropped)
        return FlushOutcome(tx, applied, tuple(dropped))

    def submit_feedback(self, batch: Sequence[FeedbackDelta]) -> str | None:
        """:meth:`submit`, returning only the transaction hash (None when nothing in the
        batch was usable: then nothing is sent)."""
        return self.submit(batch).tx
