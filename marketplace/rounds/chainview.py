"""Reads of ``ContributionMarket`` events the nodes need beyond :class:`MarketClient`.

``UpdateRevealed`` tells the aggregator which CID each trainer opened in a round (the
contract's revealed mask says which of them are active: an opening of a CID that an
earlier committer holds is excluded);
``RoundCommitted`` carries each round's report digest, from which a restarted aggregator
rebuilds its state. Events are read with ``eth_getLogs`` filtered by indexed project and
round, so the cost does not grow with other projects' traffic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from marketplace.chain.market import ZERO32, MarketClient, words_to_mask
from marketplace.storage import cid_from_digest


@dataclass(frozen=True)
class UpdateCommit:
    """A trainer's opened (revealed) commitment in one round."""

    index: int
    trainer: str
    cid: str
    sketch_commitment: bytes
    block: int
    log_index: int = 0
    committed_at: tuple[int, int] | None = None
    """(block, log index) of the trainer's hidden commitment: who bound itself first
    (the copy checks' order; the reveal order is anyone's choice once the window closes)."""

    @property
    def arrival(self) -> tuple[int, int]:
        """Sort key of the reveal order the market saw (the zk chain's fold order)."""
        return (self.block, self.log_index)

    @property
    def commit_arrival(self) -> tuple[int, int]:
        """Sort key of the commit order (the reveal order when the commitment's event
        is out of the scanned range)."""
        return self.committed_at if self.committed_at is not None else self.arrival


@dataclass(frozen=True)
class RoundCommit:
    """What the aggregator committed for one round."""

    round: int
    global_model_cid: str
    report_cid: str | None
    inlier_mask: list[bool]
    rejected_mask: list[bool]
    scores: list[int]
    block: int
    transaction: bytes


def update_commits(
    market: MarketClient,
    project_id: int,
    round_: int,
    from_block: int = 0,
    *,
    active_only: bool = True,
    roster: int | None = None,
) -> dict[int, UpdateCommit]:
    """Trainer index -> opened commitment, for the ``UpdateRevealed`` events of the round:
    only the active trainers' (the contract's revealed mask) unless ``active_only`` is
    False (a zk prover also needs the excluded ones, whose sketch it folded). Pass the
    round's ``roster`` when it is known (saves a ``roundState`` read)."""
    logs = market.project_logs("UpdateRevealed", project_id, from_block, round_)
    committed_at: dict[int, tuple[int, int]] = {}
    if logs:
        for log in market.project_logs("UpdateCommitted", project_id, from_block, round_):
            key = (int(log["blockNumber"]), int(log["logIndex"]))
            committed_at.setdefault(int(log["args"]["index"]), key)
    active: list[bool] | None = None
    if active_only and logs:
        active = market.round_masks(project_id, round_, roster).revealed
    out: dict[int, UpdateCommit] = {}
    for log in logs:
        args = log["args"]
        index = int(args["index"])
        if active is not None and not (index < len(active) and active[index]):
            continue
        if bytes(args["cidDigest"]) == ZERO32:
            continue
        out[int(args["index"])] = UpdateCommit(
            index=int(args["index"]),
            trainer=str(args["trainer"]),
            cid=cid_from_digest(bytes(args["cidDigest"])),
            sketch_commitment=bytes(args["sketchCommitment"]),
            block=int(log["blockNumber"]),
            log_index=int(log["logIndex"]),
            committed_at=committed_at.get(index),
        )
    return dict(sorted(out.items()))


def round_commit(
    market: MarketClient,
    project_id: int,
    round_: int,
    trainer_count: int | None = None,
    from_block: int = 0,
) -> RoundCommit | None:
    """The ``RoundCommitted`` event of a round (None when it is not committed yet); masks
    over ``trainer_count`` trainers (default: the round's roster)."""
    logs = market.project_logs("RoundCommitted", project_id, from_block, round_)
    if not logs:
        return None
    if trainer_count is None:
        trainer_count = market.round_state(project_id, round_).roster
    return _round_commit_of(logs[-1], trainer_count)


def round_commits(
    market: MarketClient, project_id: int, trainer_count: int, from_block: int = 0
) -> dict[int, RoundCommit]:
    """Round -> its ``RoundCommitted`` event, every committed round of the project in one
    cached read (:meth:`MarketClient.project_logs`: each block is scanned once per
    process, which a status view polled every few seconds needs); masks over
    ``trainer_count`` trainers (a round's roster is at most the project's count)."""
    out: dict[int, RoundCommit] = {}
    for log in market.project_logs("RoundCommitted", project_id, from_block):
        commit = _round_commit_of(log, trainer_count)
        out[commit.round] = commit
    return dict(sorted(out.items()))


def _round_commit_of(log: Any, trainer_count: int) -> RoundCommit:
    args = log["args"]
    report = bytes(args["reportCid"])
    return RoundCommit(
        round=int(args["round"]),
        global_model_cid=cid_from_digest(bytes(args["globalModelCid"])),
        report_cid=None if report == ZERO32 else cid_from_digest(report),
        inlier_mask=words_to_mask(list(args["inlierMask"]), trainer_count),
        rejected_mask=words_to_mask(list(args["rejectedMask"]), trainer_count),
        scores=[int(s) for s in args["scores"]],
        block=int(log["blockNumber"]),
        transaction=bytes(log["transactionHash"]),
    )


def chain_time(market: MarketClient) -> int:
    """Time to hold deadlines against: the latest block's timestamp, or wall-clock time
    on a real node where the next block will carry at least that (a node mines on demand
    and its latest block may be old)."""
    latest = market.chain.now()
    return latest if market.chain.embedded else max(latest, int(time.time()))
