"""End to end on anvil: 1 aggregator and 4 trainer processes (the CLI) run 3 rounds.

Each trainer has its own data directory made from a digits partition; the aggregator and
the trainers (who replay and attest each round of the attested project) get the owner's
validation file, never anyone's training data. Afterwards nothing published (transaction
calldata, event data, any block in any node's content store) may contain a raw
training sample.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_process import complete_cli, run_cli, spawn_cli, stop_all, wait_all

from marketplace.chain.connection import connect
from marketplace.chain.deploy import load_manifest
from marketplace.chain.market import MarketClient
from marketplace.chain.node import free_port, start_anvil, stop
from marketplace.learning import load_dataset, partition
from marketplace.learning.datasets import save_npz
from marketplace.rounds.chainview import round_commit

pytestmark = pytest.mark.e2e

TRAINERS = 4
ROUNDS = 3
STAKE = 10**15


def test_three_rounds_with_trainer_processes(tmp_path: Path) -> None:
    anvil, url = start_anvil()
    procs: list[subprocess.Popen] = []
    try:
        env = {**os.environ, "LEDGERLEARN_RPC_URL": url}
        run_cli(["deploy", "--account", "0"], env)
        spec_file = tmp_path / "spec.json"
        spec = json.loads(
            run_cli(
                [
                    "aggregator",
                    "spec",
                    "--dataset",
                    "digits",
                    "--out",
                    str(spec_file),
                    "--account",
                    "1",
                    "--json",
                ],
                env,
            )
        )
        train, validation = load_dataset("digits", 0)
        shards = partition(train.y, TRAINERS, "iid", 0)
        owner_dir = tmp_path / "owner"
        owner_dir.mkdir()
        save_npz(validation, owner_dir / "validation.npz")
        chain = connect(url)
        aggregator = chain.dev_account(1)
        created = json.loads(
            run_cli(
                [
                    "project",
                    "create",
                    "--account",
                    "0",
                    "--reward",
                    "1",
                    "--aggregator",
                    aggregator.address,
                    "--rounds",
                    str(ROUNDS),
                    "--round-duration",
                    "120",
                    "--min-stake",
                    f"{STAKE}wei",
                    "--model-spec-cid",
                    spec["cid"],
                    "--validation-data",
                    str(owner_dir / "validation.npz"),
                    "--json",
                ],
                env,
            )
        )
        project = created["project_id"]
        market = MarketClient(chain, load_manifest(chain).address("ContributionMarket"))

        data_paths = []
        for i in range(TRAINERS):
            node_dir = tmp_path / f"trainer{i}"
            node_dir.mkdir()
            save_npz(train.subset(shards[i]), node_dir / "data.npz")
            data_paths.append(node_dir / "data.npz")
            market.as_account(chain.dev_account(2 + i)).register(project, STAKE)

        port = free_port()
        agg_args = [
            "aggregator",
            "run",
            str(project),
            "--account",
            "1",
            "--validation",
            str(owner_dir / "validation.npz"),
            "--model-spec",
            str(spec_file),
            "--data-dir",
            str(tmp_path / "aggregator"),
            "--port",
            str(port),
            "--min-trainers",
            str(TRAINERS),
            "--poll",
            "0.2",
        ]
        assert not any(str(p) in " ".join(agg_args) for p in data_paths)
        procs.append(spawn_cli(agg_args, env, tmp_path / "aggregator.log"))
        for i in range(TRAINERS):
            trainer_args = [
                "trainer",
                "run",
                str(project),
                "--account",
                str(2 + i),
                "--data",
                str(data_paths[i]),
                "--data-dir",
                str(tmp_path / f"trainer{i}" / "store"),
                "--aggregator-gateway",
                f"http://127.0.0.1:{port}",
                "--validation",
                str(owner_dir / "validation.npz"),
                "--poll",
                "0.2",
            ]
            procs.append(spawn_cli(trainer_args, env, tmp_path / f"trainer{i}.log"))

        logs = wait_all(procs, sorted(tmp_path.glob("*.log")), timeout=300)

        info = market.project(project)
        assert info.rounds_committed == ROUNDS
        for r in range(1, ROUNDS + 1):
            commit = round_commit(market, project, r, TRAINERS)
            assert commit is not None and commit.report_cid is not None
            assert commit.inlier_mask == [True] * TRAINERS
        assert "round 3/3" in logs["aggregator.log"]

        # an auditor who collected the published blocks replays every round through the CLI:
        # updates are sealed to the aggregator, so without its reader key the audit can only
        # say so (exit 3), and with it the audit replays everything
        merged = tmp_path / "audit-store"
        for store_dir in [tmp_path / "aggregator", *(tmp_path.glob("trainer*/store"))]:
            shutil.copytree(store_dir / "blocks", merged / "blocks", dirs_exist_ok=True)
        audit_args = [
            "audit",
            str(project),
            "--validation",
            str(owner_dir / "validation.npz"),
            "--store",
            str(merged),
            "--json",
        ]
        outsider = complete_cli(audit_args, env, 300)
        assert outsider.returncode == 3, outsider.stderr
        assert json.loads(outsider.stdout)["encrypted"] == TRAINERS
        key = json.loads(run_cli(["aggregator", "reader-key", "--account", "1", "--json"], env))
        audit = json.loads(run_cli([*audit_args, "--reader-key", key["private"]], env, 300))
        assert audit["ok"], audit
        assert audit["notes"] == []  # the validation file matches the on-chain commitment
        assert [r["round"] for r in audit["rounds"]] == list(range(1, ROUNDS + 1))
        assert all(r["checks"]["scores"] and r["checks"]["model"] for r in audit["rounds"]), audit

        # nothing published holds a raw training row
        published: list[bytes] = []
        for store_dir in [tmp_path / "aggregator", *(tmp_path.glob("trainer*/store"))]:
            published += [f.read_bytes() for f in store_dir.rglob("*") if f.is_file()]
        assert len(published) > TRAINERS * ROUNDS
        latest = chain.w3.eth.block_number
        for number in range(latest + 1):
            block = chain.w3.eth.get_block(number, full_transactions=True)
            published += [bytes(tx["input"]) for tx in block["transactions"]]
        logs_all = chain.w3.eth.get_logs({"fromBlock": 0, "toBlock": latest})
        published += [bytes(entry["data"]) for entry in logs_all]
        rows = {row.numpy().tobytes() for row in train.x}
        assert any(row in data_paths[0].read_bytes() for row in rows)  # the probe can see
        blob = b"\x00".join(published)
        assert not [row for row in rows if row in blob]
    finally:
        stop_all(procs)
        stop(anvil)
