"""The multi-party setup's logic on a three-constraint circuit at 2^4 (seconds, not the
minutes a filter circuit's phase-1 preparation takes; tests/e2e/test_zk_ceremony_cli.py runs
the real thing across processes).

Each party has its own LEDGERLEARN_HOME (its own record of what it contributed), as on
separate machines; files travel through one ceremony folder. One ceremony is run per module
and copied by each test that changes it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from marketplace.errors import ZkError
from marketplace.paths import NODE_MODULES
from zk import ceremony
from zk.proof import VerifyingKeyData

TINY = Path(__file__).parent / "data" / "tiny.circom"


@pytest.fixture(scope="module")
def r1cs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    subprocess.run(
        [str(NODE_MODULES / ".bin" / "circom2"), str(TINY), "--r1cs", "-o", str(out)],
        check=True,
        capture_output=True,
    )
    return out / "tiny.r1cs"


class Parties:
    """Switch LEDGERLEARN_HOME to act as one party or another."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root, self.mp = root, monkeypatch

    def be(self, name: str) -> str:
        self.mp.setenv("LEDGERLEARN_HOME", str(self.root / name))
        return name


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, r1cs: Path) -> tuple[Path, Path]:
    """Owner and alice in phase 1, bob and alice in phase 2."""
    root = tmp_path_factory.mktemp("ceremony")
    with pytest.MonkeyPatch.context() as mp:
        parties = Parties(root / "homes", mp)
        folder = root / "c"
        ceremony.init(folder, r1cs, parties.be("owner"), power=4)
        ceremony.contribute(folder, parties.be("alice"))
        ceremony.prepare(folder)
        ceremony.contribute(folder, parties.be("bob"))
        ceremony.contribute(folder, parties.be("alice"))
        ceremony.finalize(folder)
    return folder, root / "homes"


@pytest.fixture
def copy(
    tmp_path: Path, finished: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Parties]:
    folder, homes = finished
    shutil.copytree(folder, tmp_path / "c")
    shutil.copytree(homes, tmp_path / "homes")
    return tmp_path / "c", Parties(tmp_path / "homes", monkeypatch)


def test_every_party_finds_its_shares_in_the_verified_key(
    copy: tuple[Path, Parties], r1cs: Path
) -> None:
    folder, parties = copy
    state = ceremony.CeremonyState.load(folder)
    assert state.phase == 3 and state.vk_sha256
    assert [(c.phase, c.name) for c in state.contributions] == [
        (1, "owner"),
        (1, "alice"),
        (2, "bob"),
        (2, "alice"),
    ]
    for name, own in (("owner", 1), ("alice", 2), ("bob", 1)):
        parties.be(name)
        assert ceremony.verified_setup(state.vk_sha256) is None
        report = ceremony.verify(folder, r1cs)
        assert report.vk_sha256 == state.vk_sha256
        assert report.phase1 == ["alice", "owner"] and report.phase2 == ["alice", "bob"]
        assert len(report.own) == own
        assert ceremony.verified_setup(state.vk_sha256) is not None
    parties.be("carol")  # never verified it: nothing recorded
    assert ceremony.verified_setup(state.vk_sha256) is None
    with pytest.raises(ZkError, match="finalized"):
        ceremony.contribute(folder, "carol")


def test_a_dropped_share_or_another_circuit_is_refused(
    copy: tuple[Path, Parties], r1cs: Path, tmp_path: Path
) -> None:
    """The coordinator finalizes from the file before alice's phase-2 share."""
    folder, parties = copy
    state = ceremony.CeremonyState.load(folder)
    dropped = state.latest(2)
    state.contributions.pop()
    state.phase = 2
    state.save(folder)
    (folder / dropped).unlink()
    state = ceremony.finalize(folder)
    assert state.vk_sha256 is not None
    parties.be("bob")  # bob's share is there: for bob this is a sound ceremony
    assert ceremony.verify(folder, r1cs).vk_sha256 == state.vk_sha256
    parties.be("alice")
    with pytest.raises(ZkError, match="phase-2 contribution .* not in the final files"):
        ceremony.verify(folder, r1cs)
    assert ceremony.verified_setup(state.vk_sha256) is None
    other = tmp_path / "other.r1cs"
    data = bytearray(r1cs.read_bytes())
    data[-1] ^= 1
    other.write_bytes(bytes(data))
    with pytest.raises(ZkError, match="not the one compiled here"):
        ceremony.verify(folder, other)


def test_a_key_swapped_for_a_single_party_one_is_refused(
    copy: tuple[Path, Parties], r1cs: Path
) -> None:
    """Whoever coordinates replaces the final key with one it made alone from the same
    phase-1 file (a valid snarkjs transcript, with only its own share): every contributor's
    check fails (alice's here), and the key is never recorded as verified."""
    folder, parties = copy
    state = ceremony.CeremonyState.load(folder)
    run = ceremony.snarkjs
    run("groth16", "setup", ceremony.R1CS_FILE, ceremony.PREPARED_PTAU, "s0.zkey", cwd=folder)
    run("zkey", "contribute", "s0.zkey", "s1.zkey", "-name=alice", "-e=x", cwd=folder)
    shutil.copyfile(folder / "s1.zkey", folder / ceremony.FINAL_ZKEY)
    run("zkey", "export", "verificationkey", "s1.zkey", ceremony.VK_FILE, cwd=folder)
    forged = ceremony.CeremonyState.load(folder)
    vk = VerifyingKeyData.from_snarkjs((folder / ceremony.VK_FILE).read_text())
    forged.vk_sha256 = ceremony.vk_sha256(vk)
    forged.save(folder)
    assert forged.vk_sha256 != state.vk_sha256
    parties.be("alice")
    with pytest.raises(ZkError, match="phase-2 contribution"):
        ceremony.verify(folder, r1cs)
    assert ceremony.verified_setup(forged.vk_sha256) is None


def test_two_ceremonies_of_one_circuit_have_different_ids(
    tmp_path: Path, r1cs: Path, finished: tuple[Path, Path]
) -> None:
    """`powersoftau new` is deterministic; a party's shares are recorded per ceremony id, so
    a second ceremony of the same circuit must not expect the first one's shares."""
    again = ceremony.init(tmp_path / "c2", r1cs, "owner", power=4)
    assert again.ceremony_id != ceremony.CeremonyState.load(finished[0]).ceremony_id
