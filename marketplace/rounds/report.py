"""The round report: everything needed to explain and replay a round, stored by CID.

The report is canonical JSON (sorted keys, no spaces) stored as a blob in the
aggregator's content store; the digest of its CID is the ``reportCid`` of the round's
``commitRound`` transaction, so the report is bound to the on-chain result. It holds the
hyper-parameters used and those for the next round, each rejection and exclusion with its
reason, the metrics, the scores, the CIDs of every update, of the model before and after,
and of the robust rule's state. A restarted aggregator resumes from the previous report;
an auditor replays the round from it (docs/architecture.md, step 7).
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from marketplace.errors import MalformedInput, StorageError
from marketplace.rounds.hyper import ServerHyper
from marketplace.rounds.pipeline import RoundConfig, RoundOutcome
from marketplace.storage import ContentStore, get_blob, put_blob
from marketplace.untrusted.parse import loads

REPORT_VERSION = "ledgerlearn-round-report/v1"
MAX_REPORT_BYTES = 16 * 2**20


class RoundReport(BaseModel):
    """One round, as published. Keys of the per-trainer maps are trainer indices."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = REPORT_VERSION
    project_id: int
    round: int
    config: RoundConfig
    previous_model_cid: str | None
    global_model_cid: str
    update_cids: dict[int, str]
    inliers: list[int]
    scores: list[int]
    rejected: dict[int, str]
    excluded: dict[int, str]
    filter_scores: dict[int, float | None] = Field(default_factory=dict)
    hyper_used: ServerHyper
    hyper_next: ServerHyper
    rule_state_cid: str | None
    metrics: dict[str, float | int | None]
    anchor_cid: str | None = None  # the trust anchor the rule used, for auditors without
    # the validation data it was trained on
    score_notes: dict[int, str] = Field(default_factory=dict)  # why an inlier scored 0

    def to_json_bytes(self) -> bytes:
        """Canonical JSON: the same report always has the same CID."""
        return json.dumps(
            self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), allow_nan=False
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> RoundReport:
        """Parse a report fetched from the aggregator's gateway: the bounded parser first
        (depth, size, strict JSON), then the model's validation."""
        try:
            loads(data, max_bytes=MAX_REPORT_BYTES, what="round report")
        except MalformedInput as exc:
            raise StorageError(f"{exc}; it was not written by a LedgerLearn aggregator") from None
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise StorageError(
                f"round report is malformed ({exc.errors()[0]['msg']}); it was not written "
                "by a LedgerLearn aggregator"
            ) from None


def build_report(
    *,
    project_id: int,
    round_: int,
    config: RoundConfig,
    outcome: RoundOutcome,
    previous_model_cid: str | None,
    global_model_cid: str,
    update_cids: dict[int, str],
    rule_state_cid: str | None,
    anchor_cid: str | None = None,
) -> RoundReport:
    """Assemble the report of a round from its outcome and the CIDs involved."""
    return RoundReport(
        project_id=project_id,
        round=round_,
        config=config,
        previous_model_cid=previous_model_cid,
        global_model_cid=global_model_cid,
        update_cids=dict(sorted(update_cids.items())),
        inliers=outcome.inliers,
        scores=outcome.scores,
        rejected=outcome.rejections,
        excluded=outcome.exclusions,
        filter_scores=outcome.filter_scores,
        hyper_used=outcome.hyper_used,
        hyper_next=outcome.next_state.hyper,
        rule_state_cid=rule_state_cid,
        metrics=_jsonable(outcome.metrics),
        anchor_cid=anchor_cid,
        score_notes=dict(sorted(outcome.score_notes.items())),
    )


def _jsonable(metrics: dict[str, Any]) -> dict[str, float | int | None]:
    out: dict[str, float | int | None] = {}
    for key, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            out[key] = None
        else:
            out[key] = value
    return out


def put_report(store: ContentStore, report: RoundReport) -> str:
    """Store the report; returns its CID (its digest goes on-chain as ``reportCid``)."""
    return put_blob(store, report.to_json_bytes())


def get_report(store: ContentStore, cid: str) -> RoundReport:
    """Fetch (verified) and parse a round report."""
    return RoundReport.from_json(get_blob(store, cid, MAX_REPORT_BYTES))
