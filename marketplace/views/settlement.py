"""Who settled each committed round, and whether the aggregator's scores still stand.

In an attested project ``commitRound``'s scores are only the aggregator's proposal: the
round pays the first (scores root, total) that more than half of its active trainers'
stake attests (``RoundAttested``, ``RoundSettled``). When that root is not the
aggregator's it *replaces* it: the aggregator's per-trainer scores are void and its bond
is slashed (``BondSlashed``). The replacing scores are known only to the trainers who
replayed the round; the chain holds their root and total, so a view says that and shows
no per-trainer numbers for the round. A round no majority settles within its window pays
no reward; a disputed rejection (``RoundDisputed``) halts the project and pays none.

Everything is read through :meth:`MarketClient.project_logs` (each block scanned once per
process) plus one ``roundState`` call per round.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from marketplace.chain.market import MarketClient, ProjectInfo, RoundScores
from marketplace.chain.market import ProjectStatus as ChainStatus
from marketplace.chain.units import format_eth
from marketplace.rounds.chainview import RoundCommit

#: ``outcome`` values: how a committed round stands.
OUTCOMES = ("unattested", "confirmed", "replaced", "pending", "unsettled", "disputed")


@dataclass(frozen=True)
class Vote:
    """One ``RoundAttested``: a trainer's replayed (root, total) and the stake behind it."""

    index: int
    trainer: str
    scores_root: str  # 0x-hex
    scores_total: int
    stake: int
    for_aggregator: bool  # the aggregator's committed root and total


@dataclass(frozen=True)
class VoteGroup:
    """The trainers who attested one (root, total), and their stake."""

    scores_root: str
    scores_total: int
    trainers: list[int]
    stake: int
    for_aggregator: bool


@dataclass(frozen=True)
class Settlement:
    """How one committed round stands. ``outcome``: ``unattested`` (the project takes the
    aggregator's word), ``confirmed`` (a stake-majority attested the aggregator's root),
    ``replaced`` (a stake-majority attested another root: the aggregator's scores are
    void), ``pending`` (no majority yet, the attestation window is open), ``unsettled``
    (the window closed without a majority: the round pays no reward) or ``disputed`` (a
    rejected trainer disputed the round: the project pays no reward). Amounts in wei."""

    round: int
    outcome: str
    summary: str  # one line saying the above with the votes
    attested: bool
    aggregator_root: str
    aggregator_total: int
    settled_root: str | None  # the payable root once a majority settled the round
    settled_total: int | None
    majority_stake: int  # stake behind the settled root (or, unsettled, the leading one)
    active_stake: int  # the electorate: stake of the round's active trainers
    active_trainers: int
    attestation_closes: int | None  # chain time the window closes (attested projects)
    scores_void: bool  # the aggregator's per-trainer scores do not pay
    bond_slashed: int  # wei of the aggregator's bond this round's settlement slashed
    payable: bool  # the settled scores pay a reward (never in a disputed project)
    disputed_by: str | None = None
    votes: list[Vote] = field(default_factory=list)

    @property
    def replacement_note(self) -> str | None:
        """What a view prints instead of the void scores of a replaced round."""
        if not self.scores_void:
            return None
        return (
            f"the aggregator's scores are void: the trainers' majority replaced them with "
            f"root {self.settled_root} (total {self.settled_total}); the per-trainer scores "
            "behind that root are known only to the trainers who replayed the round"
        )

    def vote_groups(self) -> list[VoteGroup]:
        """The votes by (root, total), the most stake first: who backed what."""
        out = [
            VoteGroup(
                root, total, [v.index for v in vs], sum(v.stake for v in vs), vs[0].for_aggregator
            )  # fmt: skip
            for (root, total), vs in _grouped(self.votes).items()
        ]
        return sorted(out, key=lambda g: -g.stake)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _grouped(votes: Iterable[Vote]) -> dict[tuple[str, int], list[Vote]]:
    """The votes by the (root, total) they attested, in vote order."""
    groups: dict[tuple[str, int], list[Vote]] = {}
    for v in votes:
        groups.setdefault((v.scores_root, v.scores_total), []).append(v)
    return groups


def _hex(data: bytes) -> str:
    return "0x" + bytes(data).hex()


def _stake_line(stake: int, of: int, votes: int, active: int) -> str:
    return f"{votes} of {active} active trainers, {format_eth(stake)} of {format_eth(of)} stake"


def _summary(s: Settlement, now: int) -> str:
    agree = [v for v in s.votes if v.for_aggregator]
    if s.outcome == "unattested":
        return "the aggregator's scores (project not attested: its word is final)"
    if s.outcome == "confirmed":
        who = _stake_line(s.majority_stake, s.active_stake, len(agree), s.active_trainers)
        return f"the aggregator's root confirmed by {who}"
    if s.outcome == "replaced":
        backers = [v for v in s.votes if v.scores_root == s.settled_root]
        who = _stake_line(s.majority_stake, s.active_stake, len(backers), s.active_trainers)
        bond = f"; bond {format_eth(s.bond_slashed)} slashed" if s.bond_slashed else ""
        return f"replaced by the trainers' majority ({who}): aggregator's scores void{bond}"
    tally = (
        f"{len(s.votes)} of {s.active_trainers} active trainers voted, "
        f"{len(agree)} for the aggregator's root; leading root has "
        f"{format_eth(s.majority_stake)} of {format_eth(s.active_stake)} stake"
    )
    if s.outcome == "pending":
        left = max(0, (s.attestation_closes or now) - now)
        return f"no majority yet ({tally}); attestation window closes in {left} s"
    if s.outcome == "unsettled":
        return f"attestation window closed without a majority ({tally}): no reward for the round"
    head = f"disputed by {s.disputed_by}: the project halts and pays no reward"
    if s.scores_void:
        head += "; the aggregator's scores were already replaced by the trainers' majority"
    return head


def _stakes(market: MarketClient, project_id: int) -> dict[int, int]:
    return {
        int(log["args"]["index"]): int(log["args"]["stake"])
        for log in market.project_logs("TrainerRegistered", project_id, 0)
    }


def _by_round(logs: Iterable[Any]) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    for log in logs:
        out.setdefault(int(log["args"]["round"]), []).append(log)
    return out


def round_settlements(
    market: MarketClient,
    info: ProjectInfo,
    commits: dict[int, RoundCommit],
    now: int,
) -> dict[int, Settlement]:
    """Round -> its :class:`Settlement`, for the committed rounds in ``commits`` (from
    :func:`~marketplace.rounds.chainview.round_commits`), at chain time ``now``."""
    pid = info.project_id
    stakes = _stakes(market, pid)
    attestations = _by_round(market.project_logs("RoundAttested", pid, 0)) if info.attested else {}
    slashes = {
        int(log["args"]["round"]): int(log["args"]["amount"])
        for log in market.project_logs("BondSlashed", pid, 0)
    }
    disputes = {
        int(log["args"]["round"]): str(log["args"]["trainer"])
        for log in market.project_logs("RoundDisputed", pid, 0)
    }
    out: dict[int, Settlement] = {}
    for r, commit in commits.items():
        inliers = [i for i, keep in enumerate(commit.inlier_mask) if keep]
        mine = RoundScores(inliers, list(commit.scores))
        aggregator_root, aggregator_total = _hex(mine.root), mine.total
        state = market.round_state(pid, r)
        votes = [
            Vote(
                index=int(a["args"]["index"]),
                trainer=str(a["args"]["trainer"]),
                scores_root=_hex(a["args"]["scoresRoot"]),
                scores_total=int(a["args"]["scoresTotal"]),
                stake=stakes.get(int(a["args"]["index"]), 0),
                for_aggregator=(
                    _hex(a["args"]["scoresRoot"]) == aggregator_root
                    and int(a["args"]["scoresTotal"]) == aggregator_total
                ),
            )
            for a in attestations.get(r, [])
        ]
        tallies = {key: sum(v.stake for v in vs) for key, vs in _grouped(votes).items()}
        settled = info.attested and state.settled
        settled_key = (_hex(state.scores_root), state.scores_total)
        closes = state.committed_at + info.round_duration if info.attested else None
        if r in disputes:
            outcome = "disputed"
        elif not info.attested:
            outcome = "unattested"
        elif settled:
            outcome = "replaced" if state.replaced else "confirmed"
        elif closes is not None and now <= closes and info.status == ChainStatus.OPEN:
            outcome = "pending"
        else:
            outcome = "unsettled"
        majority = tallies.get(settled_key, 0) if settled else max(tallies.values(), default=0)
        settlement = Settlement(
            round=r,
            outcome=outcome,
            summary="",
            attested=info.attested,
            aggregator_root=aggregator_root,
            aggregator_total=aggregator_total,
            settled_root=settled_key[0] if settled else None,
            settled_total=settled_key[1] if settled else None,
            majority_stake=majority,
            active_stake=state.active_stake,
            active_trainers=state.revealed_count,
            attestation_closes=closes,
            scores_void=settled and state.replaced,
            bond_slashed=slashes.get(r, 0),
            payable=outcome in ("unattested", "confirmed", "replaced") and not disputes,
            disputed_by=disputes.get(r),
            votes=votes,
        )
        line = _summary(settlement, now)
        if disputes and outcome != "disputed":
            line += "; the project was disputed: no round pays a reward"
        out[r] = replace(settlement, summary=line)
    return out
