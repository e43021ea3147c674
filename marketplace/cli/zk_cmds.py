"""Zero-knowledge commands: ``zk setup``, ``zk deploy-verifier``, ``zk verify``.

``setup`` makes (once) the cached Groth16 keys of a filter-circuit shape; they come from a
single-party setup and are labelled UNSAFE (docs/zk.md explains how to import ceremony
keys). ``deploy-verifier`` puts the verifier stack for a shape and a rule on-chain and
prints the address ``project create --verifier`` takes. ``verify`` re-checks a committed
round off-chain with py_ecc, from the proof in its ``commitRound`` transaction.
"""

from __future__ import annotations

from typing import Annotated

import typer

from marketplace.cli.common import (
    DEFAULT_URL,
    AccountIndex,
    JsonOut,
    Key,
    ProjectId,
    RpcUrl,
    console,
    emit_json,
    open_session,
)
from marketplace.errors import ConfigError

zk_app = typer.Typer(
    help="Groth16 proofs of the robust filter: keys, verifier contracts, audits.",
    no_args_is_help=True,
)

Shape = Annotated[
    str, typer.Option("--shape", help="Circuit shape NxD: trainer slots x sketch dimensions.")
]


def parse_shape(text: str) -> tuple[int, int]:
    """``'20x32'`` -> ``(20, 32)``."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ConfigError(f"invalid shape {text!r}: use NxD, e.g. 20x32 (slots x sketch dims)")
    return int(parts[0]), int(parts[1])


def parse_rule(text: str) -> tuple[int, int]:
    """``'2/1'`` -> ``(2, 1)``: inlier iff den * distance <= num * median distance."""
    parts = text.split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ConfigError(f"invalid rule {text!r}: use NUM/DEN, e.g. 2/1 (within 2x the median)")
    return int(parts[0]), int(parts[1])


@zk_app.command("setup")
def setup_cmd(
    shape: Shape = "20x32",
    backend: Annotated[str, typer.Option(help="groth16py (default) or snarkjs.")] = "groth16py",
    json_out: JsonOut = False,
) -> None:
    """Make (once) and cache the circuit's Groth16 keys. UNSAFE single-party setup."""
    from zk.prover import UNSAFE_SETUP_NOTICE, setup
    from zk.shape import CircuitShape

    n, d = parse_shape(shape)
    circuit = CircuitShape(n, d)
    info = setup(circuit, backend=backend)
    vk = info.keys_dir / "verification_key.json"
    if json_out:
        emit_json(
            {
                "shape": circuit.name,
                "keys_dir": str(info.keys_dir),
                "verifying_key": str(vk),
                "constraints": info.n_constraints,
                "setup_s": info.setup_s,
                "notice": UNSAFE_SETUP_NOTICE,
            }
        )
        return
    console.print(f"[bold]{circuit.name}[/]: {info.n_constraints} constraints ({backend})")
    console.print(f"keys:          {info.keys_dir}")
    console.print(f"verifying key: {vk}")
    console.print(f"setup took {info.setup_s:.1f} s (cached; never redone for this circuit)")
    console.print(f"[bold yellow]{UNSAFE_SETUP_NOTICE}[/]")


@zk_app.command("deploy-verifier")
def deploy_verifier_cmd(
    shape: Shape = "20x32",
    rule: Annotated[
        str, typer.Option(help="NUM/DEN: inlier iff den * distance <= num * median distance.")
    ] = "2/1",
    rpc_url: RpcUrl = DEFAULT_URL,
    key: Key = None,
    account: AccountIndex = None,
    json_out: JsonOut = False,
) -> None:
    """Deploy the round verifier for the market; pass its address to `project create`."""
    from marketplace.chain.tx import TxSender
    from zk.filter_rule import FilterRule
    from zk.onchain import deploy_round_verifier
    from zk.shape import CircuitShape

    n, d = parse_shape(shape)
    num, den = parse_rule(rule)
    session = open_session(rpc_url, key, account)
    stack = deploy_round_verifier(
        TxSender(session.chain, session.account),
        session.market.address,
        CircuitShape(n, d),
        FilterRule(num, den),
    )
    if json_out:
        emit_json(
            {
                "verifier": stack.address,
                "groth16": stack.groth16,
                "poseidon": stack.poseidon,
                "shape": stack.shape.name,
                "rule": f"{num}/{den}",
                "gas_used": stack.gas_used,
            }
        )
        return
    console.print(f"round verifier: [bold]{stack.address}[/]")
    console.print(f"  Groth16 key {stack.groth16}, Poseidon {stack.poseidon}")
    console.print(f"  {stack.shape.name}, rule {num}/{den}, {stack.gas_used} gas")
    console.print(f"use it with: ledgerlearn project create ... --verifier {stack.address}")


@zk_app.command("verify")
def verify_cmd(
    project: ProjectId,
    round_: Annotated[int, typer.Option("--round", "-r", help="Round number.", min=1)],
    rpc_url: RpcUrl = DEFAULT_URL,
    json_out: JsonOut = False,
) -> None:
    """Re-verify a committed round's proof off-chain (py_ecc); exit 1 when it fails."""
    from marketplace.chain.connection import connect
    from marketplace.chain.deploy import load_manifest
    from marketplace.chain.market import MarketClient
    from zk.onchain import audit_round

    chain = connect(rpc_url)
    market = MarketClient(chain, load_manifest(chain).address("ContributionMarket"))
    result = audit_round(market, project, round_)
    if json_out:
        emit_json(
            {
                "project": result.project_id,
                "round": result.round_index,
                "ok": result.ok,
                "reason": result.reason,
                "public_hash": result.public_hash,
                "inliers": result.inliers,
                "tx": result.tx_hash,
            }
        )
    elif result.ok:
        console.print(
            f"[green]ok[/] project {project} round {round_}: {result.reason} "
            f"({result.inliers} inliers, tx {result.tx_hash})"
        )
    else:
        console.print(f"[bold red]FAILED[/] project {project} round {round_}: {result.reason}")
    if not result.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``zk`` command group to the ``ledgerlearn`` app."""
    app.add_typer(zk_app, name="zk")
