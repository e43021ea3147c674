"""Read-only view of the dRAG sources: each source's reputation now and over time.

The registry stores only a source's current scores; their history is in its event log.
Every ``FeedbackApplied`` event lists the packed heads of the updates it applied (skipped
ones are logged apart, as ``FeedbackSkipped``), so replaying those heads in log order
through :func:`marketplace.chain.registry.next_scores`, the contract's own rule, rebuilds
each source's ``alpha``/``beta``/usefulness after every feedback transaction. The replay
is checked against the scores the registry returns now: when the two differ (the log was
read from a later block than the registry's deployment, or a node pruned old logs) the
view says so instead of drawing a wrong curve.

Reliability is the posterior mean of the Beta reputation with a Beta(1, 1) prior
(Josang & Ismail 2002): ``(1 + alpha) / (2 + alpha + beta)`` with alpha and beta in
queries, the value the dRAG client ranks sources by (``drag.registry.SourceRecord``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from marketplace.chain.registry import SCALE, RegistryClient, Scores, next_scores, unpack_head


def beta_reliability(alpha: int, beta: int) -> float:
    """Posterior mean reliability in [0, 1] of fixed-point evidence under a Beta(1, 1) prior."""
    return (1.0 + alpha / SCALE) / (2.0 + (alpha + beta) / SCALE)


@dataclass(frozen=True)
class ReputationPoint:
    """A source's scores right after one feedback transaction."""

    block: int
    timestamp: int
    tx_hash: str
    alpha: int
    beta: int
    usefulness: int

    @property
    def reliability(self) -> float:
        return beta_reliability(self.alpha, self.beta)

    def to_json(self) -> dict[str, Any]:
        return {
            "block": self.block,
            "timestamp": self.timestamp,
            "tx_hash": self.tx_hash,
            "alpha": self.alpha,
            "beta": self.beta,
            "usefulness": self.usefulness,
            "reliability": self.reliability,
        }


@dataclass(frozen=True)
class SourceHistory:
    """One registered source: identity, current on-chain scores and their history.

    ``complete`` is True when replaying the history ends at the current scores.
    """

    source_id: int
    owner: str
    signer: str
    endpoint: str
    active: bool
    slashed: bool
    alpha: int
    beta: int
    usefulness: int
    points: list[ReputationPoint] = field(default_factory=list)
    complete: bool = True

    @property
    def reliability(self) -> float:
        return beta_reliability(self.alpha, self.beta)

    @property
    def queries(self) -> float:
        """Reliability evidence held, in queries (``(alpha + beta) / SCALE``)."""
        return (self.alpha + self.beta) / SCALE

    def to_json(self) -> dict[str, Any]:
        return {
            "source_id": self.source_id,
            "owner": self.owner,
            "signer": self.signer,
            "endpoint": self.endpoint,
            "active": self.active,
            "slashed": self.slashed,
            "alpha": self.alpha,
            "beta": self.beta,
            "usefulness": self.usefulness,
            "reliability": self.reliability,
            "complete": self.complete,
            "history": [p.to_json() for p in self.points],
        }


def _replay(
    registry: RegistryClient, from_block: int
) -> dict[int, list[tuple[int, int, str, Scores]]]:
    """Per source: (block, log order, tx hash, scores after it) for every feedback tx."""
    logs = registry.contract.events.FeedbackApplied().get_logs(from_block=from_block)
    ordered = sorted(logs, key=lambda e: (int(e["blockNumber"]), int(e["logIndex"])))
    running: dict[int, Scores] = {}
    out: dict[int, list[tuple[int, int, str, Scores]]] = {}
    for order, event in enumerate(ordered):
        tx = "0x" + bytes(event["transactionHash"]).hex()
        touched: list[int] = []
        for word in event["args"]["heads"]:
            head = unpack_head(int(word))
            before = running.get(head.source_id, Scores())
            running[head.source_id] = next_scores(
                before, head.reliability_delta, head.usefulness_delta
            )
            if head.source_id not in touched:
                touched.append(head.source_id)
        for source_id in touched:
            out.setdefault(source_id, []).append(
                (int(event["blockNumber"]), order, tx, running[source_id])
            )
    return out


def source_histories(registry: RegistryClient, from_block: int = 0) -> list[SourceHistory]:
    """Every registered source in id order, with its reputation after each feedback tx
    found in the registry's log from ``from_block`` (its deployment block) on."""
    current = registry.all_scores()
    replayed = _replay(registry, from_block)
    blocks = {block for rows in replayed.values() for block, *_ in rows}
    times = {b: int(registry.chain.w3.eth.get_block(b)["timestamp"]) for b in sorted(blocks)}
    out: list[SourceHistory] = []
    for info in current:
        rows = replayed.get(info.source_id, [])
        points = [
            ReputationPoint(block, times[block], tx, s.alpha, s.beta, s.usefulness)
            for block, _, tx, s in rows
        ]
        last = rows[-1][3] if rows else Scores()
        out.append(
            SourceHistory(
                source_id=info.source_id,
                owner=info.owner,
                signer=info.signer,
                endpoint=info.endpoint,
                active=info.active,
                slashed=registry.is_slashed(info.source_id),
                alpha=info.alpha,
                beta=info.beta,
                usefulness=info.usefulness,
                points=points,
                complete=last == info.scores,
            )
        )
    return out
