"""End to end on anvil: an attested project (issue #13.7) with real CLI processes.

The owner creates the project with ``--attested``; three ``trainer run`` processes get the
owner's validation file (``--validation``), replay each committed round and attest it in
their own loop; the aggregator keeps its gateway up until the last round settled. Every
round settles as committed and ``trainer withdraw`` pays the whole reward out.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from cli_process import run_cli, spawn_cli, stop_all, wait_all

from marketplace.chain.connection import connect
from marketplace.chain.deploy import load_manifest
from marketplace.chain.market import MarketClient
from marketplace.chain.node import free_port, start_anvil, stop
from marketplace.learning import load_dataset, partition
from marketplace.learning.datasets import save_npz

pytestmark = pytest.mark.e2e

TRAINERS = 3
ROUNDS = 2
STAKE = 10**15


def test_trainer_processes_replay_and_attest_every_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    anvil, url = start_anvil()
    procs: list[subprocess.Popen] = []
    home = tmp_path / "home"
    env = {**os.environ, "LEDGERLEARN_RPC_URL": url, "LEDGERLEARN_HOME": str(home)}
    try:
        run_cli(["deploy", "--account", "0"], env, 120)
        spec_file = tmp_path / "spec.json"
        spec = json.loads(
            run_cli(
                ["aggregator", "spec", "--dataset", "digits", "--out", str(spec_file)]
                + ["--account", "1", "--json"],
                env,
                120,
            )
        )
        train, validation = load_dataset("digits", 0)
        shards = partition(train.y, TRAINERS, "iid", 0)
        save_npz(validation, tmp_path / "validation.npz")
        chain = connect(url)
        created = json.loads(
            run_cli(
                ["project", "create", "--account", "0", "--reward", "1"]
                + ["--aggregator", chain.dev_account(1).address, "--rounds", str(ROUNDS)]
                + ["--round-duration", "120", "--min-stake", f"{STAKE}wei"]
                + ["--model-spec-cid", spec["cid"], "--attested", "--json"]
                + ["--validation-data", str(tmp_path / "validation.npz")],
                env,
                120,
            )
        )
        pid = int(created["project_id"])
        project = [str(pid)]
        monkeypatch.setenv("LEDGERLEARN_HOME", str(home))  # this process reads the manifest
        market = MarketClient(chain, load_manifest(chain).address("ContributionMarket"))
        assert market.project(pid).attested
        for i in range(TRAINERS):
            save_npz(train.subset(shards[i]), tmp_path / f"data{i}.npz")
            run_cli(["trainer", "register", *project, "--account", str(2 + i)], env, 120)
        assert len(market.reader_keys(pid)) == TRAINERS  # announced at registration
        port = free_port()
        commands = [
            ["aggregator", "run", *project, "--account", "1"]
            + ["--validation", str(tmp_path / "validation.npz"), "--model-spec", str(spec_file)]
            + ["--data-dir", str(tmp_path / "aggregator"), "--port", str(port)]
            + ["--min-trainers", str(TRAINERS), "--poll", "0.2"]
        ]
        for i in range(TRAINERS):
            commands.append(
                ["trainer", "run", *project, "--account", str(2 + i)]
                + ["--data", str(tmp_path / f"data{i}.npz")]
                + ["--data-dir", str(tmp_path / f"trainer{i}")]
                + ["--aggregator-gateway", f"http://127.0.0.1:{port}"]
                + ["--validation", str(tmp_path / "validation.npz"), "--poll", "0.2"]
            )
        for k, args in enumerate(commands):
            procs.append(spawn_cli(args, env, tmp_path / f"node{k}.log"))
        logs = wait_all(procs, sorted(tmp_path.glob("node*.log")), timeout=600)
        for r in range(1, ROUNDS + 1):
            state = market.round_state(pid, r)
            assert (state.settled, state.replaced) == (True, False)
            # a stake-majority (2 of 3) settles the round; a third vote mined after it has
            # nothing left to attest (the README walkthrough once saw exactly that)
            attesters = [
                k for k in (1, 2, 3) if f"round {r}: replayed and attested" in logs[f"node{k}.log"]
            ]
            assert len(attesters) >= 2, (r, attesters)
        # what `project history` says of each round: the aggregator's root, confirmed
        history = json.loads(run_cli(["project", "history", *project, "--json"], env, 120))
        assert [h["settlement"]["outcome"] for h in history] == ["confirmed"] * ROUNDS
        assert not any(h["scores_void"] for h in history)
        assert all(len(h["settlement"]["votes"]) >= 2 for h in history)
        run_cli(["project", "finalize", str(pid), "--account", "0"], env, 120)
        paid = [
            json.loads(
                run_cli(
                    ["trainer", "withdraw", *project, "--account", str(2 + i), "--json"]
                    + ["--data-dir", str(tmp_path / f"trainer{i}")],
                    env,
                    120,
                )
            )
            for i in range(TRAINERS)
        ]
        assert sum(p["reward"] for p in paid) > 10**18 * 99 // 100
        assert all(p["bond"] == 0 and p["stake"] == STAKE for p in paid)
    finally:
        stop_all(procs)
        stop(anvil)
