"""Every project on the market, one summary line each (``ledgerlearn project list``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from marketplace.chain.market import ZERO32, MarketClient, ProjectInfo
from marketplace.storage import cid_from_digest


@dataclass(frozen=True)
class ProjectSummary:
    """A project's identity, progress and money (amounts in wei)."""

    project_id: int
    owner: str
    aggregator: str
    state: str  # open | finalized | cancelled | disputed
    rounds: int
    rounds_committed: int
    trainer_count: int
    round_duration: int
    reward: int
    reward_paid: int
    min_stake: int
    model_spec_cid: str | None
    global_model_cid: str | None

    @classmethod
    def of(cls, info: ProjectInfo) -> ProjectSummary:
        return cls(
            project_id=info.project_id,
            owner=info.owner,
            aggregator=info.aggregator,
            state=info.status.name.lower(),
            rounds=info.rounds,
            rounds_committed=info.rounds_committed,
            trainer_count=info.trainer_count,
            round_duration=info.round_duration,
            reward=info.reward,
            reward_paid=info.reward_paid,
            min_stake=info.min_stake,
            model_spec_cid=cid_or_none(info.model_spec_cid),
            global_model_cid=cid_or_none(info.global_model_cid),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def cid_or_none(digest: bytes) -> str | None:
    """The CID of an on-chain digest; None for the zero word (nothing committed)."""
    return None if digest == ZERO32 else cid_from_digest(digest)


def list_projects(market: MarketClient) -> list[ProjectSummary]:
    """Every project, by id (ids run from 1 to ``projectCount``)."""
    return [ProjectSummary.of(market.project(pid)) for pid in range(1, market.project_count() + 1)]
