"""The projects overview and one project's page: status, accuracy curve, rounds with
who settled them, the trainers' attestations, contributions with payouts in ether,
exclusions with their reasons.

Everything comes from :mod:`marketplace.views` (the CLI prints the same records) plus
each trainer's payout, read from the contract (``Withdrawn`` events once paid, else
``expectedPayout``). A round whose scores the trainers' majority replaced counts none of
the aggregator's (void) scores: the replacing ones are known only to the trainers, so
the page says so instead of showing numbers it cannot know.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from marketplace.chain.market import MarketClient
from marketplace.chain.units import format_eth
from marketplace.ui.html import Html, join, link, table, tag
from marketplace.ui.svg import Series, line_chart
from marketplace.views import ProjectStatus, ProjectSummary, RoundRecord


@dataclass(frozen=True)
class Payout:
    """What one trainer was paid (``withdrawn``) or would be paid now, in wei: its stake,
    its reward share and its share of a slashed aggregator bond."""

    stake: int
    reward: int
    withdrawn: bool
    bond: int = 0


def payouts(market: MarketClient, project_id: int, addresses: Sequence[str]) -> list[Payout]:
    """Each trainer's payout by index: the ``Withdrawn`` event's amounts once it withdrew,
    else what ``withdraw`` would pay now. Not yet withdrawn, the reward counts only the
    rounds whose scores the chain's events prove (not a replaced round's: its scores are
    the trainers' own replay)."""
    paid = {
        str(log["args"]["trainer"]): (
            int(log["args"]["stake"]),
            int(log["args"]["reward"]),
            int(log["args"]["bond"]),
        )
        for log in market.project_logs("Withdrawn", project_id, 0)
    }
    bond_share = market.project(project_id).bond_share
    out = []
    for address in addresses:
        if address in paid:
            stake, reward, got = paid[address]
            out.append(Payout(stake, reward, withdrawn=True, bond=got))
            continue
        stake, share = market.expected_payout(project_id, address)
        # the share counts the bond's part too (all of it in a disputed project)
        got = bond_share if stake else 0
        out.append(Payout(stake, share - got, withdrawn=False, bond=got))
    return out


def short(text: str, keep: int = 10) -> Html:
    """A long hex string or CID cut in the middle, whole in its tooltip."""
    shown = text if len(text) <= 2 * keep + 1 else f"{text[:keep]}…{text[-4:]}"
    return tag("span", shown, class_="mono", title=text)


def projects_body(projects: Sequence[ProjectSummary]) -> Html:
    rows = [
        (
            link(f"/projects/{p.project_id}", f"project {p.project_id}"),
            p.state,
            Html(f"{p.rounds_committed} / {p.rounds}"),
            p.trainer_count,
            format_eth(p.reward),
            format_eth(p.reward_paid),
            short(p.owner),
            short(p.aggregator),
        )
        for p in projects
    ]
    headers = ("project", "state", "rounds", "trainers", "reward", "paid", "owner", "aggregator")
    return table(headers, rows, id="projects")


def accuracy_chart(history: Sequence[RoundRecord]) -> Html:
    points = [(float(r.round), r.accuracy) for r in history if r.accuracy is not None]
    return Html(
        line_chart(
            [Series("validation accuracy", points)],
            title="Global model accuracy on the owner's validation set, per round",
            x_label="round",
            y_label="accuracy",
            y_range=(0.0, 1.0),
            x_integer=True,
        )
    )


def _facts(summary: ProjectSummary, status: ProjectStatus) -> Html:
    facts: list[tuple[str, Html | str | None]] = [
        ("state", summary.state),
        ("phase", status.phase),
        ("waiting for", status.waiting_for),
        ("rounds", f"{summary.rounds_committed} of {summary.rounds} committed"),
        ("trainers", str(summary.trainer_count)),
        ("reward", format_eth(summary.reward)),
        ("paid out", format_eth(summary.reward_paid)),
        ("minimum stake", format_eth(summary.min_stake)),
        ("owner", short(summary.owner, 42)),
        ("aggregator", short(summary.aggregator, 42)),
        ("model spec", None if summary.model_spec_cid is None else short(summary.model_spec_cid)),
        (
            "global model",
            None if summary.global_model_cid is None else short(summary.global_model_cid),
        ),
        (
            "last accuracy",
            None if status.last_accuracy is None else f"{status.last_accuracy:.4f}",
        ),
        (
            "attestation",
            "rounds pay what a stake-majority of their trainers attests"
            if status.attested
            else "none: the aggregator's scores are final",
        ),
        (
            "bond slashed",
            tag("span", format_eth(status.bond_slashed), class_="bad")
            if status.bond_slashed
            else "none",
        ),
    ]
    items = join(join([tag("dt", k), tag("dd", v)]) for k, v in facts)
    return tag("dl", items, class_="facts", id="facts")


#: Outcomes a page marks as bad news (the aggregator's scores do not pay as committed).
BAD_OUTCOMES = ("replaced", "unsettled", "disputed")


def _settled(r: RoundRecord) -> Html:
    s = r.settlement
    if s is None:
        return Html("")
    text = tag("span", f"{s.outcome}: {s.summary}", class_=f"settlement {s.outcome}")
    return tag("span", text, class_="bad") if s.outcome in BAD_OUTCOMES else text


def _rounds(history: Sequence[RoundRecord]) -> Html:
    rows = [
        (
            r.round,
            None if r.accuracy is None else Html(f"{r.accuracy:.4f}"),
            Html(f"{len(r.inliers)} of {len(r.inliers) + len(r.excluded)}"),
            join((f"#{i}" for i in sorted(r.excluded)), ", ") or "none",
            _settled(r),
            f"{r.gas:,}",
            short(r.tx_hash),
            None if r.report_cid is None else short(r.report_cid),
        )
        for r in history
    ]
    headers = ("round", "accuracy", "inliers", "excluded", "settled", "gas", "transaction",
               "report")  # fmt: skip
    return table(headers, rows, id="rounds")


def _attestations(history: Sequence[RoundRecord]) -> Html:
    """Per attested round, each (root, total) the trainers attested, who and how much stake;
    a replaced round's note on its void scores."""
    rows = []
    notes = []
    for r in history:
        s = r.settlement
        if s is None or not s.attested:
            continue
        for g in s.vote_groups():
            whose = "aggregator's" if g.for_aggregator else "another"
            settled = "yes" if g.scores_root == s.settled_root else "no"
            rows.append((r.round, whose, short(g.scores_root), g.scores_total,
                         join((f"#{i}" for i in g.trainers), ", "), format_eth(g.stake),
                         format_eth(s.active_stake), settled))  # fmt: skip
        if s.replacement_note is not None:
            notes.append(tag("p", f"round {r.round}: {s.replacement_note}", class_="bad"))
    headers = ("round", "whose", "scores root", "total", "trainers", "stake",
               "active stake", "settled")  # fmt: skip
    return join([table(headers, rows, id="attestations"), *notes])


def _contributions(history: Sequence[RoundRecord], addresses: Sequence[str],
                   paid: Sequence[Payout]) -> Html:  # fmt: skip
    valid = [r for r in history if not r.scores_void]  # a replaced round's scores are void
    total = sum(s for r in valid for s in r.scores.values())
    rows = []
    for i, address in enumerate(addresses):
        score = sum(r.scores.get(i, 0) for r in valid)
        kept = sum(i in r.inliers for r in history)
        pay = paid[i]
        rows.append(
            (
                f"#{i}",
                short(address, 42),
                Html(f"{kept} of {len(history)}"),
                score,
                Html(f"{100 * score / total:.1f} %") if total else None,
                format_eth(pay.reward),
                format_eth(pay.bond),
                format_eth(pay.stake),
                "withdrawn" if pay.withdrawn else "not withdrawn yet",
            )
        )
    headers = ("trainer", "address", "inlier rounds", "score", "share", "reward",
               "bond share", "stake back", "payout")  # fmt: skip
    void = [r.round for r in history if r.scores_void]
    note = (
        tag(
            "p",
            f"rounds {', '.join(map(str, void))}: the aggregator's scores are void (the "
            "trainers' majority replaced them) and not counted; the replacing scores are "
            "known only to the trainers, so a reward not withdrawn yet leaves those rounds "
            "out until each trainer claims them from its own replay",
            class_="bad",
            id="void-scores",
        )
        if void
        else Html("")
    )
    return join([table(headers, rows, id="contributions"), note])


def _exclusions(history: Sequence[RoundRecord]) -> Html:
    rows = [
        (r.round, f"#{i}", short(r.trainers.get(i, "?"), 42), tag("span", why, class_="bad"))
        for r in history
        for i, why in sorted(r.excluded.items())
    ]
    return table(("round", "trainer", "address", "reason"), rows, id="exclusions")


def _roster(status: ProjectStatus) -> Html:
    if status.round is None:
        return Html("")
    rows = [
        (
            f"#{s.index}",
            short(s.address, 42),
            "yes" if s.committed else "no",
            "yes" if s.revealed else "no",
            tag("span", "awaited", class_="bad") if s.awaited else "",
        )
        for s in status.roster
    ]
    heading = tag("h2", f"Round {status.round} now ({status.phase}, {status.seconds_left} s left)")
    return join([heading, table(("trainer", "address", "committed", "revealed", ""), rows,
                                id="roster")])  # fmt: skip


def project_body(
    summary: ProjectSummary,
    status: ProjectStatus,
    history: Sequence[RoundRecord],
    addresses: Sequence[str],
    paid: Sequence[Payout],
) -> Html:
    missing = [r.round for r in history if not r.report_available]
    note = (
        tag(
            "p",
            f"round reports unavailable for rounds {', '.join(map(str, missing))}: accuracy "
            "and the filter's reasons need the aggregator's store (--store)",
            class_="bad",
        )
        if missing
        else Html("")
    )
    return join(
        [
            _facts(summary, status),
            _roster(status),
            tag("h2", "Accuracy"),
            note,
            accuracy_chart(history),
            tag("h2", "Rounds"),
            _rounds(history),
            tag("h2", "Attestations") if status.attested else Html(""),
            _attestations(history) if status.attested else Html(""),
            tag("h2", "Contributions"),
            _contributions(history, addresses, paid),
            tag("h2", "Exclusions"),
            _exclusions(history),
        ]
    )
