"""Every committed round of a project (``ledgerlearn project history``): accuracy,
inliers, who was left out and why, scores, who settled them, gas and the transaction.

The chain gives the masks, scores and the transaction; the round report (bound on-chain
by its digest, fetched from the aggregator's store) gives the accuracy and the reasons.
When the report is unavailable the record still holds everything the chain says, with
``report_available`` False. In an attested project the committed scores are only the
aggregator's proposal: ``settlement`` says whether a stake-majority of the trainers
confirmed or replaced them (``scores_void``), or whether the round is still unsettled.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Any

from hexbytes import HexBytes

from marketplace.chain.market import MarketClient
from marketplace.errors import LedgerLearnError
from marketplace.rounds.chainview import chain_time, round_commits
from marketplace.rounds.report import RoundReport, get_report
from marketplace.storage import ContentStore
from marketplace.views.settlement import Settlement, round_settlements
from marketplace.views.status import trainer_addresses


@dataclass(frozen=True)
class RoundRecord:
    """One committed round. Trainers are keyed by index (``trainers`` maps index to
    address); ``scores`` are the fixed-point contribution scores the aggregator committed
    on-chain, which pay only when ``settlement.payable`` and not ``scores_void`` (a
    trainers' majority replaced them: the chain holds only the replacement's root)."""

    round: int
    global_model_cid: str
    report_cid: str | None
    tx_hash: str
    block: int
    gas: int
    inliers: list[int]
    scores: dict[int, int]
    excluded: dict[int, str]  # trainer index -> why it is not an inlier this round
    accuracy: float | None = None
    loss: float | None = None
    report_available: bool = False
    trainers: dict[int, str] = field(default_factory=dict)
    settlement: Settlement | None = None

    @property
    def scores_void(self) -> bool:
        """The aggregator's scores were replaced by the trainers' majority: they pay nothing."""
        return self.settlement is not None and self.settlement.scores_void

    @property
    def settled_by(self) -> str:
        """One line: who settled the round's scores (and the votes)."""
        return "" if self.settlement is None else self.settlement.summary

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        # JSON object keys are strings; keep them in index order
        for key in ("scores", "excluded", "trainers"):
            out[key] = {str(k): v for k, v in sorted(out[key].items())}
        out["settlement"] = None if self.settlement is None else self.settlement.to_json()
        out.update(scores_void=self.scores_void, settled_by=self.settled_by)
        return out


def _reasons(
    report: RoundReport | None,
    rejected: list[int],
    committed: list[int],
    active: list[int],
    copies: dict[int, int],
) -> dict[int, str]:
    """Why each committed non-inlier was left out: the report's reason when it has one,
    else what the chain alone says (rejected, copied CID, no valid opening)."""
    out: dict[int, str] = {}
    for i in committed:
        if i in copies:
            out[i] = f"excluded: opened the same update CID as trainer {copies[i]}"
        elif i not in active:
            out[i] = "did not reveal its commitment in time"
        elif i in rejected:
            out[i] = "rejected"
        else:
            out[i] = "excluded by the robust rule"
    if report is not None:
        for i, why in report.rejected.items():
            out[i] = f"rejected: {why}"
        for i, why in report.excluded.items():
            out[i] = f"excluded: {why}"
    return out


def project_history(
    market: MarketClient,
    store: ContentStore | None,
    project_id: int,
    *,
    rounds: Collection[int] | None = None,
) -> list[RoundRecord]:
    """One record per committed round (only those in ``rounds`` when given), oldest
    first. ``store`` holds the aggregator's round reports (its gateway or a copy);
    without it (None) or without a report blob, accuracy and the filter's reasons are
    missing."""
    info = market.project(project_id)
    addresses = trainer_addresses(market, project_id)
    n = max(info.trainer_count, len(addresses))
    copies: dict[int, dict[int, int]] = {}
    for log in market.project_logs("UpdateExcluded", project_id, 0):
        args = log["args"]
        copies.setdefault(int(args["round"]), {})[int(args["index"])] = int(args["holder"])
    w3 = market.contract.w3
    commits = {
        r: c
        for r, c in round_commits(market, project_id, n).items()
        if rounds is None or r in rounds
    }
    settlements = round_settlements(market, info, commits, chain_time(market))
    records = []
    for r, commit in commits.items():
        report = None
        if store is not None and commit.report_cid is not None:
            try:
                report = get_report(store, commit.report_cid)
            except LedgerLearnError:
                report = None
        masks = market.round_masks(project_id, r, n)
        inliers = [i for i, keep in enumerate(commit.inlier_mask) if keep]
        metrics = report.metrics if report is not None else {}
        accuracy, loss = metrics.get("accuracy"), metrics.get("loss")
        receipt = w3.eth.get_transaction_receipt(HexBytes(commit.transaction))
        records.append(
            RoundRecord(
                round=r,
                global_model_cid=commit.global_model_cid,
                report_cid=commit.report_cid,
                tx_hash="0x" + commit.transaction.hex(),
                block=commit.block,
                gas=int(receipt["gasUsed"]),
                inliers=inliers,
                scores=dict(zip(inliers, commit.scores, strict=False)),
                excluded=_reasons(
                    report,
                    [i for i, bit in enumerate(commit.rejected_mask) if bit],
                    [i for i, bit in enumerate(masks.committed) if bit and i not in inliers],
                    [i for i, bit in enumerate(masks.revealed) if bit],
                    copies.get(r, {}),
                ),
                accuracy=None if accuracy is None else float(accuracy),
                loss=None if loss is None else float(loss),
                report_available=report is not None,
                trainers=dict(enumerate(addresses)),
                settlement=settlements[r],
            )
        )
    return records
