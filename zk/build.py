"""Circuit sources, content-addressed build folders, and circom2 compilation.

Everything derived from a circuit (our copy of circomlib, the ``main`` file, the R1CS and
witness WASM, the keys) lives under ``$LEDGERLEARN_HOME/zk/<circuit-hash>/``, where the hash
covers the template source, the instantiation and the circomlib version: a changed circuit
gets a new folder, an unchanged one is never rebuilt and its keys are never set up again.
circom2 is run with ``--O2`` (the default ``--O1`` leaves thousands of linear constraints)
and ``-l`` pointing to our copy of circomlib (circom2 cannot read it from node_modules;
docs/architecture.md, zero-knowledge facts).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import struct
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from marketplace.errors import ZkError
from marketplace.paths import NODE_MODULES, ledgerlearn_home
from zk.circomlib import circomlib_source_dir, copy_circomlib
from zk.shape import CircuitShape

log = logging.getLogger(__name__)

CIRCUITS_DIR = Path(__file__).resolve().parent / "circuits"
TEMPLATE = CIRCUITS_DIR / "filter.circom"
#: The three instantiations we ship and benchmark: (n_max, dim).
STANDARD_SHAPES = (CircuitShape(10, 16), CircuitShape(20, 32), CircuitShape(50, 32))


def main_source(shape: CircuitShape) -> str:
    """The ``main`` component of one instantiation (``publicHash`` its only public input)."""
    return (
        "pragma circom 2.1.0;\n"
        'include "filter.circom";\n'
        "component main {public [publicHash]} = "
        f"SketchFilter({shape.n_max}, {shape.dim}, {shape.value_bits});\n"
    )


def circuit_hash(shape: CircuitShape) -> str:
    """Content hash of what determines the constraint system (first 16 hex digits)."""
    h = hashlib.sha256()
    h.update(TEMPLATE.read_bytes())
    h.update(main_source(shape).encode())
    for name in ("poseidon.circom", "poseidon_constants.circom", "comparators.circom"):
        h.update((circomlib_source_dir() / name).read_bytes())
    return h.hexdigest()[:16]


def build_dir(shape: CircuitShape, root: Path | None = None) -> Path:
    """``<root>/<name>-<hash>``; root defaults to ``$LEDGERLEARN_HOME/zk``."""
    base = root if root is not None else ledgerlearn_home() / "zk"
    return base / f"{shape.name}-{circuit_hash(shape)}"


def prepare_sources(shape: CircuitShape, folder: Path) -> Path:
    """Write the template, the main file and our circomlib copy; return the main path."""
    folder.mkdir(parents=True, exist_ok=True)
    copy_circomlib(folder)
    shutil.copyfile(TEMPLATE, folder / "filter.circom")
    main = folder / f"{shape.name}.circom"
    main.write_text(main_source(shape))
    return main


@dataclass(frozen=True)
class R1csInfo:
    """Header of an ``.r1cs`` file (iden3 binary format, section 1)."""

    n_wires: int
    n_public_outputs: int
    n_public_inputs: int
    n_private_inputs: int
    n_constraints: int


def read_r1cs_info(path: Path) -> R1csInfo:
    """Parse the header section of an iden3 ``.r1cs`` file."""
    data = path.read_bytes()
    if data[:4] != b"r1cs":
        raise ZkError(f"{path} is not an .r1cs file; rebuild the circuit")
    (n_sections,) = struct.unpack_from("<I", data, 8)
    pos = 12
    for _ in range(n_sections):
        kind, size = struct.unpack_from("<IQ", data, pos)
        pos += 12
        if kind == 1:
            (n8,) = struct.unpack_from("<I", data, pos)
            off = pos + 4 + n8
            wires, pub_out, pub_in, prv_in, _labels, constraints = struct.unpack_from(
                "<IIIIQI", data, off
            )
            return R1csInfo(wires, pub_out, pub_in, prv_in, constraints)
        pos += size
    raise ZkError(f"{path} has no header section; rebuild the circuit")


@dataclass(frozen=True)
class CompiledCircuit:
    """circom2 outputs of one instantiation."""

    folder: Path
    r1cs: Path
    wasm: Path
    witness_js: Path
    info: R1csInfo
    compile_s: float


def circom2_binary() -> Path:
    binary = NODE_MODULES / ".bin" / "circom2"
    if not binary.exists():
        raise ZkError("circom2 is not installed; run `make setup` (npm ci) first")
    return binary


def compile_circuit(shape: CircuitShape, root: Path | None = None) -> CompiledCircuit:
    """Compile with circom2 (``--r1cs --wasm --O2``) once; later calls read the cache."""
    folder = build_dir(shape, root)
    out = folder / "circom2"
    meta = out / "build.json"
    if not meta.is_file():
        main = prepare_sources(shape, folder)
        tmp = Path(tempfile.mkdtemp(prefix="circom2-", dir=folder))
        cmd = [str(circom2_binary()), main.name, "--r1cs", "--wasm", "--O2", "-l", "circomlib"]
        cmd += ["-o", str(tmp)]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise ZkError(f"circom2 failed on {main.name}: {' | '.join(tail)}")
        (tmp / "build.json").write_text(json.dumps({"compile_s": elapsed}))
        try:
            os.rename(tmp, out)
        except OSError:  # a concurrent build won the race; use its result
            shutil.rmtree(tmp, ignore_errors=True)
    compile_s = float(json.loads(meta.read_text())["compile_s"])
    js = out / f"{shape.name}_js"
    r1cs = out / f"{shape.name}.r1cs"
    info = read_r1cs_info(r1cs)
    log.info("%s: %d constraints, compiled in %.1f s", shape.name, info.n_constraints, compile_s)
    return CompiledCircuit(
        folder, r1cs, js / f"{shape.name}.wasm", js / "generate_witness.js", info, compile_s
    )


def build_summary(compiled: CompiledCircuit) -> dict[str, object]:
    """A JSON-able summary (for reports and the CLI)."""
    return {
        "folder": str(compiled.folder),
        "compile_s": compiled.compile_s,
        **asdict(compiled.info),
    }
