"""The multi-party setup through the real CLI, each party a separate process with its own
LEDGERLEARN_HOME (its own machine), files passed in one ceremony folder, against anvil:

owner ``init`` -> three trainers contribute (phase 1) -> aggregator ``prepare`` -> owner and
trainers contribute (phase 2) -> aggregator ``finalize`` -> each trainer ``verify``s ->
aggregator deploys the verifier with the ceremony key, owner creates the project -> the
trainers register (their pre-stake check accepts the key they verified), a trainer that
verified nothing is refused, and so is everyone on a project whose key is single-party.
The ceremony key proves a filter round that the deployed verifier accepts.

Slow: ``powersoftau prepare phase2`` at 2^12 (the smallest filter circuit, 4x2, has ~3.4k
constraints) takes minutes on 2 shared cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from marketplace.chain.node import start_anvil, stop

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLI = [sys.executable, "-m", "marketplace.cli.main"]
AGGREGATOR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # anvil dev account 1
SHAPE = "4x2"


@pytest.fixture(scope="module")
def anvil_url() -> Iterator[str]:
    process, url = start_anvil()
    yield url
    stop(process)


def ll(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEDGERLEARN_HOME": str(home)}
    env.pop("LEDGERLEARN_KEY", None)
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=1500)
    if check:
        assert result.returncode == 0, result.stderr + result.stdout
    return result


def test_ceremony_across_processes_then_trainers_stake(anvil_url: str, tmp_path: Path) -> None:
    homes = {p: tmp_path / p for p in ("owner", "t1", "t2", "t3", "t4", "aggregator")}
    folder = str(tmp_path / "ceremony")
    rpc = f"--rpc-url={anvil_url}"

    state = json.loads(
        ll(
            homes["owner"], "zk", "ceremony", "init", "--dir", folder, "--shape", SHAPE, "--json"
        ).stdout
    )
    assert state["phase"] == 1 and state["power"] == 12
    for t in ("t1", "t2", "t3"):
        ll(homes[t], "zk", "ceremony", "contribute", "--dir", folder, "--name", t)
    ll(homes["aggregator"], "zk", "ceremony", "prepare", "--dir", folder)
    for p in ("owner", "t1", "t2", "t3"):
        made = json.loads(
            ll(
                homes[p], "zk", "ceremony", "contribute", "--dir", folder, "--name", p, "--json"
            ).stdout
        )
        assert made["phase"] == 2
    final = json.loads(
        ll(homes["aggregator"], "zk", "ceremony", "finalize", "--dir", folder, "--json").stdout
    )
    assert final["phase"] == 3 and len(final["contributions"]) == 8
    for t in ("t1", "t2", "t3"):
        report = json.loads(
            ll(homes[t], "zk", "ceremony", "verify", "--dir", folder, "--json").stdout
        )
        assert report["vk_sha256"] == final["vk_sha256"] and len(report["own"]) == 2
        assert report["phase1"] == ["owner", "t1", "t2", "t3"]

    # the aggregator deploys the market and the verifier with the ceremony key
    ll(homes["aggregator"], "deploy", rpc)
    for p, home in homes.items():
        if p != "aggregator":
            shutil.copytree(homes["aggregator"] / "deployments", home / "deployments")
    keys = str(Path(folder) / "keys")
    verifier = json.loads(
        ll(
            homes["aggregator"],
            "zk",
            "deploy-verifier",
            "--shape",
            SHAPE,
            "--keys",
            keys,
            rpc,
            "--json",
        ).stdout
    )["verifier"]
    ll(homes["aggregator"], "zk", "setup", "--shape", SHAPE)
    dev = json.loads(
        ll(homes["aggregator"], "zk", "deploy-verifier", "--shape", SHAPE, rpc, "--json").stdout
    )["verifier"]  # `zk setup` keys: single-party

    def create(v: str) -> str:
        out = ll(
            homes["owner"],
            "project",
            "create",
            rpc,
            "--reward",
            "1",
            "--aggregator",
            AGGREGATOR,
            "--min-stake",
            "0.1",
            "--verifier",
            v,
            "--json",
        )
        return str(json.loads(out.stdout)["project_id"])

    pid, dev_pid = create(verifier), create(dev)
    for i, t in enumerate(("t1", "t2", "t3")):
        ll(homes[t], "trainer", "register", pid, "--account", str(2 + i), rpc)
        refused = ll(
            homes[t],
            "trainer",
            "register",
            dev_pid,
            "--account",
            str(2 + i),
            rpc,
            check=False,
        )
        assert (
            refused.returncode != 0
            and "not from a ceremony verified" in refused.stdout + refused.stderr
        )
        assert "Traceback" not in refused.stderr
    stranger = ll(homes["t4"], "trainer", "register", pid, "--account", "5", rpc, check=False)
    assert stranger.returncode != 0 and "zk ceremony verify" in stranger.stdout + stranger.stderr
    ll(
        homes["t4"],
        "trainer",
        "register",
        dev_pid,
        "--account",
        "5",
        "--dev-unsafe-setup",
        rpc,
    )

    # the ceremony key proves a filter round; its verifying key is the deployed one's
    env = {**os.environ, "LEDGERLEARN_HOME": str(homes["aggregator"])}
    code = f"""
import random, sys
from zk.ceremony import vk_sha256
from zk.onchain import RoundProver
from zk.shape import CircuitShape
prover = RoundProver(CircuitShape(4, 2), keys_dir=__import__('pathlib').Path({keys!r}))
rng = random.Random(1)
sketches = [[rng.randint(-900, 900) for _ in range(2)] for _ in range(3)]
rp = prover.prove_round(1, 1, sketches, [11, 12, 13])
assert prover.backend.verify(rp.proof, [rp.statement.public_hash])
print(vk_sha256(prover.verifying_key()))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == final["vk_sha256"]
