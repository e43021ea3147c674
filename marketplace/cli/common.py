"""What every command shares: chain options, output (rich or --json), amounts.

Nothing here may import web3, eth_account or torch at module level: every command
module imports this one, and ``ledgerlearn --help`` must not pay for them (the chain
layer is imported inside :func:`open_session`).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from marketplace.chain.constants import DEFAULT_RPC_URL
from marketplace.chain.units import format_eth as format_eth
from marketplace.chain.units import parse_amount as parse_amount

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from marketplace.chain.connection import Chain
    from marketplace.chain.deploy import Manifest
    from marketplace.chain.market import MarketClient
    from marketplace.chain.registry import RegistryClient

console = Console()
err_console = Console(stderr=True)

RpcUrl = Annotated[
    str,
    typer.Option(
        "--rpc-url",
        envvar="LEDGERLEARN_RPC_URL",
        help="JSON-RPC URL of the node, or 'embedded' for a throwaway in-process chain.",
    ),
]
Key = Annotated[
    str | None,
    typer.Option(
        "--key",
        envvar="LEDGERLEARN_KEY",
        help="Hex private key of the signing account (or set LEDGERLEARN_KEY).",
        show_default=False,
    ),
]
AccountIndex = Annotated[
    int | None,
    typer.Option("--account", help="Dev account index on a local node (anvil), instead of --key."),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
#: The project a command acts on: always the first positional argument
#: (``ledgerlearn trainer register 1 --account 2``), never an option.
ProjectId = Annotated[int, typer.Argument(metavar="PROJECT_ID", help="Project id.", min=1)]

DEFAULT_URL = DEFAULT_RPC_URL

# Default ports, each overridable from the environment so that the README's commands run
# verbatim side by side (tests/e2e/test_readme_walkthrough.py gives each run free ports).
NODE_PORT_ENV = "LEDGERLEARN_NODE_PORT"
DEFAULT_NODE_PORT = 8545
AGGREGATOR_PORT_ENV = "LEDGERLEARN_AGGREGATOR_PORT"
DEFAULT_AGGREGATOR_PORT = 8600
AGGREGATOR_GATEWAY_ENV = "LEDGERLEARN_AGGREGATOR_GATEWAY"
DEFAULT_AGGREGATOR_GATEWAY = f"http://127.0.0.1:{DEFAULT_AGGREGATOR_PORT}"


@dataclass
class Session:
    """A connected chain, the signing account and the deployed contracts' clients."""

    chain: Chain
    account: LocalAccount
    manifest: Manifest

    @functools.cached_property
    def market(self) -> MarketClient:
        from marketplace.chain.market import MarketClient

        return MarketClient(self.chain, self.manifest.address("ContributionMarket"), self.account)

    @functools.cached_property
    def registry(self) -> RegistryClient:
        from marketplace.chain.registry import RegistryClient

        return RegistryClient(self.chain, self.manifest.address("SourceRegistry"), self.account)


def open_session(rpc_url: str, key: str | None, account: int | None) -> Session:
    """Connect, resolve the signer and load the deployment manifest (checked on-chain)."""
    from marketplace.chain.accounts import resolve_account
    from marketplace.chain.connection import connect
    from marketplace.chain.deploy import load_manifest

    chain = connect(rpc_url)
    return Session(chain, resolve_account(chain, key, account), load_manifest(chain))


def emit_json(data: Any) -> None:
    """Print JSON (bytes as 0x-hex) for scripts."""

    def default(obj: Any) -> Any:
        if isinstance(obj, bytes):
            return "0x" + obj.hex()
        return str(obj)

    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=default))
