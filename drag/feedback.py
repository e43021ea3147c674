"""From "was the answer right?" to bounded per-source score deltas, queued and batched.

Turning feedback into deltas (steps 5 and 6 of the dRAG query, after Reliable-dRAG,
Lu et al. 2025, arXiv:2511.07577, which scores sources by their contribution to correct
answers). Inputs: the attribution scores ``phi_i`` of the k contexts for a *target* answer
(:mod:`drag.attribution`), which source returned each context, and whether the target is
correct (``target_correct``): with ground truth the target is the truth (correct by
definition), with a user's ``--correct``/``--wrong`` it is the produced answer.

- ``share_s = sum_{i from s} phi_i / max(1, sum_s |sum_{i from s} phi_i|)``: a source's
  part of the outcome, the total over sources bounded by 1;
- ``sign = +1`` if the target is correct else ``-1``;
- reliability delta ``= sgn(sign * share_s) * max_reliability`` (the default,
  ``reliability_evidence="bernoulli"``): one unit of Beta evidence per judged query for
  every source whose passages mattered, positive if they pushed toward the right answer,
  negative if away from it (a polluted passage that pushes the generator off the truth
  gets ``phi < 0`` against the true target). A Beta reputation counts one observation per
  interaction (Josang & Ismail 2002), so its posterior mean estimates what the client
  uses it as: the probability that the source's passage is right. Scaling the evidence by
  the Shapley share instead (``"share"``: ``clip(sign * share_s, -1, 1) *
  max_reliability``) makes it asymmetric: with two right copies of a fact and one wrong,
  each right passage earns about +0.47 and the outvoted wrong one loses only about -0.28
  (exact Shapley, vote-share utility). Measured on the benchmark (token pollution, seed
  0): a source with 40% polluted documents reached reliability 0.81 under ``"share"``
  and 0.61 under ``"bernoulli"``; 60%, 0.64 and 0.50;
- usefulness delta ``= max(sign * share_s, 0) * max_usefulness``, or ``-idle_penalty``
  for a source that was queried but whose passages did not matter.

Every delta carries the source's receipt for the query, which the registry requires.

:class:`FeedbackQueue` appends each delta to a JSONL file (fsync'ed) before acknowledging
it and hands batches to a callback (one transaction per batch) when ``max_batch`` deltas
are pending or the oldest is ``max_age_s`` old. The file is rewritten only after the
callback returns, so a crash loses nothing; at worst a batch is sent twice; the registry
skips a receipt it already applied (and the directory filters it out before sending), so a
resend never fails.

Nothing is dropped in silence. A callback that returns a :class:`FlushOutcome` (what
:meth:`drag.chain_directory.ChainDirectory.submit` does) lists every delta it did not apply
with its reason (source unknown, receipt signed by no key of the source, already applied,
expired, beyond the registry's nonce step, ...); the queue appends each to a durable log
beside the queue (``<queue>.dropped.jsonl``) and logs a warning, and
:meth:`FeedbackQueue.status` summarises pending deltas, drops by reason and the last flush.
Queues are per account (:func:`queue_path`): the evaluator lane a receipt lands in is the
flushing account's, and one account's verdicts must never be sent by another. A ``check``
callable (the directory's evaluator check) refuses deltas from an account that could never
flush them, instead of queueing them silently.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from drag.receipts import Receipt
from marketplace.errors import ConfigError, DragError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedbackPolicy:
    """Bounds on what one query may change for one source."""

    max_reliability: float = 1.0
    max_usefulness: float = 1.0
    idle_penalty: float = 0.05
    reliability_evidence: Literal["bernoulli", "share"] = "bernoulli"

    def __post_init__(self) -> None:
        if self.reliability_evidence not in ("bernoulli", "share"):
            raise ConfigError(
                f"reliability_evidence={self.reliability_evidence!r}; use bernoulli or share"
            )
        if min(self.max_reliability, self.max_usefulness, self.idle_penalty) < 0:
            raise ConfigError("feedback bounds must be non-negative")
        if self.idle_penalty > self.max_usefulness:
            raise ConfigError("idle_penalty must not exceed max_usefulness")


@dataclass(frozen=True)
class FeedbackDelta:
    """One source's score change for one query, with the receipt that authorises it."""

    source_id: int
    receipt: Receipt
    reliability_delta: float
    usefulness_delta: float

    def to_json(self) -> dict[str, Any]:
        return {
            "source_id": self.source_id,
            "receipt": self.receipt.to_json(),
            "reliability_delta": self.reliability_delta,
            "usefulness_delta": self.usefulness_delta,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeedbackDelta:
        return cls(
            source_id=int(data["source_id"]),
            receipt=Receipt.from_json(dict(data["receipt"])),
            reliability_delta=float(data["reliability_delta"]),
            usefulness_delta=float(data["usefulness_delta"]),
        )

    def to_fixed(self, scale: int = 10**6) -> tuple[int, int]:
        """Deltas as signed integers ``round(delta * scale)`` for the contract."""
        return round(self.reliability_delta * scale), round(self.usefulness_delta * scale)


@dataclass(frozen=True)
class Dropped:
    """A delta that was not applied on-chain, and why (never dropped silently)."""

    delta: FeedbackDelta
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason, "delta": self.delta.to_json()}


@dataclass(frozen=True)
class FlushOutcome:
    """What one batch came to: the transaction (if any was sent), how many deltas it
    applied, and every delta dropped before or by the chain with its reason."""

    tx: str | None
    applied: int
    dropped: tuple[Dropped, ...] = ()


@dataclass(frozen=True)
class QueueStatus:
    """A queue as ``ledgerlearn drag feedback-status`` shows it."""

    path: Path
    pending: int
    oldest_age_s: float | None
    pending_by_source: dict[int, int]
    dropped: int
    dropped_by_reason: dict[str, int]
    last_flush: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "queue": str(self.path),
            "pending": self.pending,
            "oldest_age_s": self.oldest_age_s,
            "pending_by_source": {str(k): v for k, v in sorted(self.pending_by_source.items())},
            "dropped": self.dropped,
            "dropped_by_reason": self.dropped_by_reason,
            "last_flush": self.last_flush,
        }


def queue_path(home: Path, chain_id: int, registry: str, account: str) -> Path:
    """The persistent feedback queue of one account on one registry (under ``home``).

    One file per account: deltas land in the flushing account's evaluator lane, and a
    queue shared between accounts let one account send (or strand) another's verdicts.
    """
    return home / "drag" / f"feedback-{chain_id}-{registry.lower()}-{account.lower()}.jsonl"


def _clip(x: float, bound: float) -> float:
    return max(-bound, min(bound, x))


def compute_deltas(
    attribution: Sequence[float],
    context_sources: Sequence[int],
    target_correct: bool,
    receipts: Mapping[int, Receipt],
    policy: FeedbackPolicy | None = None,
) -> list[FeedbackDelta]:
    """Per-source deltas for one query (see module doc); sources without a receipt get none.

    ``context_sources[i]`` is the source of context i; every source in ``receipts`` (the
    ones queried and verified) gets a delta, including those whose passages were not used.
    """
    policy = policy or FeedbackPolicy()
    if len(attribution) != len(context_sources):
        raise ConfigError("attribution and context_sources must have one entry per context")
    raw: dict[int, float] = {sid: 0.0 for sid in receipts}
    for phi, sid in zip(attribution, context_sources, strict=True):
        raw[sid] = raw.get(sid, 0.0) + float(phi)
    total = sum(abs(v) for v in raw.values())
    norm = max(1.0, total)
    sign = 1.0 if target_correct else -1.0
    deltas = []
    for sid in sorted(raw):
        receipt = receipts.get(sid)
        if receipt is None:
            log.warning("no receipt for source %d; its feedback is dropped", sid)
            continue
        share = raw[sid] / norm
        if abs(share) < 1e-12:
            reliability, usefulness = 0.0, -policy.idle_penalty
        else:
            evidence = sign * share
            if policy.reliability_evidence == "bernoulli":
                evidence = 1.0 if evidence > 0 else -1.0
            reliability = _clip(evidence, 1.0) * policy.max_reliability
            usefulness = max(sign * share, 0.0) * policy.max_usefulness
        if reliability == 0.0 and usefulness == 0.0:
            continue
        deltas.append(FeedbackDelta(sid, receipt, reliability, usefulness))
    return deltas


FlushFn = Callable[[list[FeedbackDelta]], object]


class FeedbackQueue:
    """Durable queue of deltas flushed in batches through ``flush_fn`` (see module doc).

    ``flush_fn`` returns a :class:`FlushOutcome` (drops recorded with their reasons) or
    anything else (the batch counts as applied whole). ``check`` runs once before the
    first delta is queued and raises when they could never be flushed (e.g. the account
    lacks EVALUATOR_ROLE).
    """

    def __init__(
        self,
        path: Path | str,
        flush_fn: FlushFn,
        max_batch: int = 20,
        max_age_s: float = 300.0,
        clock: Callable[[], float] = time.time,
        check: Callable[[], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ConfigError(f"max_batch={max_batch}; use a positive batch size")
        if max_age_s < 0:
            raise ConfigError(f"max_age_s={max_age_s}; use a non-negative age")
        self.path = Path(path)
        self.dropped_path = self.path.with_name(self.path.name + ".dropped.jsonl")
        self.last_path = self.path.with_name(self.path.name + ".last.json")
        self.flush_fn = flush_fn
        self.max_batch = max_batch
        self.max_age_s = max_age_s
        self.clock = clock
        self._check = check
        self.dropped: list[Dropped] = []  # drops recorded by this process
        self._items: list[tuple[float, FeedbackDelta]] = self._read()

    def _read(self) -> list[tuple[float, FeedbackDelta]]:
        items = self.read_other(self.path)
        if items:
            log.info("recovered %d pending feedback deltas from %s", len(items), self.path)
        return items

    @staticmethod
    def read_other(path: Path) -> list[tuple[float, FeedbackDelta]]:
        """The (time, delta) records of a queue file (unreadable lines skipped, logged)."""
        if not path.is_file():
            return []
        items = []
        with path.open(encoding="utf-8") as f:
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    items.append((float(record["t"]), FeedbackDelta.from_json(record["delta"])))
                except (ValueError, KeyError, TypeError, DragError) as exc:
                    log.warning("skipping unreadable line %d of %s (%s)", line_no, path, exc)
        return items

    def adopt(self, other: Path) -> int:
        """Move the deltas of another queue file (the old queue shared by all accounts)
        into this one: appended durably here first, then the other file is removed.
        Returns how many were adopted."""
        items = self.read_other(other)
        if items:
            self._append_durably(items)
            log.info("adopted %d feedback deltas from %s", len(items), other)
        if other.is_file():
            other.unlink()
        return len(items)

    @staticmethod
    def _line(t: float, delta: FeedbackDelta) -> str:
        return json.dumps({"t": t, "delta": delta.to_json()}) + "\n"

    def _rewrite(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            f.writelines(self._line(t, d) for t, d in self._items)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def pending(self) -> list[FeedbackDelta]:
        return [d for _, d in self._items]

    def due(self) -> bool:
        """True when a batch is full or the oldest pending delta is too old."""
        if not self._items:
            return False
        oldest = self._items[0][0]
        return len(self._items) >= self.max_batch or self.clock() - oldest >= self.max_age_s

    def put(self, deltas: Iterable[FeedbackDelta]) -> int:
        """Persist ``deltas``, then flush if due; returns how many deltas were flushed.

        A failing ``flush_fn`` is logged and the deltas stay queued for the next attempt.
        Raises what ``check`` raises (nothing is queued then).
        """
        now = self.clock()
        new = [(now, d) for d in deltas]
        if new and self._check is not None:
            self._check()
            self._check = None  # once per queue: the role does not change per delta
        if new:
            self._append_durably(new)
        return self.maybe_flush()

    def _append_durably(self, items: list[tuple[float, FeedbackDelta]]) -> None:
        """Append ``items`` to the queue file and fsync before holding them in memory: a
        crash afterwards loses nothing this queue said it took."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.writelines(self._line(t, d) for t, d in items)
            f.flush()
            os.fsync(f.fileno())
        self._items.extend(items)

    def maybe_flush(self) -> int:
        """Flush if :meth:`due`; never raises for a failing ``flush_fn``."""
        if not self.due():
            return 0
        try:
            return self.flush()
        except Exception as exc:  # the callback is user/chain code; keep the deltas
            log.warning("feedback flush failed, %d deltas kept (%s)", len(self._items), exc)
            self._write_last({"t": self.clock(), "error": str(exc), "pending": len(self)})
            return 0

    def flush(self) -> int:
        """Send all pending deltas in batches of ``max_batch``; raises what ``flush_fn`` raises.

        Returns how many deltas left the queue (applied or dropped with a reason)."""
        sent = 0
        while self._items:
            batch = self._items[: self.max_batch]
            outcome = self.flush_fn([d for _, d in batch])
            if not isinstance(outcome, FlushOutcome):  # a plain callback: all applied
                outcome = FlushOutcome(outcome if isinstance(outcome, str) else None, len(batch))
            self._record_drops(outcome.dropped)
            self._items = self._items[len(batch) :]
            self._rewrite()
            sent += len(batch)
            self._write_last(
                {
                    "t": self.clock(),
                    "tx": outcome.tx,
                    "applied": outcome.applied,
                    "dropped": len(outcome.dropped),
                }
            )
        return sent

    def _record_drops(self, dropped: Sequence[Dropped]) -> None:
        """Append each drop to the durable drop log (fsync'ed) and warn about it."""
        if not dropped:
            return
        now = self.clock()
        self.dropped_path.parent.mkdir(parents=True, exist_ok=True)
        with self.dropped_path.open("a", encoding="utf-8") as f:
            f.writelines(json.dumps({"t": now, **d.to_json()}) + "\n" for d in dropped)
            f.flush()
            os.fsync(f.fileno())
        for d in dropped:
            log.warning(
                "feedback for source %d (nonce %d) dropped: %s",
                d.delta.source_id,
                d.delta.receipt.nonce,
                d.reason,
            )
        self.dropped.extend(dropped)

    def _write_last(self, record: dict[str, Any]) -> None:
        self.last_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.last_path.with_name(self.last_path.name + ".tmp")
        tmp.write_text(json.dumps(record) + "\n", encoding="utf-8")
        os.replace(tmp, self.last_path)

    def dropped_log(self) -> list[dict[str, Any]]:
        """Every drop recorded for this queue (oldest first): ``{"t", "reason", "delta"}``."""
        if not self.dropped_path.is_file():
            return []
        out = []
        for line in self.dropped_path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                log.warning("skipping an unreadable line of %s", self.dropped_path)
        return out

    def status(self) -> QueueStatus:
        """Pending deltas (by source, oldest age), drops by reason, and the last flush."""
        by_source: dict[int, int] = {}
        for _, d in self._items:
            by_source[d.source_id] = by_source.get(d.source_id, 0) + 1
        reasons: dict[str, int] = {}
        drops = self.dropped_log()
        for record in drops:
            reason = str(record.get("reason", "?"))
            reasons[reason] = reasons.get(reason, 0) + 1
        last = None
        if self.last_path.is_file():
            try:
                last = json.loads(self.last_path.read_text(encoding="utf-8"))
            except ValueError:
                log.warning("unreadable %s", self.last_path)
        oldest = self.clock() - self._items[0][0] if self._items else None
        return QueueStatus(self.path, len(self), oldest, by_source, len(drops), reasons, last)
