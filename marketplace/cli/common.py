"""What every command shares: chain options, output (rich or --json), amounts."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer
from eth_account.signers.local import LocalAccount
from rich.console import Console

from marketplace.chain.accounts import resolve_account
from marketplace.chain.connection import DEFAULT_RPC_URL, Chain, connect
from marketplace.chain.deploy import Manifest, load_manifest
from marketplace.chain.market import MarketClient
from marketplace.chain.registry import RegistryClient
from marketplace.errors import ConfigError

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
ProjectId = Annotated[int, typer.Option("--project", "-p", help="Project id.", min=1)]

DEFAULT_URL = DEFAULT_RPC_URL

# Default ports, each overridable from the environment so that the README's commands run
# verbatim side by side (tests/e2e/test_readme_walkthrough.py gives each run free ports).
NODE_PORT_ENV = "LEDGERLEARN_NODE_PORT"
DEFAULT_NODE_PORT = 8545
AGGREGATOR_PORT_ENV = "LEDGERLEARN_AGGREGATOR_PORT"
DEFAULT_AGGREGATOR_PORT = 8600
AGGREGATOR_GATEWAY_ENV = "LEDGERLEARN_AGGREGATOR_GATEWAY"
DEFAULT_AGGREGATOR_GATEWAY = f"http://127.0.0.1:{DEFAULT_AGGREGATOR_PORT}"

_UNITS = {"eth": 10**18, "ether": 10**18, "gwei": 10**9, "wei": 1}


def parse_amount(text: str, what: str = "amount") -> int:
    """Parse '1.5' (ETH), '2eth', '10gwei' or '1000wei' into wei."""
    raw = text.strip().lower().replace("_", "")
    unit = 10**18
    for suffix, factor in _UNITS.items():
        if raw.endswith(suffix):
            raw, unit = raw[: -len(suffix)].strip(), factor
            break
    try:
        value = Decimal(raw) * unit
    except InvalidOperation as exc:
        raise ConfigError(f"invalid {what} {text!r}: use e.g. 1.5, 2eth, 10gwei, 1000wei") from exc
    if value < 0 or value != value.to_integral_value():
        raise ConfigError(f"invalid {what} {text!r}: must be a whole, non-negative number of wei")
    return int(value)


def format_eth(wei: int) -> str:
    return f"{Decimal(wei) / Decimal(10**18):f} ETH"


@dataclass
class Session:
    """A connected chain, the signing account and the deployed contracts' clients."""

    chain: Chain
    account: LocalAccount
    manifest: Manifest

    @functools.cached_property
    def market(self) -> MarketClient:
        return MarketClient(self.chain, self.manifest.address("ContributionMarket"), self.account)

    @functools.cached_property
    def registry(self) -> RegistryClient:
        return RegistryClient(self.chain, self.manifest.address("SourceRegistry"), self.account)


def open_session(rpc_url: str, key: str | None, account: int | None) -> Session:
    """Connect, resolve the signer and load the deployment manifest (checked on-chain)."""
    chain = connect(rpc_url)
    return Session(chain, resolve_account(chain, key, account), load_manifest(chain))


def emit_json(data: Any) -> None:
    """Print JSON (bytes as 0x-hex) for scripts."""

    def default(obj: Any) -> Any:
        if isinstance(obj, bytes):
            return "0x" + obj.hex()
        return str(obj)

    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=default))
