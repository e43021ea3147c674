"""Chain commands: ``node``, ``deploy``, ``contracts build``."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from marketplace.cli.common import (
    DEFAULT_NODE_PORT,
    DEFAULT_URL,
    NODE_PORT_ENV,
    AccountIndex,
    JsonOut,
    Key,
    RpcUrl,
    console,
    emit_json,
    format_eth,
    parse_amount,
)
from marketplace.errors import ConfigError
from marketplace.paths import CONTRACT_BUILD

contracts_app = typer.Typer(help="Build the Solidity contracts.", no_args_is_help=True)


def node(
    port: Annotated[
        int, typer.Option(envvar=NODE_PORT_ENV, help="Port on 127.0.0.1.")
    ] = DEFAULT_NODE_PORT,
    state: Annotated[
        Path | None,
        typer.Option(help="Load the chain from FILE if it exists and save it there on exit."),
    ] = None,
) -> None:
    """Start a local Ethereum node (anvil) on 127.0.0.1; Ctrl-C stops it cleanly.

    The command replaces itself with anvil (exec), so Ctrl-C or SIGTERM reach anvil
    directly: it saves ``--state`` and exits, and no orphaned node can outlive us.
    """
    from marketplace.chain.node import anvil_command, port_in_use

    if port_in_use(port):
        raise ConfigError(f"port {port} on 127.0.0.1 is already in use: pass another --port")
    cmd = anvil_command(port, state)
    console.print(
        f"starting anvil on [bold]http://127.0.0.1:{port}[/] (chain id 31337); Ctrl-C to stop"
        + (f"; chain state kept in {state}" if state else "")
    )
    sys.stdout.flush()
    os.execv(cmd[0], cmd)


def deploy(
    source_stake: Annotated[
        str,
        typer.Option(help="Stake each dRAG source registers with (the price of a Sybil source)."),
    ] = "0.01",
    wait: Annotated[
        float,
        typer.Option(
            min=0.0, help="Seconds to wait for the node to answer (one just started with &)."
        ),
    ] = 0.0,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Deploy even if this chain has a live deployment; the new one becomes "
            "active and the old manifest is kept beside it.",
        ),
    ] = False,
    rpc_url: RpcUrl = DEFAULT_URL,
    key: Key = None,
    account: AccountIndex = None,
    json_out: JsonOut = False,
) -> None:
    """Deploy the LedgerLearn contracts and save the deployment manifest.

    The manifest is kept per chain id and genesis hash: a second deploy on the same
    chain is refused without --force, and a restarted node's new chain is never
    mistaken for the old one."""
    from marketplace.chain.accounts import resolve_account
    from marketplace.chain.connection import connect
    from marketplace.chain.deploy import deploy_all, manifest_path
    from marketplace.chain.tx import TxSender

    stake = parse_amount(source_stake, "source stake")
    if wait and rpc_url != "embedded":
        from marketplace.chain.node import wait_for_rpc

        wait_for_rpc(rpc_url, timeout=wait)
    chain = connect(rpc_url)
    sender = TxSender(chain, resolve_account(chain, key, account))
    manifest = deploy_all(sender, source_stake=stake, force=force)
    if json_out:
        emit_json(
            {
                "chain_id": manifest.chain_id,
                "genesis_hash": manifest.genesis_hash,
                "deployer": manifest.deployer,
                "source_stake": stake,
                "contracts": {k: vars(v) for k, v in manifest.contracts.items()},
                "manifest": None if chain.embedded else str(manifest_path(chain)),
            }
        )
        return
    for name, c in manifest.contracts.items():
        console.print(
            f"{name} deployed at [bold]{c.address}[/] (block {c.block}, gas {c.gas_used})"
        )
    console.print(f"dRAG sources register with a stake of {format_eth(stake)}")
    if not chain.embedded:
        console.print(f"manifest: {manifest_path(chain)}")


@contracts_app.command("build")
def contracts_build(
    check: Annotated[
        bool, typer.Option(help="Do not write; fail if committed artifacts are stale.")
    ] = False,
) -> None:
    """Compile contracts/src with the pinned solc-js into contracts/build."""
    from marketplace.chain.compile import build

    if not check:
        for path in build():
            console.print(f"wrote {path}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        fresh = build(Path(tmp))
        stale = [
            p.name
            for p in fresh
            if not (CONTRACT_BUILD / p.name).exists()
            or (CONTRACT_BUILD / p.name).read_bytes() != p.read_bytes()
        ]
    if stale:
        console.print(
            f"[red]stale artifacts:[/] {', '.join(stale)}: run `ledgerlearn contracts build`"
        )
        raise typer.Exit(1)
    console.print("artifacts are up to date")


def register(app: typer.Typer) -> None:
    app.command()(node)
    app.command()(deploy)
    app.add_typer(contracts_app, name="contracts")
