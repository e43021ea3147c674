"""The README's walkthrough, run verbatim: the fenced ``bash`` block after the line
``<!-- walkthrough -->`` in README.md (read from the README, not a copy) runs in bash in
an empty folder, with its own LEDGERLEARN_HOME and free ports given through the
environment variables the commands take their defaults from, so runs never collide.

``bash -e`` stops at the first command that fails (each background node is ``wait``-ed
alone, so its exit code counts too); then every step's effect is checked from what it
printed and wrote: rounds committed, payouts withdrawn, the model file (it loads and
scores the accuracy the aggregator reported), the audit verdict.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
import torch

from marketplace.chain.node import free_port, port_in_use
from marketplace.learning import ModelSpec, build_model
from marketplace.learning.datafiles import load_for_spec

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- walkthrough -->"


def walkthrough_block(readme: str) -> str:
    """The ```bash block right after the marker line (exactly one marker)."""
    assert readme.count(MARKER) == 1, f"README.md needs exactly one {MARKER} line"
    found = re.search(re.escape(MARKER) + r"\n```bash\n(.*?)\n```", readme, re.DOTALL)
    assert found is not None, f"no ```bash block right after {MARKER}"
    return found.group(1)


def test_walkthrough_block_is_found_and_uses_no_test_only_values() -> None:
    block = walkthrough_block(README.read_text())
    assert "ledgerlearn node &" in block and "kill $NODE_PID" in block
    assert "127.0.0.1:" not in block.replace("127.0.0.1:8545", "").replace(
        "127.0.0.1:8600", ""
    )  # no port the test would have to rewrite
    assert "LEDGERLEARN_" not in block


def test_readme_walkthrough_runs_verbatim(tmp_path: Path) -> None:
    block = walkthrough_block(README.read_text())
    node_port, gateway_port = free_port(), free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "LEDGERLEARN_HOME": str(tmp_path / "home"),
        "LEDGERLEARN_NODE_PORT": str(node_port),
        "LEDGERLEARN_RPC_URL": f"http://127.0.0.1:{node_port}",
        "LEDGERLEARN_AGGREGATOR_PORT": str(gateway_port),
        "LEDGERLEARN_AGGREGATOR_GATEWAY": f"http://127.0.0.1:{gateway_port}",
        "COLUMNS": "200",
    }
    for name in ("LEDGERLEARN_KEY", "LEDGERLEARN_READER_KEY"):
        env.pop(name, None)
    work = tmp_path / "work"
    work.mkdir()
    script = work.parent / "walkthrough.sh"
    script.write_text(block + "\n")
    log = work.parent / "walkthrough.log"  # a file, not a pipe: a node left behind by a
    started = time.monotonic()  # failed step must not keep the test waiting for EOF
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["bash", "-e", str(script)],
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: all it started stops below
        )
        try:
            proc.wait(timeout=600)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    seconds = time.monotonic() - started
    output = log.read_text()
    print(output)
    print(f"walkthrough took {seconds:.1f} s")
    assert proc.returncode == 0, output[-6000:]
    assert not port_in_use(node_port), "the walkthrough left its node running"

    # the data: a real dataset split into three trainers' files and a validation file
    assert "wrote digits.npz: 1797 samples of shape (8, 8), 10 classes" in output
    shards = sorted(p.name for p in (work / "shards").iterdir())
    assert shards == ["trainer-1.npz", "trainer-2.npz", "trainer-3.npz", "validation.npz"]
    assert "project 1 created" in output
    assert "shards/trainer-1.npz: OK, " in output
    assert "it is not project 1's committed validation set" in output

    # three trainers in their own processes, three rounds, nobody excluded
    for r in (1, 2, 3):
        line = next(x for x in output.splitlines() if x.startswith(f"round {r}/3  accuracy"))
        assert "inliers 3/3" in line and "nobody excluded" in line, line
    assert output.count("round 3: revealed and serving update") == 3
    assert "project 1: all 3 rounds committed" in output
    # the project is attested (the CLI's default): a stake-majority (2 of the 3 trainers)
    # replayed each round and attested the aggregator's scores; a trainer whose vote
    # comes after the round settled has nothing left to attest
    for r in (1, 2, 3):
        attested = f"round {r}: replayed and attested (matches the aggregator's commit)"
        assert output.count(attested) >= 2, (r, output[-4000:])
    assert "project 1 finalized" in output

    # every trainer withdrew its stake and a share of the 1 ETH reward
    paid = re.findall(r"withdrew stake ([\d.]+) ETH and reward ([\d.]+) ETH", output)
    assert len(paid) == 3, output[-4000:]
    assert all(Decimal(stake) == Decimal("0.1") for stake, _ in paid)
    rewards = [Decimal(reward) for _, reward in paid]
    assert all(r > 0 for r in rewards) and Decimal("0.999") < sum(rewards) <= 1

    # the trained model: a state_dict of the spec's network, committed on-chain, that
    # classifies the owner's validation digits far above chance (10%)
    assert "written to model.pt" in output
    spec = ModelSpec.from_json((work / "spec.json").read_bytes())
    model = build_model(spec)
    model.load_state_dict(torch.load(work / "model.pt", weights_only=True))
    validation = load_for_spec(work / "shards" / "validation.npz", spec)
    with torch.no_grad():
        accuracy = float((model(validation.x).argmax(1) == validation.y).float().mean())
    last = re.findall(r"round 3/3  accuracy ([\d.]+)%", output)
    assert accuracy > 0.5 and abs(100 * accuracy - float(last[0])) < 0.1, (accuracy, last)

    # the audit, after the trainers have gone, replays every round exactly
    assert "project 1: all rounds replay exactly" in output, output[-4000:]
    assert "MISMATCH" not in output
