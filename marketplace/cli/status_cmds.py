"""``ledgerlearn project list|status|history`` and ``ledgerlearn model get``: read-only.

Everything here reads the chain (no signing account needed) and, where a command shows
what only a round report or a model blob holds, the aggregator's content store: its
gateway (``--aggregator-gateway URL``) or a copy of its store directory (``--store DIR``).
The views themselves live in :mod:`marketplace.views` (the dashboard prints the same);
this module only formats them. Heavy imports (web3, torch) happen inside the commands so
that ``ledgerlearn --help`` stays fast.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from marketplace.cli.common import DEFAULT_URL, JsonOut, RpcUrl, console, emit_json, format_eth
from marketplace.errors import ConfigError

if TYPE_CHECKING:
    from marketplace.chain.connection import Chain
    from marketplace.chain.market import MarketClient
    from marketplace.storage import ContentStore
    from marketplace.views import ProjectStatus, RoundRecord, Settlement

ProjectArg = Annotated[int, typer.Argument(help="Project id.", min=1)]
AggregatorGateway = Annotated[
    str | None,
    typer.Option(
        help="URL of the aggregator's content gateway (round reports, models, model spec)."
    ),
]
StoreDir = Annotated[
    Path | None,
    typer.Option(
        "--store",
        help="A local content-store directory with the aggregator's blobs (instead of "
        "--aggregator-gateway).",
    ),
]


def read_market(rpc_url: str) -> tuple[MarketClient, Chain]:
    """A read-only client of the deployed market (no signing account)."""
    from marketplace.chain.connection import connect
    from marketplace.chain.deploy import load_manifest
    from marketplace.chain.market import MarketClient

    chain = connect(rpc_url)
    manifest = load_manifest(chain)
    return MarketClient(chain, manifest.address("ContributionMarket")), chain


def aggregator_store(
    chain: Chain,
    gateway: str | None,
    store: Path | None,
    *,
    required: bool = False,
    allow_private: bool = False,
) -> ContentStore | None:
    """The aggregator's blobs: its gateway or a local store directory (None when neither
    is given and ``required`` is False)."""
    from marketplace.storage import GatewayReader, LocalStore

    if gateway is not None and store is not None:
        raise ConfigError("pass --aggregator-gateway URL or --store DIR, not both")
    if store is not None:
        if not store.is_dir():
            raise ConfigError(f"{store}: no such content-store directory")
        return LocalStore(store)
    if gateway is not None:
        allowed = chain.development or allow_private
        return GatewayReader(gateway, allow_private=allowed, what="--aggregator-gateway")
    if required:
        raise ConfigError("pass --aggregator-gateway URL or --store DIR (the aggregator's blobs)")
    return None


def _seconds(value: int | None) -> str:
    return "-" if value is None else f"{value} s"


def _accuracy(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def settlement_lines(s: Settlement) -> list[str]:
    """A round's settlement as lines: who settled it (one line), then each attested
    (root, total) with its voters and stake, and what replaced void scores."""
    lines = [f"round {s.round}: {s.summary}"]
    for g in s.vote_groups():
        whose = "the aggregator's" if g.for_aggregator else "another"
        voters = ", ".join(map(str, g.trainers))
        lines.append(
            f"  {whose} root {g.scores_root[:10]}… total {g.scores_total}: "
            f"trainer{'s' if len(g.trainers) > 1 else ''} {voters} ({format_eth(g.stake)} stake)"
        )
    if s.replacement_note is not None:
        lines.append(f"  {s.replacement_note}")
    return lines


def print_settlements(settlements: list[Settlement]) -> None:
    """Each attested round's settlement (nothing for a project without attestation)."""
    for s in settlements:
        if s.attested or s.outcome == "disputed":
            for line in settlement_lines(s):
                console.print(line, highlight=False, soft_wrap=True)


def print_status(status: ProjectStatus) -> None:
    """The status as a few lines, each committed round's settlement and a roster table."""
    from rich.table import Table

    head = f"project {status.project_id}: {status.state}, phase {status.phase}"
    if status.round is not None:
        head += f", round {status.round} of {status.rounds}"
    else:
        head += f", {status.rounds_committed} of {status.rounds} rounds committed"
    console.print(head, highlight=False)
    console.print(f"waiting for {status.waiting_for}", highlight=False)
    if status.round is not None and status.reveal_deadline is not None:
        console.print(
            f"{status.phase} window closes in {_seconds(status.seconds_left)} "
            f"(reveal in {_seconds(max(0, status.reveal_deadline - status.now))}, "
            f"aggregation in {_seconds(max(0, (status.aggregate_deadline or 0) - status.now))})",
            highlight=False,
        )
    console.print(f"last accuracy {_accuracy(status.last_accuracy)}", highlight=False)
    if status.bond_slashed:
        console.print(
            f"aggregator bond slashed: {format_eth(status.bond_slashed)} to the trainers "
            f"(rounds replaced: {', '.join(map(str, status.rounds_replaced))})",
            highlight=False,
        )
    print_settlements(status.settlements)
    if status.roster:
        table = Table(title=f"round {status.round} roster")
        for col in ("#", "address", "commit", "reveal", "wait"):
            table.add_column(col, min_width=42 if col == "address" else None)
        for seat in status.roster:
            table.add_row(
                str(seat.index),
                seat.address,
                "yes" if seat.committed else "no",
                "yes" if seat.revealed else "no",
                "[yellow]awaited[/]" if seat.awaited else "",
            )
        console.print(table)


def _watch_key(status: ProjectStatus) -> tuple[Any, ...]:
    """What a change is: phase, round, the roster's marks, the rounds' settlements (not
    the ticking clock)."""
    settled = tuple((s.round, s.outcome, len(s.votes)) for s in status.settlements)
    return (status.phase, status.round, status.last_accuracy, tuple(status.roster), settled)


def status(
    project_id: ProjectArg,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch", help="Keep polling; print again on each change, stop once finished."
        ),
    ] = False,
    interval: Annotated[
        float, typer.Option(min=0.05, help="Seconds between polls with --watch.")
    ] = 2.0,
    aggregator_gateway: AggregatorGateway = None,
    store: StoreDir = None,
    rpc_url: RpcUrl = DEFAULT_URL,
    json_out: JsonOut = False,
) -> None:
    """Phase, round, deadlines, who committed or revealed, who is awaited, last accuracy.

    Example: ledgerlearn project status 1 --watch"""
    from marketplace.views import project_status

    market, chain = read_market(rpc_url)
    blobs = aggregator_store(chain, aggregator_gateway, store)
    last: tuple[Any, ...] | None = None
    while True:
        current = project_status(market, project_id, blobs)
        if _watch_key(current) != last:
            if json_out:
                emit_json(current.to_json())
            else:
                print_status(current)
            last = _watch_key(current)
        attesting = any(s.outcome == "pending" for s in current.settlements)
        if not watch or (current.round is None and not attesting):
            return
        time.sleep(interval)


def list_cmd(rpc_url: RpcUrl = DEFAULT_URL, json_out: JsonOut = False) -> None:
    """Every project on the market: state, rounds, trainers, reward."""
    from rich.table import Table

    from marketplace.views import list_projects

    market, _ = read_market(rpc_url)
    projects = list_projects(market)
    if json_out:
        emit_json([p.to_json() for p in projects])
        return
    if not projects:
        console.print("no projects yet: create one with `ledgerlearn project create`")
        return
    table = Table(title="projects")
    for col in ("id", "state", "rounds", "trainers", "reward", "paid", "aggregator"):
        table.add_column(col, min_width=42 if col == "aggregator" else None)
    for p in projects:
        table.add_row(
            str(p.project_id),
            p.state,
            f"{p.rounds_committed}/{p.rounds}",
            str(p.trainer_count),
            format_eth(p.reward),
            format_eth(p.reward_paid),
            p.aggregator,
        )
    console.print(table)


def print_history(project_id: int, records: list[RoundRecord]) -> None:
    from rich.table import Table

    table = Table(title=f"project {project_id} rounds")
    for col in ("round", "accuracy", "inliers", "excluded", "scores", "settled", "gas", "tx"):
        table.add_column(col)
    for r in records:
        scores = " ".join(f"{i}:{s}" for i, s in sorted(r.scores.items())) or "-"
        table.add_row(
            str(r.round),
            _accuracy(r.accuracy),
            ",".join(map(str, r.inliers)) or "-",
            ",".join(map(str, sorted(r.excluded))) or "-",
            f"void ({scores})" if r.scores_void else scores,
            "-" if r.settlement is None else r.settlement.outcome,
            str(r.gas),
            r.tx_hash,
        )
    console.print(table)
    print_settlements([r.settlement for r in records if r.settlement is not None])
    for r in records:
        for index, why in sorted(r.excluded.items()):
            who = r.trainers.get(index, "?")
            console.print(f"round {r.round}: trainer {index} ({who}) {why}", highlight=False)
    if any(not r.report_available for r in records):
        console.print(
            "note: some round reports were not read (pass --aggregator-gateway URL or "
            "--store DIR): their accuracy and reasons are missing",
            highlight=False,
        )


def history(
    project_id: ProjectArg,
    aggregator_gateway: AggregatorGateway = None,
    store: StoreDir = None,
    rpc_url: RpcUrl = DEFAULT_URL,
    json_out: JsonOut = False,
) -> None:
    """Per round: accuracy, inliers, who was excluded and why, scores, who settled them
    (attested projects: the trainers' votes; void scores when replaced), gas, tx hash.

    Example: ledgerlearn project history 1 --store ~/.ledgerlearn/aggregator/0x..-p1"""
    from marketplace.views import project_history

    market, chain = read_market(rpc_url)
    blobs = aggregator_store(chain, aggregator_gateway, store)
    records = project_history(market, blobs, project_id)
    if json_out:
        emit_json([r.to_json() for r in records])
        return
    if not records:
        console.print(f"project {project_id} has no committed round yet")
        return
    print_history(project_id, records)


def model_get(
    project_id: ProjectArg,
    out: Annotated[
        Path | None,
        typer.Option(
            "-o", "--out", help="Where to write the state_dict (default: project-ID-round-N.pt)."
        ),
    ] = None,
    round_: Annotated[
        int | None,
        typer.Option("--round", min=1, help="A committed round (default: the last one)."),
    ] = None,
    aggregator_gateway: AggregatorGateway = None,
    store: StoreDir = None,
    rpc_url: RpcUrl = DEFAULT_URL,
    json_out: JsonOut = False,
) -> None:
    """Download the trained model as a torch state_dict file, checked against the model
    CID the aggregator committed on-chain.

    Example: ledgerlearn model get 1 -o model.pt --store DIR (load it into the
    spec's network: build_model(spec).load_state_dict(torch.load("model.pt")))"""
    from marketplace.views.model import fetch_model

    market, chain = read_market(rpc_url)
    blobs = aggregator_store(chain, aggregator_gateway, store, required=True)
    assert blobs is not None
    got = fetch_model(market, blobs, project_id, round_)
    path = out if out is not None else Path(f"project-{project_id}-round-{got.round}.pt")
    got.save(path)
    if json_out:
        emit_json({"project_id": project_id, "round": got.round, "cid": got.cid, "path": str(path)})
        return
    console.print(
        f"project {project_id} round {got.round} model {got.cid} ({got.num_params} "
        f"parameters, {got.spec.kind}) written to {path}",
        highlight=False,
    )


# ------------------------------------------------------------ node consoles


#: Awaited addresses a console line names (the rest are counted; `project status` lists all).
AWAITED_SHOWN = 5


def wait_line(status: ProjectStatus) -> str:
    """One line saying what a project waits for: counts, awaited addresses, deadline."""
    if status.round is None:
        return f"project {status.project_id}: {status.phase}, waiting for {status.waiting_for}"
    line = f"round {status.round}: waiting for {status.waiting_for}"
    if status.awaited:
        shown = status.awaited[:AWAITED_SHOWN]
        more = len(status.awaited) - len(shown)
        line += f" ({', '.join(shown)}{f' and {more} more' if more else ''})"
    if status.seconds_left is not None:
        line += f"; {status.phase} window closes in {status.seconds_left} s"
    return line


class WaitPrinter:
    """The aggregator's ``on_wait``: prints :func:`wait_line` when what it waits for
    changes (a commitment, an opening, a new phase), not at every poll."""

    def __init__(
        self,
        market: MarketClient,
        project_id: int,
        rule: tuple[str, dict[str, Any]] | None = None,
    ) -> None:
        self.market = market
        self.project_id = project_id
        self.rule = rule  # (name, params): say so once a round's roster is too small
        self.last: tuple[Any, ...] | None = None
        self.warned: set[int] = set()

    def __call__(self) -> None:
        from marketplace.views import project_status

        current = project_status(self.market, self.project_id, settlements=False)
        key = _watch_key(current)
        if key != self.last:
            console.print(wait_line(current), highlight=False, soft_wrap=True)
            self.last = key
        problem = self.roster_problem(current)
        if problem is not None and current.round is not None:
            console.print(f"round {current.round}: {problem}", highlight=False, soft_wrap=True)
            self.warned.add(current.round)

    def roster_problem(self, status: ProjectStatus) -> str | None:
        """At round open (the roster is fixed by the first commitment): the rule's
        minimum, when the roster is below it and this round was not warned about yet."""
        from marketplace.rounds.pinning import too_few_trainers

        fixed = bool(status.committed) or status.phase not in ("commit",)
        if self.rule is None or status.round is None or status.round in self.warned or not fixed:
            return None
        return too_few_trainers(self.rule[0], self.rule[1], len(status.roster))


def feedback_line(record: RoundRecord, index: int) -> str:
    """What round ``record`` gave trainer ``index``: its score and share, or that it was
    left out and why; and the global model's accuracy."""
    accuracy = f"global accuracy {_accuracy(record.accuracy)}"
    if record.scores_void:
        return (
            f"round {record.round}: the aggregator's scores are void ({record.settled_by}); "
            f"claim the round from your own replay; {accuracy}"
        )
    if index in record.scores:
        total = sum(record.scores.values())
        share = f" ({100 * record.scores[index] / total:.1f}% of the round)" if total else ""
        pending = record.settlement is not None and record.settlement.outcome == "pending"
        proposal = " (the aggregator's proposal until the trainers attest)" if pending else ""
        return (
            f"round {record.round}: kept, score {record.scores[index]}{share}{proposal}; {accuracy}"
        )
    if index in record.excluded:
        return f"round {record.round}: {record.excluded[index]}; {accuracy}"
    return f"round {record.round}: no update from you this round; {accuracy}"


class RoundFeedback:
    """A trainer's console: once a round is committed, one :func:`feedback_line` for it
    (from the chain and, for accuracy and reasons, the aggregator's round report)."""

    def __init__(
        self, market: MarketClient, store: ContentStore | None, project_id: int, index: int
    ) -> None:
        self.market, self.store = market, store
        self.project_id, self.index = project_id, index
        self.reported = 0  # rounds told so far

    def __call__(self, committed: int) -> None:
        """Tell every round up to ``committed`` (the project's committed count) not yet told."""
        from marketplace.views import project_history

        if committed <= self.reported:
            return
        wanted = range(self.reported + 1, committed + 1)
        for record in project_history(self.market, self.store, self.project_id, rounds=wanted):
            console.print(feedback_line(record, self.index), highlight=False, soft_wrap=True)
        self.reported = committed


def register(app: typer.Typer, project_app: typer.Typer) -> None:
    """Add ``project list|status|history`` and ``model get``."""
    project_app.command("list")(list_cmd)
    project_app.command("status")(status)
    project_app.command("history")(history)
    model_app = typer.Typer(help="Download a project's trained model.", no_args_is_help=True)
    model_app.command("get")(model_get)
    app.add_typer(model_app, name="model")
