"""A multi-party Groth16 setup (snarkjs powers of tau + phase 2), so no one holds the trapdoor.

Whoever knows a Groth16 key's secrets can prove anything: with phase-1 secrets (tau, alpha,
beta) alone, the ``1/delta`` multiples in the key give a forgery, and so with delta. The
ceremony of Bowe, Gabizon and Miers ("Scalable multi-party computation for zk-SNARK
parameters in the random beacon model", 2017), as snarkjs implements it, makes each secret
the product of every contributor's share: the key is sound if ONE contributor in each phase
was honest and forgot its share. Phases and who runs what (files travel between parties as
plain files in one folder; every step reads the latest file and writes the next):

1. ``init`` (the owner): ``powersoftau new`` at ``2^power`` and the owner's contribution,
   or the import of a published phase-1 file (e.g. a public perpetual powers of tau);
2. ``contribute`` (each prospective trainer, the aggregator, anyone): one more phase-1
   share (``powersoftau contribute``);
3. ``prepare`` (anyone; deterministic, so anyone can check it): ``powersoftau prepare
   phase2`` and ``groth16 setup`` of the circuit's R1CS: the circuit's first key;
4. ``contribute`` again, now to phase 2 (``zkey contribute``);
5. ``finalize`` (anyone): export the verifying key, import the key for the in-process
   prover (groth16py) and record the verifying key's hash;
6. ``verify`` (every party, before it stakes): ``powersoftau verify`` (every phase-1
   contribution and the preparation) and ``zkey verify`` (every phase-2 contribution, and
   that the key is this circuit's from this phase-1 file), against an R1CS the party
   compiled itself; each of the party's own contributions (recorded on its machine when it
   made them) must be in the final files. The verified key's hash is recorded locally, and
   the pre-stake check (:func:`marketplace.chain.verifier.check_verifier_setup`) accepts a
   verifier only with a key this machine verified.

Contributions add entropy from the OS (snarkjs mixes ``-e`` with ``crypto.randomBytes``);
the share itself lives only in the snarkjs process and is gone when it exits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from marketplace.errors import ZkError
from marketplace.paths import NODE_MODULES, ledgerlearn_home
from zk.proof import VerifyingKeyData

log = logging.getLogger(__name__)

STATE_FILE = "ceremony.json"
R1CS_FILE = "circuit.r1cs"
PREPARED_PTAU = "phase1_final.ptau"
FINAL_ZKEY = "final.zkey"
VK_FILE = "verification_key.json"
KEYS_DIR = "keys"
#: Smallest and largest powers of tau a ceremony may use (2^28 is snarkjs's ceiling).
MIN_POWER, MAX_POWER = 4, 28
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_HASH = re.compile(r"((?:[0-9a-f]{8}\s+){15}[0-9a-f]{8})")
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


@dataclass(frozen=True)
class Contribution:
    """One share: phase (1 or 2), position in its phase, contributor's name and hash."""

    phase: int
    index: int
    name: str
    hash: str


@dataclass
class CeremonyState:
    """``ceremony.json``: what the folder holds and which step comes next."""

    ceremony_id: str
    r1cs_sha256: str
    power: int
    phase: int  # 1: phase-1 contributions, 2: phase-2 contributions, 3: finalized
    phase1_imported: bool = False
    contributions: list[Contribution] = field(default_factory=list)
    vk_sha256: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    circuit: str = ""  # what the R1CS is, for people and the CLI (e.g. "4x2x32")

    def latest(self, phase: int) -> str:
        """File name of the newest file of ``phase``."""
        count = sum(1 for c in self.contributions if c.phase == phase)
        if phase == 1:
            return (
                f"phase1_{count:04d}.ptau"
                if not self.phase1_imported
                else (f"phase1_imported_{count:04d}.ptau")
            )
        return f"phase2_{count:04d}.zkey"

    @classmethod
    def load(cls, folder: Path) -> CeremonyState:
        path = folder / STATE_FILE
        if not path.is_file():
            raise ZkError(
                f"{folder} holds no ceremony; start one with `ledgerlearn zk ceremony init`"
            )
        raw = json.loads(path.read_text())
        raw["contributions"] = [Contribution(**c) for c in raw["contributions"]]
        return cls(**raw)

    def save(self, folder: Path) -> None:
        tmp = folder / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        tmp.replace(folder / STATE_FILE)


# --------------------------------------------------------------------------- snarkjs


def snarkjs(*args: str, cwd: Path) -> str:
    """Run the pinned snarkjs CLI; its stdout without colour codes, or :class:`ZkError`."""
    cli = NODE_MODULES / "snarkjs" / "build" / "cli.cjs"
    node = shutil.which("node")
    if node is None or not cli.is_file():
        raise ZkError("snarkjs needs Node.js and `npm ci` (node_modules/snarkjs); run make setup")
    proc = subprocess.run(
        [node, str(cli), *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    out = _ANSI.sub("", proc.stdout + proc.stderr)
    if proc.returncode != 0 or "[ERROR]" in out:
        tail = " | ".join(out.strip().splitlines()[-2:])
        raise ZkError(f"snarkjs {' '.join(args[:2])} failed: {tail}")
    return out


def _hashes(text: str) -> list[str]:
    """Every 64-byte hash snarkjs printed (as 16 groups of 8 hex digits), in order."""
    return ["".join(m.split()) for m in _HASH.findall(text)]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def vk_sha256(vk: VerifyingKeyData) -> str:
    """Hash of a verifying key as the chain holds it: sha256 of its words in
    ``Groth16Verifier``'s constructor order (G2 as (c1, c0)), ``verifyingKey()``'s words."""
    words = [*vk.alpha]
    for (x0, x1), (y0, y1) in (vk.beta, vk.gamma, vk.delta):
        words += [x1, x0, y1, y0]
    for point in vk.ic:
        words += [*point]
    return hashlib.sha256(b"".join(int(w).to_bytes(32, "big") for w in words)).hexdigest()


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ZkError(f"contributor name {name!r}: use 1-64 letters, digits, _ . @ -")
    return name


def required_power(n_constraints: int, n_public: int = 1) -> int:
    """The smallest power of tau whose domain fits the circuit (``groth16 setup`` needs
    ``2^power > constraints + public inputs``)."""
    return max(MIN_POWER, (n_constraints + n_public).bit_length())


# --------------------------------------------------------------------------- steps


def init(
    folder: Path,
    r1cs: Path,
    name: str,
    *,
    power: int,
    ptau: Path | None = None,
    entropy: str | None = None,
    circuit: str = "",
) -> CeremonyState:
    """Start a ceremony for ``r1cs`` in the empty ``folder``: phase 1 at ``2^power`` with
    ``name``'s contribution, or (``ptau``) an imported phase-1 file to contribute on."""
    if (folder / STATE_FILE).exists():
        raise ZkError(f"{folder} already holds a ceremony; use another folder")
    if not MIN_POWER <= power <= MAX_POWER:
        raise ZkError(f"power {power} is not in {MIN_POWER}..{MAX_POWER}")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(r1cs, folder / R1CS_FILE)
    start = time.perf_counter()
    if ptau is None:
        snarkjs("powersoftau", "new", "bn128", str(power), "phase1_0000.ptau", cwd=folder)
        first = folder / "phase1_0000.ptau"
    else:
        first = folder / "phase1_imported_0000.ptau"
        shutil.copyfile(ptau, first)
        snarkjs("powersoftau", "verify", first.name, cwd=folder)  # a valid transcript
    # `powersoftau new` is deterministic: a nonce keeps two ceremonies of one circuit apart
    # (each party's record of its shares is keyed by this id)
    nonce = secrets.token_hex(16)
    cid = hashlib.sha256(f"{_sha256(folder / R1CS_FILE)}:{_sha256(first)}:{nonce}".encode())
    cid_hex = cid.hexdigest()
    state = CeremonyState(cid_hex[:16], _sha256(folder / R1CS_FILE), power, 1, ptau is not None)
    state.circuit = circuit
    state.timings["init_s"] = time.perf_counter() - start
    state.save(folder)
    contribute(folder, name, entropy=entropy)
    return CeremonyState.load(folder)


def contribute(folder: Path, name: str, *, entropy: str | None = None) -> Contribution:
    """Add ``name``'s share to the current phase and record its hash on this machine."""
    _check_name(name)
    state = CeremonyState.load(folder)
    if state.phase not in (1, 2):
        raise ZkError("the ceremony is finalized; start a new one to contribute")
    phase = state.phase
    old = state.latest(phase)
    index = sum(1 for c in state.contributions if c.phase == phase) + 1
    entropy = entropy or secrets.token_hex(32)
    start = time.perf_counter()
    if phase == 1:
        state.contributions.append(Contribution(1, index, name, ""))
        new = state.latest(1)
        out = snarkjs(
            "powersoftau", "contribute", old, new, f"-name={name}", f"-e={entropy}", cwd=folder
        )
        marker = "Contribution Response Hash"
    else:
        state.contributions.append(Contribution(2, index, name, ""))
        new = state.latest(2)
        out = snarkjs("zkey", "contribute", old, new, f"-name={name}", f"-e={entropy}", cwd=folder)
        marker = "Contribution Hash"
    found = _hashes(out[out.find(marker) :]) if marker in out else []
    if not found:
        (folder / new).unlink(missing_ok=True)
        raise ZkError(f"snarkjs printed no contribution hash for {name}; contribute again")
    made = Contribution(phase, index, name, found[0])
    state.contributions[-1] = made
    state.timings[f"contribute_p{phase}_{index}_s"] = time.perf_counter() - start
    state.save(folder)
    _remember("contributions", state.ceremony_id, asdict(made))
    log.info(
        "%s contributed to phase %d of ceremony %s: %s", name, phase, state.ceremony_id, made.hash
    )
    return made


def prepare(folder: Path) -> CeremonyState:
    """Close phase 1 (``prepare phase2``, deterministic) and make the circuit's first key."""
    state = CeremonyState.load(folder)
    if state.phase != 1:
        raise ZkError("phase 1 is already closed")
    start = time.perf_counter()
    snarkjs("powersoftau", "prepare", "phase2", state.latest(1), PREPARED_PTAU, cwd=folder)
    state.timings["prepare_phase2_s"] = time.perf_counter() - start
    start = time.perf_counter()
    snarkjs("groth16", "setup", R1CS_FILE, PREPARED_PTAU, state.latest(2), cwd=folder)
    state.timings["groth16_setup_s"] = time.perf_counter() - start
    state.phase = 2
    state.save(folder)
    return state


def finalize(
    folder: Path, circom_main: Path | None = None, link_libraries: list[Path] | None = None
) -> CeremonyState:
    """Close phase 2: ``final.zkey``, its verifying key and hash; with ``circom_main`` (the
    circuit's source) also a groth16py key folder ``keys/`` for the in-process prover."""
    state = CeremonyState.load(folder)
    if state.phase != 2:
        raise ZkError("finalize runs once, after phase 2's contributions (run prepare first)")
    if not any(c.phase == 2 for c in state.contributions):
        raise ZkError("phase 2 has no contribution yet: its key would be anyone's to forge with")
    shutil.copyfile(folder / state.latest(2), folder / FINAL_ZKEY)
    snarkjs("zkey", "export", "verificationkey", FINAL_ZKEY, VK_FILE, cwd=folder)
    vk = VerifyingKeyData.from_snarkjs((folder / VK_FILE).read_text())
    state.vk_sha256 = vk_sha256(vk)
    if circom_main is not None:
        start = time.perf_counter()
        _import_keys(folder, circom_main, link_libraries or [], vk)
        state.timings["import_keys_s"] = time.perf_counter() - start
    state.phase = 3
    state.save(folder)
    return state


def _import_keys(folder: Path, circom_main: Path, libs: list[Path], vk: VerifyingKeyData) -> None:
    """``keys/`` as :class:`zk.prover.Groth16pyProver` loads it, from the ceremony's key."""
    import groth16py

    from zk.prover import _run_capturing_stdout

    keys = folder / KEYS_DIR
    keys.mkdir(exist_ok=True)
    (pk, gvk), _ = _run_capturing_stdout(
        groth16py.import_zkey, str(folder / FINAL_ZKEY), str(circom_main), [str(p) for p in libs]
    )
    if VerifyingKeyData.from_snarkjs(gvk.to_json()) != vk:
        raise ZkError("groth16py imported another verifying key than snarkjs exported")
    pk.save(str(keys / "proving.key"))
    gvk.save(str(keys / "verifying.key"))
    shutil.copyfile(folder / VK_FILE, keys / VK_FILE)
    meta = {"backend": "ceremony", "setup_s": 0.0, "n_constraints": None, "ceremony": str(folder)}
    (keys / "setup.json").write_text(json.dumps(meta, indent=1))


@dataclass(frozen=True)
class CeremonyReport:
    """What ``verify`` established."""

    ceremony_id: str
    vk_sha256: str
    phase1: list[str]
    phase2: list[str]
    own: list[Contribution]
    verify_s: float


def verify(folder: Path, r1cs: Path) -> CeremonyReport:
    """Check the whole ceremony against ``r1cs`` (compiled by the caller), and that every
    contribution this machine made to it is in the final files; record the key as verified.
    """
    state = CeremonyState.load(folder)
    if state.phase != 3 or state.vk_sha256 is None:
        raise ZkError("the ceremony is not finalized yet; verify after `zk ceremony finalize`")
    if _sha256(r1cs) != state.r1cs_sha256 or _sha256(folder / R1CS_FILE) != state.r1cs_sha256:
        raise ZkError(
            "the ceremony's circuit is not the one compiled here: its key proves another "
            "statement; do not use it"
        )
    start = time.perf_counter()
    p1 = snarkjs("powersoftau", "verify", PREPARED_PTAU, cwd=folder)
    if "Powers of Tau Ok!" not in p1:
        raise ZkError("the phase-1 file does not verify; do not use this ceremony's key")
    p2 = snarkjs("zkey", "verify", str(r1cs.resolve()), PREPARED_PTAU, FINAL_ZKEY, cwd=folder)
    if "ZKey Ok!" not in p2:
        raise ZkError("the final key does not verify against the circuit and phase 1")
    exported = folder / "verify_vk.json"
    snarkjs("zkey", "export", "verificationkey", FINAL_ZKEY, exported.name, cwd=folder)
    vk = VerifyingKeyData.from_snarkjs(exported.read_text())
    exported.unlink()
    if vk_sha256(vk) != state.vk_sha256:
        raise ZkError("ceremony.json names another verifying key than the final key's")
    if VerifyingKeyData.from_snarkjs((folder / VK_FILE).read_text()) != vk:
        raise ZkError(f"{VK_FILE} is not the final key's verifying key")
    keys_vk = folder / KEYS_DIR / VK_FILE
    if keys_vk.is_file() and VerifyingKeyData.from_snarkjs(keys_vk.read_text()) != vk:
        raise ZkError(f"{KEYS_DIR}/ holds another key than the ceremony's final key")
    own = [Contribution(**c) for c in _recalled("contributions", state.ceremony_id)]
    text = {1: "".join(p1.split()), 2: "".join(p2.split())}
    for c in own:
        if c.hash not in text[c.phase]:
            raise ZkError(
                f"your phase-{c.phase} contribution {c.hash[:16]}... ({c.name}) is not in the "
                "final files: someone dropped it; do not use this key"
            )
    report = CeremonyReport(
        state.ceremony_id,
        state.vk_sha256,
        _contributors(p1, r"Contribution #\d+: (\S+)"),
        _contributors(p2, r"contribution #\d+ (\S+):"),
        own,
        time.perf_counter() - start,
    )
    _remember(
        "verified",
        state.vk_sha256,
        {"ceremony": state.ceremony_id, "folder": str(folder.resolve()), "own": len(own)},
    )
    return report


def _contributors(text: str, pattern: str) -> list[str]:
    return sorted(set(re.findall(pattern, text)))


# --------------------------------------------------------------------------- local records


def _records_path() -> Path:
    folder = ledgerlearn_home() / "zk"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "ceremonies.json"


def _load_records() -> dict[str, Any]:
    path = _records_path()
    return json.loads(path.read_text()) if path.is_file() else {}


def _remember(kind: str, key: str, value: dict[str, Any]) -> None:
    """Append ``value`` under ``kind/key`` in this machine's ceremony record."""
    records = _load_records()
    entries = records.setdefault(kind, {}).setdefault(key, [])
    if value not in entries:
        entries.append(value)
    tmp = _records_path().with_suffix(".tmp")
    tmp.write_text(json.dumps(records, indent=1))
    tmp.replace(_records_path())


def _recalled(kind: str, key: str) -> list[dict[str, Any]]:
    return list(_load_records().get(kind, {}).get(key, []))


def verified_setup(vk_hash: str) -> dict[str, Any] | None:
    """This machine's record of a ceremony it verified whose final key hashes to ``vk_hash``."""
    found = _recalled("verified", vk_hash)
    return found[-1] if found else None
