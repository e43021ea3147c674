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
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_process import (
    anvil_fixture,  # noqa: F401  (the `anvil_url` fixture)
    cli_env,
    complete_cli,
    run_cli,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

AGGREGATOR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # anvil dev account 1
SHAPE = "4x2"
TIMEOUT = 1500  # seconds for one command (a ceremony step on 2 shared cores)


def test_ceremony_across_processes_then_trainers_stake(anvil_url: str, tmp_path: Path) -> None:
    homes = {p: tmp_path / p for p in ("owner", "t1", "t2", "t3", "t4", "aggregator")}
    envs = {p: cli_env(home) for p, home in homes.items()}
    folder = str(tmp_path / "ceremony")
    rpc = f"--rpc-url={anvil_url}"

    state = json.loads(
        run_cli(
            ["zk", "ceremony", "init", "--dir", folder, "--shape", SHAPE, "--json"],
            envs["owner"],
            TIMEOUT,
        )
    )
    assert state["phase"] == 1 and state["power"] == 12
    for t in ("t1", "t2", "t3"):
        run_cli(["zk", "ceremony", "contribute", "--dir", folder, "--name", t], envs[t], TIMEOUT)
    run_cli(["zk", "ceremony", "prepare", "--dir", folder], envs["aggregator"], TIMEOUT)
    for p in ("owner", "t1", "t2", "t3"):
        made = json.loads(
            run_cli(
                ["zk", "ceremony", "contribute", "--dir", folder, "--name", p, "--json"],
                envs[p],
                TIMEOUT,
            )
        )
        assert made["phase"] == 2
    final = json.loads(
        run_cli(
            ["zk", "ceremony", "finalize", "--dir", folder, "--json"], envs["aggregator"], TIMEOUT
        )
    )
    assert final["phase"] == 3 and len(final["contributions"]) == 8
    for t in ("t1", "t2", "t3"):
        report = json.loads(
            run_cli(["zk", "ceremony", "verify", "--dir", folder, "--json"], envs[t], TIMEOUT)
        )
        assert report["vk_sha256"] == final["vk_sha256"] and len(report["own"]) == 2
        assert report["phase1"] == ["owner", "t1", "t2", "t3"]

    # the aggregator deploys the market and the verifier with the ceremony key
    run_cli(["deploy", rpc], envs["aggregator"], TIMEOUT)
    for p, home in homes.items():
        if p != "aggregator":
            shutil.copytree(homes["aggregator"] / "deployments", home / "deployments")
    keys = str(Path(folder) / "keys")
    verifier = json.loads(
        run_cli(
            ["zk", "deploy-verifier", "--shape", SHAPE, "--keys", keys, rpc, "--json"],
            envs["aggregator"],
            TIMEOUT,
        )
    )["verifier"]
    run_cli(["zk", "setup", "--shape", SHAPE], envs["aggregator"], TIMEOUT)
    dev = json.loads(
        run_cli(
            ["zk", "deploy-verifier", "--shape", SHAPE, rpc, "--json"], envs["aggregator"], TIMEOUT
        )
    )["verifier"]  # `zk setup` keys: single-party

    def create(v: str) -> str:
        out = run_cli(
            ["project", "create", rpc, "--reward", "1"]
            + ["--aggregator", AGGREGATOR, "--min-stake", "0.1", "--verifier", v, "--json"],
            envs["owner"],
            TIMEOUT,
        )
        return str(json.loads(out)["project_id"])

    pid, dev_pid = create(verifier), create(dev)
    for i, t in enumerate(("t1", "t2", "t3")):
        run_cli(["trainer", "register", pid, "--account", str(2 + i), rpc], envs[t], TIMEOUT)
        refused = complete_cli(
            ["trainer", "register", dev_pid, "--account", str(2 + i), rpc], envs[t], TIMEOUT
        )
        assert (
            refused.returncode != 0
            and "not from a ceremony verified" in refused.stdout + refused.stderr
        )
        assert "Traceback" not in refused.stderr
    stranger = complete_cli(
        ["trainer", "register", pid, "--account", "5", rpc], envs["t4"], TIMEOUT
    )
    assert stranger.returncode != 0 and "zk ceremony verify" in stranger.stdout + stranger.stderr
    run_cli(
        ["trainer", "register", dev_pid, "--account", "5", "--dev-unsafe-setup", rpc],
        envs["t4"],
        TIMEOUT,
    )

    # the ceremony key proves a filter round; its verifying key is the deployed one's
    env = envs["aggregator"]
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
