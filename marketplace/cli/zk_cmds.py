"""Zero-knowledge commands: ``zk setup``, ``zk ceremony``, ``zk deploy-verifier``, ``zk verify``.

``setup`` makes (once) the cached Groth16 keys of a filter-circuit shape; they come from a
single-party setup and are labelled UNSAFE (development: trainers refuse them without
``--dev-unsafe-setup``). ``ceremony init|contribute|prepare|finalize|verify`` runs the
multi-party setup (:mod:`zk.ceremony`) whose keys trainers accept. ``deploy-verifier``
puts the verifier stack for a shape, a rule and a key on-chain and prints the address
``project create --verifier`` takes. ``verify`` re-checks a committed
round off-chain with py_ecc, from the proof in its ``commitRound`` transaction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
    """Make (once) and cache the circuit's Groth16 keys. UNSAFE single-party setup, for
    development: use `zk ceremony` for real funds."""
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
    keys: Annotated[
        Path | None,
        typer.Option(help="Keys folder (a ceremony's DIR/keys); default: the `zk setup` keys."),
    ] = None,
    rpc_url: RpcUrl = DEFAULT_URL,
    key: Key = None,
    account: AccountIndex = None,
    json_out: JsonOut = False,
) -> None:
    """Deploy the round verifier for the market; pass its address to `project create`."""
    from marketplace.chain.tx import TxSender
    from marketplace.chain.verifier import deploy_round_verifier
    from zk.filter_rule import FilterRule
    from zk.shape import CircuitShape

    n, d = parse_shape(shape)
    num, den = parse_rule(rule)
    session = open_session(rpc_url, key, account)
    stack = deploy_round_verifier(
        TxSender(session.chain, session.account),
        session.market.address,
        CircuitShape(n, d),
        FilterRule(num, den),
        keys_dir=keys,
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
    from marketplace.chain.verifier import audit_round

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


# --------------------------------------------------------------------------- ceremony

ceremony_app = typer.Typer(
    help="Multi-party Groth16 setup (snarkjs): no single party holds the trapdoor.",
    no_args_is_help=True,
)
zk_app.add_typer(ceremony_app, name="ceremony")

CeremonyDir = Annotated[
    Path, typer.Option("--dir", help="The ceremony folder the parties pass around.")
]
Name = Annotated[str, typer.Option("--name", help="Your name in the transcript.")]


def _shape_of(folder: Path, shape: str | None) -> Any:
    """The circuit shape: ``--shape`` or the one the ceremony records."""
    from zk.ceremony import CeremonyState
    from zk.shape import CircuitShape

    text = shape or CeremonyState.load(folder).circuit
    if not text:
        raise ConfigError("pass --shape NxD: the ceremony folder does not name its circuit")
    parts = text.lower().split("x")
    n, d = parse_shape("x".join(parts[:2]))
    return CircuitShape(n, d, int(parts[2]) if len(parts) > 2 else 32)


def _print_state(state: Any, json_out: bool, **extra: Any) -> None:
    from dataclasses import asdict

    if json_out:
        emit_json({**asdict(state), **extra})
        return
    phase = {1: "phase 1 (powers of tau)", 2: "phase 2 (circuit key)", 3: "finalized"}
    console.print(
        f"ceremony {state.ceremony_id} ({state.circuit or 'circuit'}, 2^{state.power}): "
        f"{phase[state.phase]}, {len(state.contributions)} contributions"
    )
    for key, value in extra.items():
        console.print(f"  {key}: {value}")


@ceremony_app.command("init")
def ceremony_init(
    folder: CeremonyDir,
    name: Name = "owner",
    shape: Annotated[str, typer.Option("--shape", help="Filter circuit NxD.")] = "20x32",
    power: Annotated[
        int | None, typer.Option(help="Powers of tau 2^power (default: the smallest that fits).")
    ] = None,
    ptau: Annotated[
        Path | None,
        typer.Option(help="Import a published phase-1 file instead of starting phase 1."),
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """Start a ceremony for a filter circuit, with your (the owner's) first contribution."""
    from zk import ceremony
    from zk.build import compile_circuit

    circuit = _shape_of(folder, shape)
    compiled = compile_circuit(circuit)
    need = ceremony.required_power(compiled.info.n_constraints)
    if power is not None and power < need:
        raise ConfigError(f"--power {power} is too small for {circuit.name}: use {need} or more")
    state = ceremony.init(
        folder,
        compiled.r1cs,
        name,
        power=power or need,
        ptau=ptau,
        circuit=f"{circuit.n_max}x{circuit.dim}x{circuit.value_bits}",
    )
    _print_state(state, json_out, contribution=state.contributions[-1].hash)


@ceremony_app.command("contribute")
def ceremony_contribute(folder: CeremonyDir, name: Name, json_out: JsonOut = False) -> None:
    """Add your share to the ceremony's current phase (entropy from the OS); your machine
    records its hash so that `verify` can check it is in the final key."""
    from dataclasses import asdict

    from zk import ceremony

    made = ceremony.contribute(folder, name)
    if json_out:
        emit_json(asdict(made))
        return
    console.print(f"{name}: phase-{made.phase} contribution #{made.index} {made.hash}")


@ceremony_app.command("prepare")
def ceremony_prepare(folder: CeremonyDir, json_out: JsonOut = False) -> None:
    """Close phase 1 (deterministic `prepare phase2`) and make the circuit's first key."""
    from zk import ceremony

    _print_state(ceremony.prepare(folder), json_out)


@ceremony_app.command("finalize")
def ceremony_finalize(
    folder: CeremonyDir,
    shape: Annotated[str | None, typer.Option("--shape", help="Filter circuit NxD.")] = None,
    json_out: JsonOut = False,
) -> None:
    """Close phase 2: the final key, its verifying key and hash, and keys/ for the prover
    (`zk deploy-verifier --keys DIR/keys`, aggregator `--zk-keys DIR/keys`)."""
    from zk import ceremony
    from zk.build import build_dir, prepare_sources

    circuit = _shape_of(folder, shape)
    main = prepare_sources(circuit, build_dir(circuit))
    state = ceremony.finalize(folder, main, [main.parent / "circomlib"])
    _print_state(state, json_out, vk_sha256=state.vk_sha256, keys=str(folder / ceremony.KEYS_DIR))


@ceremony_app.command("verify")
def ceremony_verify(
    folder: CeremonyDir,
    shape: Annotated[str | None, typer.Option("--shape", help="Filter circuit NxD.")] = None,
    json_out: JsonOut = False,
) -> None:
    """Verify the whole ceremony against the circuit compiled here and find your own
    contributions in it; on success this machine accepts its key before staking."""
    from dataclasses import asdict

    from zk import ceremony
    from zk.build import compile_circuit

    circuit = _shape_of(folder, shape)
    report = ceremony.verify(folder, compile_circuit(circuit).r1cs)
    if json_out:
        emit_json(asdict(report))
        return
    console.print(f"[green]ok[/] ceremony {report.ceremony_id}: key sha256 {report.vk_sha256}")
    console.print(f"  phase 1: {', '.join(report.phase1)}; phase 2: {', '.join(report.phase2)}")
    console.print(f"  your contributions found: {len(report.own)} ({report.verify_s:.1f} s)")
