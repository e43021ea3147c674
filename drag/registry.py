"""What the dRAG client needs from the SourceRegistry, behind a small interface.

The client reads every source's record (step 1 of the dRAG query in docs/architecture.md;
paged on a chain, one call per 500 sources) and submits batches of feedback deltas
(step 6). The chain-backed implementation is :class:`drag.chain_directory.ChainDirectory`;
:class:`StaticDirectory` is an in-process one for simulations and tests that applies
deltas the way the contract does (reliability as Beta-reputation counts, usefulness as a
bounded running score).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from drag.receipts import ReceiptDomain

if TYPE_CHECKING:
    from drag.feedback import FeedbackDelta


@dataclass(frozen=True)
class SourceRecord:
    """One registered source as the registry reports it.

    ``reliability_pos``/``reliability_neg`` are the accumulated positive and negative
    reliability evidence (the alpha/beta of a Beta reputation, Josang & Ismail 2002, before
    the prior is added); ``usefulness`` is the paper's usefulness score (Reliable-dRAG,
    Lu et al. 2025, arXiv:2511.07577), used for proportional sampling.
    """

    source_id: int
    address: str
    endpoint: str
    reliability_pos: float = 0.0
    reliability_neg: float = 0.0
    usefulness: float = 1.0
    active: bool = True

    def reliability(self, prior: tuple[float, float] = (1.0, 1.0)) -> float:
        """Posterior mean reliability in [0, 1] under a Beta(prior) prior."""
        a = prior[0] + self.reliability_pos
        b = prior[1] + self.reliability_neg
        return a / (a + b)


class SourceDirectory(Protocol):
    """The registry as the client sees it."""

    @property
    def domain(self) -> ReceiptDomain:
        """EIP-712 domain receipts are signed under."""
        ...

    def list_sources(self) -> list[SourceRecord]:
        """All registered sources with their current scores (paged on a chain)."""
        ...

    def submit_feedback(self, batch: Sequence[FeedbackDelta]) -> str | None:
        """Apply a batch of deltas (one transaction); returns a tx hash if there is one."""
        ...


class StaticDirectory:
    """In-memory :class:`SourceDirectory` for simulations and tests (no chain)."""

    def __init__(self, domain: ReceiptDomain, sources: Sequence[SourceRecord]) -> None:
        self._domain = domain
        self._sources = {s.source_id: s for s in sources}
        self._seen: set[tuple[int, int]] = set()
        self.batches: list[list[FeedbackDelta]] = []

    @property
    def domain(self) -> ReceiptDomain:
        return self._domain

    def list_sources(self) -> list[SourceRecord]:
        return [self._sources[i] for i in sorted(self._sources)]

    def submit_feedback(self, batch: Sequence[FeedbackDelta]) -> str | None:
        """Apply deltas, skipping unknown sources and replays of a (source, nonce) pair."""
        for delta in batch:
            key = (delta.source_id, delta.receipt.nonce)
            record = self._sources.get(delta.source_id)
            if record is None or key in self._seen:
                continue
            self._seen.add(key)
            r = delta.reliability_delta
            self._sources[delta.source_id] = replace(
                record,
                reliability_pos=record.reliability_pos + max(r, 0.0),
                reliability_neg=record.reliability_neg + max(-r, 0.0),
                usefulness=max(0.0, record.usefulness + delta.usefulness_delta),
            )
        self.batches.append(list(batch))
        return None
