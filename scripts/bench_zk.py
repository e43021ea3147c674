"""Benchmark the verifiable round end to end: circuit size, setup, proving, verification gas.

Usage: ``python scripts/bench_zk.py [--shapes 10x16,20x32,50x32] [--repeats 3] [--home DIR]
[--out benchmarks/results/zk.json]``. For each shape: groth16py keys (cached under
``$LEDGERLEARN_HOME/zk``; a cached setup reports the time it took when it was made), the
prover alone (no self-check), the arkworks verifier, then on the embedded chain a project
with every slot committed and:

All gas figures are receipts' ``gasUsed`` (21,000 intrinsic and calldata included):

* ``verify_gas``: a transaction calling ``Groth16Verifier.verifyProof`` alone (21,000
  intrinsic + calldata + pairing), the figure usually quoted for Groth16 on the EVM;
* ``verify_round_gas``: a transaction calling ``FilterRoundVerifier.verifyRound`` alone
  (two Poseidon hashes + the Groth16 check; the same for every n and d, because the
  commitments were folded as they arrived);
* ``commit_round_gas``: the whole ``commitRound`` with the proof, and without a verifier;
* ``commit_update_gas``: mean ``revealUpdates`` (one opening) per trainer with the verifier
  (the reveal folds the sketch commitment into the round's chain: one Poseidon and one
  storage write, paid by the trainer) and without; the hidden ``commitUpdate`` before it
  costs the same with or without a verifier (``bench_gas.py``).

``--ceremony-shapes`` (default 4x2, the smallest filter circuit) times the multi-party setup
(``zk.ceremony``: owner and three trainers in both phases, the phase-2 preparation, the
import for groth16py, one party's full verification) and reports its file sizes.

snarkjs rows are measured only for ``--snarkjs-shapes``: the phase-2 preparation of the
powers of tau takes 350 s at 2^14, 33 min at 2^16 and 88 min at 2^18 on this machine
(docs/architecture.md); rows not rerun keep the previous run's figures with a ``stale`` note.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

log = logging.getLogger("bench_zk")

ETH = 10**18
STAKE = 10**16
CID = bytes([7]) * 32
INTRINSIC_GAS = 21_000


def _sketches(shape: Any, n: int, seed: int = 0) -> tuple[list[list[int]], list[int]]:
    from zk.field import FIELD_MODULUS

    rng = random.Random(seed)
    span = 1 << (shape.value_bits - 8)
    sketches = [[rng.randint(-span, span) for _ in range(shape.dim)] for _ in range(n)]
    sketches[0] = [max(-(1 << 31), min((1 << 31) - 1, v * 50)) for v in sketches[0]]
    return sketches, [rng.randrange(FIELD_MODULUS) for _ in range(n)]


def _calldata_gas(data: str | bytes) -> int:
    """EIP-2028 calldata cost: 16 gas per non-zero byte, 4 per zero byte."""
    raw = bytes.fromhex(data[2:]) if isinstance(data, str) else data
    return sum(16 if b else 4 for b in raw)


def _tx_gas(sender: Any, call: Any) -> int:
    """Gas used by ``call`` sent as a transaction (receipt, not eth_estimateGas, which
    eth-tester pads), with explicit gas so nothing is estimated."""
    return int(sender.transact(call, gas=3_000_000)["gasUsed"])


def _time(fn: Any, repeats: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def gas_rows(shape: Any, prover: Any) -> dict[str, int]:
    """Deploy everything on a fresh embedded chain and measure the verification gas."""
    from marketplace.chain.artifacts import load_artifact
    from marketplace.chain.connection import connect_embedded
    from marketplace.chain.deploy import deploy_all
    from marketplace.chain.market import MarketClient, mask_to_words
    from marketplace.chain.tx import TxSender
    from marketplace.chain.verifier import deploy_round_verifier
    from zk.sketch import sketch_commitment

    n = shape.n_max
    chain = connect_embedded(accounts=n + 2)
    owner, aggregator = chain.dev_account(0), chain.dev_account(1)
    trainers = [chain.dev_account(i + 2) for i in range(n)]
    manifest = deploy_all(TxSender(chain, owner), save=False)
    market = MarketClient(chain, manifest.address("ContributionMarket"), owner)
    stack = deploy_round_verifier(
        TxSender(chain, owner), market.address, shape, keys_dir=prover.backend.info.keys_dir
    )
    sketches, salts = _sketches(shape, n)
    pids = []
    commit_gas: list[int] = []
    from marketplace.chain.market import ZERO_ADDRESS, Opening

    for verifier in (stack.address, ZERO_ADDRESS):
        pid, _ = market.create_project(
            reward=ETH,
            aggregator=aggregator.address,
            rounds=1,
            round_duration=3600,
            min_stake=STAKE,
            verifier=verifier,
        )
        gas = []
        openings = []
        for i, (t, s, salt) in enumerate(zip(trainers, sketches, salts, strict=True)):
            market.as_account(t).register(pid, STAKE)
            c = sketch_commitment(s, salt, shape.value_bits).to_bytes(32, "big")
            openings.append(Opening(t.address, (i + 1).to_bytes(32, "big"), c, CID))
        for t, o in zip(trainers, openings, strict=True):
            market.as_account(t).commit_update(pid, 1, o.commitment(pid, 1))
        for t, o in zip(trainers, openings, strict=True):  # the verifier folds at reveal
            gas.append(int(market.as_account(t).reveal_updates(pid, 1, [o])["gasUsed"]))
        pids.append(pid)
        commit_gas.append(round(sum(gas) / len(gas)))
    rp = prover.prove_round(pids[0], 1, sketches, salts)
    mask = rp.inlier_mask(n)
    scores = [1] * sum(mask)
    data = rp.to_bytes()
    w3 = chain.w3
    g16 = w3.eth.contract(
        address=w3.to_checksum_address(stack.groth16), abi=load_artifact("Groth16Verifier").abi
    )
    a, b, c = rp.proof.solidity_args()
    sender = TxSender(chain, owner)
    verify_gas = _tx_gas(sender, g16.functions.verifyProof(a, b, c, [rp.statement.public_hash]))
    assert g16.functions.verifyProof(a, b, c, [rp.statement.public_hash]).call()
    frv = w3.eth.contract(
        address=w3.to_checksum_address(stack.address), abi=load_artifact("FilterRoundVerifier").abi
    )
    words = mask_to_words(mask, n)
    committed = mask_to_words([True] * n, n)
    call = frv.functions.verifyRound(pids[0], 1, committed, words, [0] * len(words), data)
    assert call.call({"from": market.address}), "verifyRound rejected an honest round"
    verify_round_gas = _tx_gas(sender, call)
    agg = market.as_account(aggregator)
    with_proof = agg.commit_round(
        pids[0], 1, global_model_cid=CID, inlier_mask=mask, scores=scores, proof=data
    )
    without = agg.commit_round(pids[1], 1, global_model_cid=CID, inlier_mask=mask, scores=scores)
    hasher = w3.eth.contract(
        address=w3.to_checksum_address(stack.poseidon), abi=load_artifact("PoseidonT3").abi
    )
    h_call = hasher.functions.hash(1, 2)
    poseidon_gas = (
        _tx_gas(sender, h_call) - INTRINSIC_GAS - _calldata_gas(h_call._encode_transaction_data())
    )
    return {
        "verify_gas": int(verify_gas),
        "verify_round_gas": int(verify_round_gas),
        "commit_round_gas": int(with_proof["gasUsed"]),
        "commit_round_gas_no_verifier": int(without["gasUsed"]),
        "commit_update_gas": commit_gas[0],
        "commit_update_gas_no_verifier": commit_gas[1],
        "poseidon_gas": int(poseidon_gas),
        "active": n,
    }


def bench(shape: Any, repeats: int) -> dict[str, Any]:
    from zk.onchain import RoundProver
    from zk.witness import build_round

    prover = RoundProver(shape)
    info = prover.backend.info
    sketches, salts = _sketches(shape, shape.n_max)
    inputs, st = build_round(shape, project_id=1, round_index=1, sketches=sketches, salts=salts)
    prove_s, proof = _time(lambda: prover.backend.prove_unchecked(inputs), repeats)
    verify_s, ok = _time(lambda: prover.backend.verify(proof, [st.public_hash]), repeats)
    if not ok:
        raise SystemExit(f"{shape.name}: the proof does not verify")
    row: dict[str, Any] = {
        "backend": "groth16py",
        "n": shape.n_max,
        "d": shape.dim,
        "constraints": info.n_constraints,
        "setup_s": round(info.setup_s, 2),
        "prove_s": round(prove_s, 3),
        "verify_s": round(verify_s, 4),
    }
    row.update(gas_rows(shape, prover))
    return row


def bench_snarkjs(shape: Any, repeats: int) -> dict[str, Any]:
    """The reference backend: powers of tau (cached once), setup, proving, verification in
    snarkjs and py_ecc, and the same on-chain Groth16 check with the snarkjs key."""
    from marketplace.chain.connection import connect_embedded
    from marketplace.chain.deploy import deploy_contract
    from marketplace.chain.tx import TxSender
    from zk.onchain import groth16_constructor_args
    from zk.prover import SnarkjsProver
    from zk.verify_pyecc import PyEccVerifier
    from zk.witness import build_round

    start = time.perf_counter()
    prover = SnarkjsProver(shape)
    first_use_s = time.perf_counter() - start
    sketches, salts = _sketches(shape, shape.n_max)
    inputs, st = build_round(shape, project_id=1, round_index=1, sketches=sketches, salts=salts)
    prove_s, proof = _time(lambda: prover.prove(inputs), repeats)
    verify_s, ok = _time(lambda: prover.verify(proof, [st.public_hash]), repeats)
    vk = prover.verifying_key()
    if not (ok and PyEccVerifier(vk).verify(proof, [st.public_hash])):
        raise SystemExit(f"{shape.name}: the snarkjs proof does not verify")
    chain = connect_embedded(accounts=1)
    sender = TxSender(chain, chain.dev_account(0))
    from marketplace.chain.artifacts import load_artifact

    address = deploy_contract(sender, "Groth16Verifier", *groth16_constructor_args(vk)).address
    g16 = chain.w3.eth.contract(address=address, abi=load_artifact("Groth16Verifier").abi)  # type: ignore[call-overload]
    a, b, c = proof.solidity_args()
    assert g16.functions.verifyProof(a, b, c, [st.public_hash]).call()
    return {
        "backend": "snarkjs",
        "n": shape.n_max,
        "d": shape.dim,
        "constraints": prover.compiled.info.n_constraints,
        "setup_s": round(float(prover.info.setup_s), 2),
        "first_use_s": round(first_use_s, 1),
        "prove_s": round(prove_s, 3),
        "verify_s": round(verify_s, 4),
        "verify_gas": _tx_gas(sender, g16.functions.verifyProof(a, b, c, [st.public_hash])),
        "pyecc_verifies": True,
        "note": "first_use_s includes compiling and any powers-of-tau preparation not cached",
    }


def bench_ceremony(shape: Any, contributors: int, folder: Path) -> dict[str, Any]:
    """The multi-party setup (``zk.ceremony``) of ``shape`` on this machine: the owner and
    ``contributors`` trainers contribute to both phases (all on one machine, one after the
    other, as the CLI would run them on theirs), then one party verifies. Times in seconds,
    sizes in bytes."""
    from zk import ceremony
    from zk.build import build_dir, compile_circuit, prepare_sources

    compiled = compile_circuit(shape)
    power = ceremony.required_power(compiled.info.n_constraints)
    if folder.exists():
        shutil.rmtree(folder)
    names = [f"trainer{i + 1}" for i in range(contributors)]
    start = time.perf_counter()
    state = ceremony.init(folder, compiled.r1cs, "owner", power=power)
    init_s = time.perf_counter() - start
    p1 = [ceremony.contribute(folder, n) for n in names]
    prep = ceremony.prepare(folder)
    p2 = [ceremony.contribute(folder, n) for n in ["owner", *names]]
    main = prepare_sources(shape, build_dir(shape))
    start = time.perf_counter()
    state = ceremony.finalize(folder, main, [main.parent / "circomlib"])
    finalize_s = time.perf_counter() - start
    report = ceremony.verify(folder, compiled.r1cs)
    t = state.timings
    p1_s = [t[f"contribute_p1_{c.index}_s"] for c in p1]
    p2_s = [t[f"contribute_p2_{c.index}_s"] for c in p2]
    size = {
        "phase1_file_bytes": (folder / state.latest(1)).stat().st_size,
        "prepared_ptau_bytes": (folder / ceremony.PREPARED_PTAU).stat().st_size,
        "zkey_bytes": (folder / ceremony.FINAL_ZKEY).stat().st_size,
    }
    return {
        "backend": "ceremony",
        "n": shape.n_max,
        "d": shape.dim,
        "constraints": compiled.info.n_constraints,
        "power": power,
        "contributors": contributors + 1,
        "init_s": round(init_s, 1),
        "phase1_contribute_s": round(sum(p1_s) / len(p1_s), 1),
        "prepare_phase2_s": round(prep.timings["prepare_phase2_s"], 1),
        "groth16_setup_s": round(prep.timings["groth16_setup_s"], 1),
        "phase2_contribute_s": round(sum(p2_s) / len(p2_s), 1),
        "finalize_s": round(finalize_s, 1),
        "verify_s": round(report.verify_s, 1),
        **size,
    }


def main() -> None:
    from zk.shape import CircuitShape

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="10x16,20x32,50x32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--snarkjs-shapes",
        default="",
        help="shapes also measured with snarkjs (e.g. 10x16: its 2^15 ptau prep takes ~15 min "
        "here; rows not measured keep the previous run's figures, marked stale)",
    )
    parser.add_argument(
        "--ceremony-shapes",
        default="4x2",
        help="shapes whose multi-party setup is timed (owner + 3 trainers; '' for none)",
    )
    parser.add_argument("--home", type=Path, help="LEDGERLEARN_HOME for the key cache")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/zk.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if args.home:
        os.environ["LEDGERLEARN_HOME"] = str(args.home)

    def shapes(text: str) -> list[CircuitShape]:
        """``"10x16,20x32"`` -> shapes (n_max x sketch dim)."""
        return [
            CircuitShape(*(int(x) for x in spec.lower().split("x")))
            for spec in filter(None, text.split(","))
        ]

    rows = []
    for shape in shapes(args.shapes):
        rows.append(bench(shape, args.repeats))
        log.info("%s", rows[-1])
    measured = set()
    for shape in shapes(args.snarkjs_shapes):
        rows.append(bench_snarkjs(shape, args.repeats))
        measured.add((shape.n_max, shape.dim))
        log.info("%s", rows[-1])
    for shape in shapes(args.ceremony_shapes):
        home = Path(os.environ.get("LEDGERLEARN_HOME", Path.home() / ".ledgerlearn"))
        rows.append(bench_ceremony(shape, 3, home / "bench-ceremony" / shape.name))
        log.info("%s", rows[-1])
    previous = json.loads(args.out.read_text()) if args.out.is_file() else []
    for old in previous:
        if old.get("backend") == "snarkjs" and old.get("prove_s") is not None:
            if (old["n"], old["d"]) not in measured:
                note = (
                    old.get("stale")
                    or f"not rerun: measured on the circuit of {old['constraints']:,} constraints"
                )
                rows.append({**old, "stale": note})
                measured.add((old["n"], old["d"]))
    for row in list(rows):
        if row["backend"] == "groth16py" and (row["n"], row["d"]) not in measured:
            rows.append(
                {
                    "backend": "snarkjs",
                    "n": row["n"],
                    "d": row["d"],
                    "constraints": row["constraints"],
                    "setup_s": None,
                    "prove_s": None,
                    "verify_s": None,
                    "verify_gas": None,
                    "note": "not measured: its powers-of-tau preparation (2^16 and up) takes "
                    "33-88 min here; pass --snarkjs-shapes to include it",
                }
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    table = Table(title="Verifiable rounds (groth16py prover, embedded EVM gas)")
    cols = ["n", "d", "constraints", "setup_s", "prove_s", "verify_s", "verify_gas"]
    cols += ["verify_round_gas", "commit_round_gas", "commit_round_gas_no_verifier"]
    cols += ["commit_update_gas", "commit_update_gas_no_verifier"]
    for col in cols:
        table.add_column(col, justify="right")
    for row in rows:
        if row["backend"] == "groth16py":
            table.add_row(*(str(row[c]) for c in cols))
    console = Console(width=200)
    console.print(table)
    snark = Table(title="snarkjs (reference backend)")
    snark_cols = cols[:7]  # n, d, constraints, setup_s, prove_s, verify_s, verify_gas
    for col in snark_cols:
        snark.add_column(col, justify="right")
    for row in rows:
        if row["backend"] == "snarkjs":
            snark.add_row(*(str(row.get(c)) for c in snark_cols))
    console.print(snark)
    cer = Table(title="Multi-party setup (owner + 3 trainers, both phases; seconds, bytes)")
    cer_cols = ["n", "d", "constraints", "power", "init_s", "phase1_contribute_s"]
    cer_cols += ["prepare_phase2_s", "groth16_setup_s", "phase2_contribute_s", "finalize_s"]
    cer_cols += ["verify_s", "prepared_ptau_bytes", "zkey_bytes"]
    for col in cer_cols:
        cer.add_column(col, justify="right")
    for row in rows:
        if row["backend"] == "ceremony":
            cer.add_row(*(str(row.get(c)) for c in cer_cols))
    console.print(cer)


if __name__ == "__main__":
    main()
