"""Groth16 provers for the filter circuit: groth16py in-process (default) and snarkjs.

Keys come from :func:`setup`, a SINGLE-PARTY setup: whoever runs it knows the toxic waste
and could forge proofs. It is labelled UNSAFE and fine for development, tests and demos;
real funds need keys from a multi-party ceremony (:mod:`zk.ceremony`, ``ledgerlearn zk
ceremony``), and trainers refuse any other key unless told ``--dev-unsafe-setup``. Keys
are cached in the circuit's build folder (``zk.build``) and loaded, never regenerated, on
later runs: the verifier contract is tied to one key.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from marketplace.errors import ZkError
from marketplace.paths import NODE_MODULES
from zk.build import build_dir, compile_circuit, prepare_sources
from zk.proof import Groth16Proof, VerifyingKeyData
from zk.shape import CircuitShape
from zk.witness import CircuitInputs

log = logging.getLogger(__name__)

UNSAFE_SETUP_NOTICE = (
    "UNSAFE single-party Groth16 setup: the party that ran it can forge proofs; "
    "use `ledgerlearn zk ceremony` keys for real funds"
)


class Prover(Protocol):
    """What the aggregator needs from a Groth16 backend."""

    shape: CircuitShape

    def prove(self, inputs: CircuitInputs) -> Groth16Proof: ...

    def verify(self, proof: Groth16Proof, public_inputs: Sequence[int]) -> bool: ...

    def verifying_key(self) -> VerifyingKeyData: ...


@dataclass(frozen=True)
class SetupInfo:
    """Where a backend's keys are, and what making them cost (read back from the cache)."""

    keys_dir: Path
    backend: str
    n_constraints: int | None
    setup_s: float


def _signal_strings(value: Any) -> Any:
    """circom input JSON wants big numbers as decimal strings."""
    if isinstance(value, list):
        return [_signal_strings(v) for v in value]
    return str(int(value))


def _publish(tmp: Path, final: Path) -> None:
    """Atomically move a finished key folder into place (a concurrent winner is kept)."""
    try:
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- groth16py


def _run_capturing_stdout(fn: Any, *args: Any) -> tuple[Any, str]:
    """Call ``fn`` with file descriptor 1 redirected (the circom crates print to it)."""
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        try:
            result = fn(*args)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        sink.seek(0)
        return result, sink.read().decode(errors="replace")


def _groth16py_setup(shape: CircuitShape, keys_dir: Path) -> tuple[Any, Any]:
    """Compile in-process and set up; returns the fresh ``(pk, vk)`` (also cached on disk)."""
    import groth16py

    main = prepare_sources(shape, keys_dir.parent)
    tmp = Path(tempfile.mkdtemp(prefix="groth16py-", dir=keys_dir.parent))
    log.warning("%s (%s)", UNSAFE_SETUP_NOTICE, shape.name)
    start = time.perf_counter()
    try:
        (pk, vk), output = _run_capturing_stdout(
            groth16py.setup_circom, str(main), [str(main.parent / "circomlib")]
        )
    except groth16py.SetupError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ZkError(f"groth16py setup failed for {shape.name}: {exc}") from exc
    elapsed = time.perf_counter() - start
    found = re.search(r"non-linear constraints:\D*(\d+)", output)
    pk.save(str(tmp / "proving.key"))
    vk.save(str(tmp / "verifying.key"))
    (tmp / "verification_key.json").write_text(vk.to_json())
    meta = {
        "backend": "groth16py",
        "setup_s": elapsed,
        "n_constraints": int(found.group(1)) if found else None,
        "notice": UNSAFE_SETUP_NOTICE,
    }
    (tmp / "setup.json").write_text(json.dumps(meta, indent=1))
    _publish(tmp, keys_dir)
    return pk, vk


def setup(
    shape: CircuitShape, keys_dir: Path | None = None, backend: str = "groth16py"
) -> SetupInfo:
    """Make (once) and cache the keys of ``shape`` for ``backend``. UNSAFE single-party.

    ``keys_dir`` defaults to ``<build folder>/<backend>``; an existing key set is reused.
    """
    if backend not in ("groth16py", "snarkjs"):
        raise ZkError(f"unknown prover backend {backend!r}; use groth16py or snarkjs")
    keys_dir = keys_dir or build_dir(shape) / backend
    keys_dir.parent.mkdir(parents=True, exist_ok=True)
    if not (keys_dir / "setup.json").is_file():
        if backend == "groth16py":
            _groth16py_setup(shape, keys_dir)
        else:
            _snarkjs_setup(shape, keys_dir)
    meta = json.loads((keys_dir / "setup.json").read_text())
    return SetupInfo(keys_dir, backend, meta.get("n_constraints"), float(meta["setup_s"]))


class Groth16pyProver:
    """In-process prover (arkworks via groth16py): witness by wasmi, no Node.js needed."""

    def __init__(self, shape: CircuitShape, keys_dir: Path | None = None) -> None:
        import groth16py

        self.shape = shape
        folder = keys_dir or build_dir(shape) / "groth16py"
        fresh = None
        if not (folder / "setup.json").is_file():
            folder.parent.mkdir(parents=True, exist_ok=True)
            fresh = _groth16py_setup(shape, folder)
        self.info = setup(shape, folder, "groth16py")
        start = time.perf_counter()
        if fresh is not None:  # just made: no need to read 10+ MB back from disk
            self._pk, self._vk = fresh
        else:
            self._pk = groth16py.ProvingKey.load(str(folder / "proving.key"))
            self._vk = groth16py.VerifyingKey.load(str(folder / "verifying.key"))
        self._verifier = groth16py.Verifier(self._vk)
        self.load_s = time.perf_counter() - start

    def prove(self, inputs: CircuitInputs) -> Groth16Proof:
        """Compute the witness and a proof; raise :class:`ZkError` if the witness fails."""
        import groth16py

        try:
            blob = groth16py.prove(self._pk, dict(inputs))
        except (groth16py.WitnessError, groth16py.EncodingError) as exc:
            raise ZkError(f"witness does not satisfy {self.shape.name}: {exc}") from exc
        proof = Groth16Proof.from_bytes(blob)
        # groth16py's wasmi witness does not stop at a failed `===`: an unsatisfied witness
        # yields a proof that does not verify. Check it, so a bad round fails here, closed.
        if not self.verify(proof, [int(inputs["publicHash"])]):  # type: ignore[call-overload]
            raise ZkError(
                f"witness does not satisfy {self.shape.name}: the proof does not verify; "
                "check the sketches, commitments and public values of the round"
            )
        return proof

    def prove_unchecked(self, inputs: CircuitInputs) -> Groth16Proof:
        """A proof without the self-check of :meth:`prove`: for timing the prover alone and
        for tests that need the (invalid) proof of a forged witness. Never ship its output
        without verifying it."""
        import groth16py

        try:
            return Groth16Proof.from_bytes(groth16py.prove(self._pk, dict(inputs)))
        except (groth16py.WitnessError, groth16py.EncodingError) as exc:
            raise ZkError(f"witness does not satisfy {self.shape.name}: {exc}") from exc

    def verify(self, proof: Groth16Proof, public_inputs: Sequence[int]) -> bool:
        import groth16py

        try:
            return bool(self._verifier.verify(proof.to_bytes(), list(public_inputs)))
        except (groth16py.VerificationError, groth16py.EncodingError, OverflowError):
            return False

    def verifying_key(self) -> VerifyingKeyData:
        return VerifyingKeyData.from_snarkjs(self._vk.to_json())

    def solidity_verifier(self, contract_name: str = "FilterVerifier") -> str:
        """Solidity source of a verifier for this key (see :mod:`zk.solidity`)."""
        from zk.solidity import solidity_verifier

        return solidity_verifier(self._vk.to_json(), contract_name)


# --------------------------------------------------------------------------- snarkjs


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise ZkError("node is not on PATH; install Node.js 20 or use the groth16py backend")
    return node


def _snarkjs(*args: str, cwd: Path) -> str:
    cli = NODE_MODULES / "snarkjs" / "build" / "cli.cjs"
    if not cli.is_file():
        raise ZkError("snarkjs is not installed; run `make setup` (npm ci) first")
    proc = subprocess.run(
        [_node(), str(cli), *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0 or "ERROR" in proc.stdout:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-2:]
        raise ZkError(f"snarkjs {args[0]} {args[1] if len(args) > 1 else ''} failed: {tail}")
    return proc.stdout


def ptau_path(power: int) -> Path:
    """The cached, phase-2-prepared powers of tau of size ``2^power`` (made once; slow)."""
    from marketplace.paths import ledgerlearn_home

    folder = ledgerlearn_home() / "zk" / "ptau"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"pot{power}_final.ptau"
    if final.is_file():
        return final
    for larger in sorted(folder.glob("pot*_final.ptau")):
        if int(larger.name[3:].split("_")[0]) >= power:
            return larger  # a larger prepared ptau serves a smaller circuit
    log.warning("preparing powers of tau 2^%d: minutes to an hour (docs/architecture.md)", power)
    work = Path(tempfile.mkdtemp(prefix="ptau-", dir=folder))
    _snarkjs("powersoftau", "new", "bn128", str(power), "pot_0.ptau", cwd=work)
    _snarkjs(
        "powersoftau", "contribute", "pot_0.ptau", "pot_1.ptau", "-e=ledgerlearn dev", cwd=work
    )
    _snarkjs("powersoftau", "prepare", "phase2", "pot_1.ptau", "final.ptau", cwd=work)
    os.replace(work / "final.ptau", final)
    shutil.rmtree(work, ignore_errors=True)
    return final


def _snarkjs_setup(shape: CircuitShape, keys_dir: Path) -> None:
    compiled = compile_circuit(shape)
    n = compiled.info.n_constraints + compiled.info.n_public_inputs + 1
    power = max(8, (n - 1).bit_length())
    ptau = ptau_path(power)
    tmp = Path(tempfile.mkdtemp(prefix="snarkjs-", dir=keys_dir.parent))
    log.warning("%s (%s, snarkjs)", UNSAFE_SETUP_NOTICE, shape.name)
    start = time.perf_counter()
    _snarkjs("groth16", "setup", str(compiled.r1cs), str(ptau), "c0.zkey", cwd=tmp)
    _snarkjs("zkey", "contribute", "c0.zkey", "circuit.zkey", "-e=ledgerlearn dev", cwd=tmp)
    _snarkjs("zkey", "export", "verificationkey", "circuit.zkey", "verification_key.json", cwd=tmp)
    (tmp / "c0.zkey").unlink()
    meta = {
        "backend": "snarkjs",
        "setup_s": time.perf_counter() - start,
        "n_constraints": compiled.info.n_constraints,
        "ptau": str(ptau),
        "notice": UNSAFE_SETUP_NOTICE,
    }
    (tmp / "setup.json").write_text(json.dumps(meta, indent=1))
    _publish(tmp, keys_dir)


def snarkjs_verify(vk_json: str, proof: Groth16Proof, public_inputs: Sequence[int]) -> bool:
    """``snarkjs groth16 verify`` with a verifying key in snarkjs JSON (either backend's
    ``verification_key.json``): the reference check that proofs from either prover pass."""
    with tempfile.TemporaryDirectory(prefix="snarkjs-verify-") as tmp:
        work = Path(tmp)
        (work / "vk.json").write_text(vk_json)
        (work / "proof.json").write_text(json.dumps(proof.to_snarkjs()))
        (work / "public.json").write_text(json.dumps([str(x) for x in public_inputs]))
        try:
            out = _snarkjs("groth16", "verify", "vk.json", "public.json", "proof.json", cwd=work)
        except ZkError:
            return False
        return "OK" in out


class SnarkjsProver:
    """Reference prover: circom2's WASM witness and ``snarkjs groth16 prove`` under Node."""

    def __init__(self, shape: CircuitShape, keys_dir: Path | None = None) -> None:
        self.shape = shape
        self.compiled = compile_circuit(shape)
        self.info = setup(shape, keys_dir, "snarkjs")
        self._vk_json = (self.info.keys_dir / "verification_key.json").read_text()

    def prove(self, inputs: CircuitInputs) -> Groth16Proof:
        with tempfile.TemporaryDirectory(prefix="snarkjs-prove-") as tmp:
            work = Path(tmp)
            (work / "input.json").write_text(
                json.dumps({k: _signal_strings(v) for k, v in inputs.items()})
            )
            proc = subprocess.run(
                [
                    _node(),
                    str(self.compiled.witness_js),
                    str(self.compiled.wasm),
                    "input.json",
                    "w",
                ],
                cwd=work,
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise ZkError(f"witness does not satisfy {self.shape.name}: {proc.stderr[-300:]}")
            zkey = str(self.info.keys_dir / "circuit.zkey")
            _snarkjs("groth16", "prove", zkey, "w", "proof.json", "public.json", cwd=work)
            return Groth16Proof.from_snarkjs((work / "proof.json").read_text())

    def verify(self, proof: Groth16Proof, public_inputs: Sequence[int]) -> bool:
        return snarkjs_verify(self._vk_json, proof, public_inputs)

    def verifying_key(self) -> VerifyingKeyData:
        return VerifyingKeyData.from_snarkjs(self._vk_json)


def make_prover(shape: CircuitShape, backend: str = "groth16py") -> Prover:
    """The prover for ``backend`` (``groth16py`` default, or ``snarkjs``)."""
    if backend == "groth16py":
        return Groth16pyProver(shape)
    if backend == "snarkjs":
        return SnarkjsProver(shape)
    raise ZkError(f"unknown prover backend {backend!r}; use groth16py or snarkjs")
