"""Pure comparison of what a round committed on-chain with what a replay computes.

docs/architecture.md, round step 7: anyone replays a round from the CIDs and must get the
same mask, model and scores. This module only compares; :mod:`.replay` does the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RoundFacts:
    """The result of one round, as committed on-chain or as recomputed by a replay."""

    inlier_mask: list[bool]
    rejected_mask: list[bool]
    global_model_cid: str
    scores: list[int] | None  # None: not recomputed (no validation data)


@dataclass(frozen=True)
class RoundAudit:
    """Verdict on one round: each check is True (matches), False, or None (not checked)."""

    round: int
    checks: dict[str, bool | None]
    problems: list[str] = field(default_factory=list)
    encrypted: int = 0  # updates sealed to readers whose key the auditor lacks
    unavailable: list[str] = field(default_factory=list)  # CIDs found in no store

    @property
    def ok(self) -> bool:
        return not self.problems and all(v is not False for v in self.checks.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "ok": self.ok,
            "checks": self.checks,
            "problems": self.problems,
            "encrypted": self.encrypted,
            "unavailable": self.unavailable,
        }


@dataclass(frozen=True)
class AuditReport:
    """Verdict on a whole project."""

    project_id: int
    rounds: list[RoundAudit]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rounds)

    @property
    def encrypted(self) -> int:
        """Updates the auditor could not open (no reader key): their rounds' masks, models
        and scores are unverified, neither matched nor mismatched."""
        return sum(r.encrypted for r in self.rounds)

    @property
    def unavailable(self) -> int:
        """Blobs (updates, reports) the auditor found in no store: their rounds are
        unverified, neither matched nor mismatched (missing data is not a finding)."""
        return sum(len(r.unavailable) for r in self.rounds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "ok": self.ok,
            "encrypted": self.encrypted,
            "unavailable": self.unavailable,
            "rounds": [r.to_dict() for r in self.rounds],
            "notes": self.notes,
        }


def _differences(name: str, committed: list[Any], replayed: list[Any]) -> list[str]:
    if len(committed) != len(replayed):
        return [f"{name}: committed {len(committed)} entries, replay has {len(replayed)}"]
    return [
        f"{name}[{i}]: committed {c}, replay {r}"
        for i, (c, r) in enumerate(zip(committed, replayed, strict=True))
        if c != r
    ]


def compare_round(round_: int, committed: RoundFacts, replayed: RoundFacts) -> RoundAudit:
    """Check mask, rejections, global model CID and scores of one round."""
    problems: list[str] = []
    mask = _differences("inlier mask", committed.inlier_mask, replayed.inlier_mask)
    rejected = _differences("rejected mask", committed.rejected_mask, replayed.rejected_mask)
    model_ok = committed.global_model_cid == replayed.global_model_cid
    problems += mask + rejected
    if not model_ok:
        problems.append(
            f"global model: committed {committed.global_model_cid}, "
            f"replay {replayed.global_model_cid}"
        )
    scores_ok: bool | None = None
    if committed.scores is not None and replayed.scores is not None:
        diff = _differences("scores", committed.scores, replayed.scores)
        scores_ok = not diff
        problems += diff
    return RoundAudit(
        round=round_,
        checks={
            "mask": not mask,
            "rejected": not rejected,
            "model": model_ok,
            "scores": scores_ok,
        },
        problems=problems,
    )
