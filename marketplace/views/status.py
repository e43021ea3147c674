"""Where a project stands now (``ledgerlearn project status``): its phase, the round's
deadlines with the seconds left, who committed, who revealed, who is awaited, and the
last committed round's accuracy.

The phases follow the contract's windows, each ``round_duration`` long from the moment
the round opened (the previous ``commitRound``, or project creation): trainers commit
until ``opened + d`` (or until every seat of the roster committed), reveal until
``opened + 2d`` (or until every committer opened), and the aggregator must commit the
round by ``opened + 3d``; after that the project is ``stale`` and anyone with a stake
may finalize it.

In an attested project each committed round also has an attestation window
(``round_duration`` after its commit) in which its trainers confirm or replace the
aggregator's scores: ``settlements`` says per round how it stands (see
:mod:`marketplace.views.settlement`), and a project whose last round is still being
attested waits for that before it can be finalized.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from marketplace.chain.market import MarketClient, ProjectInfo
from marketplace.chain.market import ProjectStatus as ChainStatus
from marketplace.errors import LedgerLearnError
from marketplace.rounds.chainview import chain_time, round_commits
from marketplace.rounds.report import get_report
from marketplace.storage import ContentStore
from marketplace.views.settlement import Settlement, round_settlements

#: Phases of an open project, in order; a closed project's phase is its state's name.
PHASES = ("commit", "reveal", "aggregate", "stale", "done")


@dataclass(frozen=True)
class Seat:
    """A trainer's place in the current round."""

    index: int
    address: str
    committed: bool
    revealed: bool
    awaited: bool  # the round waits for this trainer's commitment or opening


@dataclass(frozen=True)
class ProjectStatus:
    """A project at chain time ``now`` (seconds since the epoch)."""

    project_id: int
    state: str  # open | finalized | cancelled | disputed
    phase: str  # commit | reveal | aggregate | stale | done, or the closed state's name
    waiting_for: str  # one line: what the project waits for now
    round: int | None  # the round open for commitments; None once every round is done
    rounds: int
    rounds_committed: int
    now: int
    commit_deadline: int | None
    reveal_deadline: int | None
    aggregate_deadline: int | None
    roster: list[Seat] = field(default_factory=list)
    last_accuracy: float | None = None  # the last committed round's, from its report
    attested: bool = False  # rounds pay only what a stake-majority of trainers attests
    bond_slashed: int = 0  # wei of the aggregator's bond slashed to the trainers
    settlements: list[Settlement] = field(default_factory=list)  # per committed round

    @property
    def rounds_replaced(self) -> list[int]:
        """Rounds whose aggregator scores a trainers' majority replaced (void)."""
        return [s.round for s in self.settlements if s.scores_void]

    @property
    def deadline(self) -> int | None:
        """The end of the current phase's window."""
        return {
            "commit": self.commit_deadline,
            "reveal": self.reveal_deadline,
            "aggregate": self.aggregate_deadline,
        }.get(self.phase)

    @property
    def seconds_left(self) -> int | None:
        """Seconds until the current phase's window closes (0 when it already has)."""
        return None if self.deadline is None else max(0, self.deadline - self.now)

    @property
    def committed(self) -> list[str]:
        return [s.address for s in self.roster if s.committed]

    @property
    def revealed(self) -> list[str]:
        return [s.address for s in self.roster if s.revealed]

    @property
    def awaited(self) -> list[str]:
        return [s.address for s in self.roster if s.awaited]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            deadline=self.deadline,
            seconds_left=self.seconds_left,
            reveal_seconds_left=(
                None if self.reveal_deadline is None else max(0, self.reveal_deadline - self.now)
            ),
            committed=self.committed,
            revealed=self.revealed,
            awaited=self.awaited,
            rounds_replaced=self.rounds_replaced,
        )
        out["settlements"] = [s.to_json() for s in self.settlements]
        return out


def trainer_addresses(market: MarketClient, project_id: int) -> list[str]:
    """Trainer addresses by index, from the ``TrainerRegistered`` events (one cached read
    instead of one call per trainer)."""
    seats: dict[int, str] = {}
    for log in market.project_logs("TrainerRegistered", project_id, 0):
        seats[int(log["args"]["index"])] = str(log["args"]["trainer"])
    return [seats[i] for i in sorted(seats)]


def _phase(info: ProjectInfo, commit_closed: bool, reveal_closed: bool, now: int) -> str:
    if info.status != ChainStatus.OPEN:
        return info.status.name.lower()
    if info.rounds_committed >= info.rounds:
        return "done"
    if not commit_closed:
        return "commit"
    if not reveal_closed:
        return "reveal"
    if now <= info.round_opened_at + 3 * info.round_duration:
        return "aggregate"
    return "stale"


def _waiting_for(phase: str, seats: list[Seat], total: int, last: Settlement | None = None) -> str:
    awaited = sum(s.awaited for s in seats)
    if phase == "done" and last is not None and last.outcome == "pending":
        return (
            f"the trainers' attestations of round {last.round} ({last.summary}), "
            "then finalize (owner, aggregator or a trainer)"
        )
    if phase == "commit":
        done = sum(s.committed for s in seats)
        return f"commitments: {done} of {total} committed, {awaited} awaited"
    if phase == "reveal":
        done = sum(s.revealed for s in seats)
        committed = sum(s.committed for s in seats)
        return f"reveals: {done} of {committed} revealed, {awaited} awaited"
    if phase == "aggregate":
        return "the aggregator's round commitment"
    if phase in ("stale", "done"):
        return "finalize (owner, aggregator or a trainer)"
    return "nothing (closed)"


def last_accuracy(
    market: MarketClient, project_id: int, store: ContentStore | None, trainer_count: int
) -> float | None:
    """Accuracy after the last committed round, from its report (None without a store,
    without a report, or when the report's blob is unavailable)."""
    if store is None:
        return None
    commits = round_commits(market, project_id, trainer_count)
    if not commits:
        return None
    last = commits[max(commits)]
    if last.report_cid is None:
        return None
    try:
        value = get_report(store, last.report_cid).metrics.get("accuracy")
    except LedgerLearnError:
        return None
    return None if value is None else float(value)


def project_status(
    market: MarketClient,
    project_id: int,
    store: ContentStore | None = None,
    *,
    now: int | None = None,
    settlements: bool = True,
) -> ProjectStatus:
    """The project's phase, deadlines and roster at chain time ``now`` (default: the
    chain's, :func:`chain_time`); ``store`` (the aggregator's blobs) adds the last
    round's accuracy. ``settlements``: how each committed round was settled (one
    ``roundState`` read per round; a node's console polling its wait skips them)."""
    info = market.project(project_id)
    now = chain_time(market) if now is None else now
    addresses = trainer_addresses(market, project_id)
    accuracy = last_accuracy(market, project_id, store, info.trainer_count)
    settled: list[Settlement] = []
    if settlements:
        commits = round_commits(market, project_id, info.trainer_count)
        settled = list(round_settlements(market, info, commits, now).values())
    slashed = sum(
        int(log["args"]["amount"]) for log in market.project_logs("BondSlashed", project_id, 0)
    )

    def with_attestation(status: ProjectStatus) -> ProjectStatus:
        return replace(status, attested=info.attested, bond_slashed=slashed, settlements=settled)

    if info.status != ChainStatus.OPEN or info.rounds_committed >= info.rounds:
        phase = _phase(info, True, True, now)
        closed = ProjectStatus(
            project_id=project_id,
            state=info.status.name.lower(),
            phase=phase,
            waiting_for=_waiting_for(phase, [], 0, settled[-1] if settled else None),
            round=None,
            rounds=info.rounds,
            rounds_committed=info.rounds_committed,
            now=now,
            commit_deadline=None,
            reveal_deadline=None,
            aggregate_deadline=None,
            last_accuracy=accuracy,
        )
        return with_attestation(closed)
    round_ = info.current_round
    opened, d = info.round_opened_at, info.round_duration
    state = market.round_state(project_id, round_)
    roster = state.roster or info.trainer_count  # fixed at the round's first commitment
    masks = market.round_masks(project_id, round_, roster)
    opened_seats = {
        int(log["args"]["index"])
        for log in market.project_logs("UpdateRevealed", project_id, 0)
        if int(log["args"]["round"]) == round_
    }
    commit_closed = state.commit_closed or now > opened + d
    reveal_closed = state.reveal_closed or now > opened + 2 * d
    phase = _phase(info, commit_closed, reveal_closed, now)
    seats = []
    for i in range(roster):
        committed, revealed = masks.committed[i], i in opened_seats
        awaited = (phase == "commit" and not committed) or (
            phase == "reveal" and committed and not revealed
        )
        address = addresses[i] if i < len(addresses) else market.trainer(project_id, i).address
        seats.append(Seat(i, address, committed, revealed, awaited))
    current = ProjectStatus(
        project_id=project_id,
        state=info.status.name.lower(),
        phase=phase,
        waiting_for=_waiting_for(phase, seats, roster),
        round=round_,
        rounds=info.rounds,
        rounds_committed=info.rounds_committed,
        now=now,
        commit_deadline=opened + d,
        reveal_deadline=opened + 2 * d,
        aggregate_deadline=opened + 3 * d,
        roster=seats,
        last_accuracy=accuracy,
    )
    return with_attestation(current)
