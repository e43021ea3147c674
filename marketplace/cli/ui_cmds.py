"""``ledgerlearn ui``: serve the read-only dashboard on 127.0.0.1."""

from __future__ import annotations

from typing import Annotated

import typer

from marketplace.cli.common import DEFAULT_URL, RpcUrl, console


def ui(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.", min=1, max=65535)] = 8780,
    store: Annotated[
        str | None,
        typer.Option(
            help="Content store with the aggregators' round reports (accuracy, reasons): "
            "local:DIR or the aggregator's gateway http://HOST:PORT. Without it the "
            "dashboard shows what the chain alone says.",
        ),
    ] = None,
    refresh: Annotated[
        int, typer.Option(help="Reload pages every N seconds (0: never).", min=0)
    ] = 15,
    rpc_url: RpcUrl = DEFAULT_URL,
) -> None:
    """Serve a read-only dashboard of projects, rounds and dRAG sources on 127.0.0.1."""
    from pathlib import Path

    from marketplace.chain.connection import connect
    from marketplace.chain.deploy import load_manifest
    from marketplace.errors import ConfigError
    from marketplace.storage import open_store
    from marketplace.ui.app import HOST, bind, reader_for, serve_socket

    if store is not None and store.startswith("local:") and not Path(store[6:]).is_dir():
        raise ConfigError(  # opening it would create it: the dashboard writes nothing
            f"{store[6:]}: no such content-store directory; pass the aggregator's --data-dir"
        )
    sock = bind(port)  # before connecting: a port in use fails at once
    chain = connect(rpc_url)
    reader = reader_for(chain, load_manifest(chain), None if store is None else open_store(store))
    console.print(
        f"dashboard on [bold]http://{HOST}:{port}/[/] (chain {chain.chain_id} at {rpc_url}); "
        "Ctrl-C to stop",
        highlight=False,
    )
    serve_socket(reader, sock, refresh)


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)
