"""``ledgerlearn audit``: replay a project's rounds and compare them with the chain.

Exit codes (a script tells the verdicts apart):

- 0: every committed round replays to the committed mask, global model CID and scores;
- 1: a mismatch (the JSON output says which), or an error (one line on stderr);
- 3: no mismatch, but some updates are sealed to the project's readers and no
  ``--reader-key`` opens them ("cannot verify N updates: encrypted");
- 4: no mismatch, but some blobs (updates, round reports) are in neither the
  aggregator's store nor the trainers' gateways ("cannot verify: N blobs unavailable"):
  missing data is not evidence against the aggregator, so it is never reported as a
  mismatch. An honest aggregator keeps every blob a commitment refers to and serves it,
  so a project stays auditable after its trainers have gone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from marketplace.cli.common import DEFAULT_URL, JsonOut, ProjectId, RpcUrl, console, emit_json
from marketplace.storage import ContentStore

#: Exit code of an audit that found a mismatch.
EXIT_MISMATCH = 1
#: Exit code of an audit that found no mismatch but could not open sealed updates.
EXIT_ENCRYPTED = 3
#: Exit code of an audit that found no mismatch but could not fetch some blobs.
EXIT_UNAVAILABLE = 4


def _mark(value: bool | None) -> str:
    return "-" if value is None else ("[green]ok[/]" if value else "[bold red]MISMATCH[/]")


def audit(
    project: ProjectId,
    validation: Annotated[
        Path | None,
        typer.Option(
            help="The owner's validation data (CSV or NPZ); without it scores go unchecked."
        ),
    ] = None,
    aggregator_gateway: Annotated[
        str | None,
        typer.Option(help="URL of the aggregator's gateway (round reports, models, spec)."),
    ] = None,
    store: Annotated[
        Path | None,
        typer.Option(
            help="A local content-store directory holding the reports, models and updates "
            "(instead of fetching from gateways)."
        ),
    ] = None,
    reader_key: Annotated[
        str | None,
        typer.Option(
            envvar="LEDGERLEARN_READER_KEY",
            help="A reader's private X25519 key (hex; `aggregator reader-key` prints it) "
            "to open updates sealed to the project's readers.",
            show_default=False,
        ),
    ] = None,
    allow_private_endpoints: Annotated[
        bool,
        typer.Option(
            "--allow-private-endpoints",
            help="Fetch gateways on loopback or private addresses even on a public chain.",
        ),
    ] = False,
    rpc_url: RpcUrl = DEFAULT_URL,
    json_out: JsonOut = False,
) -> None:
    """Replay every round from on-chain CIDs; report mask, model and score mismatches."""
    from marketplace.audit import audit_project
    from marketplace.chain.connection import connect
    from marketplace.chain.deploy import load_manifest
    from marketplace.chain.market import MarketClient
    from marketplace.errors import ConfigError, StorageError
    from marketplace.learning import load_local
    from marketplace.nodes.aggregator import GatewayResolver
    from marketplace.privacy.keys import ReaderKey
    from marketplace.rounds.codec import get_spec
    from marketplace.rounds.validate import UNAVAILABLE_KINDS, storage_kind
    from marketplace.storage import GatewayReader, LocalStore, cid_from_digest

    reader = None if reader_key is None else ReaderKey.from_hex(reader_key)
    if (aggregator_gateway is None) == (store is None):
        raise ConfigError("pass exactly one of --aggregator-gateway URL or --store DIR")
    chain = connect(rpc_url)
    manifest = load_manifest(chain)
    market = MarketClient(chain, manifest.address("ContributionMarket"))
    blobs: ContentStore
    resolver: Callable[[str], ContentStore | None]
    if store is not None:
        if not store.is_dir():
            raise ConfigError(f"{store}: no such content-store directory")
        local = blobs = LocalStore(store)

        def from_local(_: str) -> ContentStore | None:
            return local

        resolver = from_local
    else:
        assert aggregator_gateway is not None
        allow_private = chain.development or allow_private_endpoints
        blobs = GatewayReader(
            aggregator_gateway, allow_private=allow_private, what="--aggregator-gateway"
        )
        resolver = GatewayResolver(market, project, allow_private=allow_private)
    info = market.project(project)
    spec_cid = cid_from_digest(info.model_spec_cid)
    try:
        spec = get_spec(blobs, spec_cid)
    except StorageError as exc:
        if storage_kind(exc) not in UNAVAILABLE_KINDS:
            raise
        note = f"cannot verify: 1 blobs unavailable (the model spec {spec_cid}: {exc})"
        if json_out:
            emit_json({"project_id": project, "ok": True, "unavailable": 1, "notes": [note]})
        else:
            console.print(f"project {project}: {note}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_UNAVAILABLE) from None
    data = None if validation is None else load_local(validation, num_classes=spec.num_classes)
    report = audit_project(
        market,
        project,
        blobs,
        resolver,
        data,
        start_block=manifest.contracts["ContributionMarket"].block,
        reader=reader,
    )
    if json_out:
        emit_json(report.to_dict())
    else:
        table = Table(title=f"audit of project {project}")
        for col in ("round", "mask", "rejected", "model", "scores", "report"):
            table.add_column(col)
        for r in report.rounds:
            c = r.checks
            table.add_row(
                str(r.round),
                *(_mark(c.get(k)) for k in ("mask", "rejected", "model", "scores", "report")),
            )
        console.print(table)
        for r in report.rounds:
            for problem in r.problems:
                console.print(f"round {r.round}: {problem}", highlight=False)
        for note in report.notes:
            console.print(f"note: {note}", highlight=False)
        verdict = "[green]all rounds replay exactly[/]" if report.ok else "[red]MISMATCH[/]"
        if report.ok and report.unavailable:
            verdict = f"[yellow]cannot verify: {report.unavailable} blobs unavailable[/]"
        elif report.ok and report.encrypted:
            verdict = f"[yellow]cannot verify {report.encrypted} updates: encrypted[/]"
        console.print(f"project {project}: {verdict}")
    if not report.ok:
        raise typer.Exit(EXIT_MISMATCH)
    if report.unavailable:
        raise typer.Exit(EXIT_UNAVAILABLE)
    if report.encrypted:
        raise typer.Exit(EXIT_ENCRYPTED)


def register(app: typer.Typer) -> None:
    """Add ``audit`` to the ``ledgerlearn`` app."""
    app.command("audit")(audit)
