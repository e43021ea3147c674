"""Benchmark the filter circuit with groth16py: constraints, setup, prove, verify.

Usage: ``python scripts/bench_zk_core.py [--shapes 10x16,20x32,50x32] [--value-bits 32]
[--home DIR]``. Keys are set up once per circuit and cached under ``$LEDGERLEARN_HOME/zk``
(``--home`` points elsewhere, e.g. a scratch folder, to time a fresh setup); a cached setup
reports the time it took when it was made. Prints a table; the goal is proving in <= 2 s
for n = 20, d = 32 on a 2-core machine.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import time

from zk.field import FIELD_MODULUS
from zk.shape import CircuitShape
from zk.witness import build_round

log = logging.getLogger("bench_zk_core")


def bench(shape: CircuitShape, repeats: int) -> dict[str, float | int | None]:
    from zk.prover import Groth16pyProver
    from zk.verify_pyecc import PyEccVerifier

    start = time.perf_counter()
    prover = Groth16pyProver(shape)
    ready_s = time.perf_counter() - start
    rng = random.Random(0)
    n = shape.n_max - max(1, shape.n_max // 10)
    span = 1 << (shape.value_bits - 8)
    sketches = [[rng.randint(-span, span) for _ in range(shape.dim)] for _ in range(n)]
    sketches[0] = [v * 50 for v in sketches[0]]
    salts = [rng.randrange(FIELD_MODULUS) for _ in sketches]
    inputs, st = build_round(shape, project_id=1, round_index=1, sketches=sketches, salts=salts)
    prove_times = []
    for _ in range(repeats):
        t = time.perf_counter()
        proof = prover.prove(inputs)
        prove_times.append(time.perf_counter() - t)
    t = time.perf_counter()
    ok = prover.verify(proof, [st.public_hash])
    verify_s = time.perf_counter() - t
    verifier = PyEccVerifier(prover.verifying_key())
    t = time.perf_counter()
    ok_py = verifier.verify(proof, [st.public_hash])
    pyecc_s = time.perf_counter() - t
    if not (ok and ok_py):
        raise SystemExit(f"{shape.name}: a valid proof did not verify")
    return {
        "constraints": prover.info.n_constraints,
        "setup_s": prover.info.setup_s,
        "ready_s": ready_s,
        "prove_s": min(prove_times),
        "verify_s": verify_s,
        "pyecc_s": pyecc_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="10x16,20x32,50x32")
    parser.add_argument("--value-bits", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--home", default=None, help="LEDGERLEARN_HOME for the key cache")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.home:
        os.environ["LEDGERLEARN_HOME"] = args.home
    header = f"{'n':>4} {'d':>4} {'constraints':>11} {'setup_s':>8} {'load_s':>7} "
    header += f"{'prove_s':>8} {'verify_s':>9} {'pyecc_s':>8}"
    rows = [header]
    for spec in args.shapes.split(","):
        n, d = (int(x) for x in spec.lower().split("x"))
        r = bench(CircuitShape(n, d, args.value_bits), args.repeats)
        rows.append(
            f"{n:>4} {d:>4} {r['constraints'] or 0:>11} {r['setup_s']:>8.2f} {r['ready_s']:>7.2f} "
            f"{r['prove_s']:>8.2f} {r['verify_s']:>9.4f} {r['pyecc_s']:>8.2f}"
        )
        log.info(rows[-1])
    log.info("\n%s", "\n".join(rows))


if __name__ == "__main__":
    main()
