"""The first things a user does, through the real CLI against a real anvil node:
deploy, create a project, register three trainers, see them in `trainer status`; and
bad input gives one line, exit code != 0 and no traceback."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cli_process import (
    anvil_fixture,  # noqa: F401  (the `anvil_url` fixture)
    cli_env,
    complete_cli,
    run_cli,
    spawn_cli,
)

from marketplace.chain.node import free_port, start_anvil, stop, wait_for_rpc

pytestmark = pytest.mark.e2e

AGGREGATOR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # anvil dev account 1


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def env(home: Path) -> dict[str, str]:
    return cli_env(home)


def test_deploy_create_register_status(anvil_url: str, home: Path, env: dict[str, str]) -> None:
    rpc = f"--rpc-url={anvil_url}"
    deployed = json.loads(run_cli(["deploy", rpc, "--json"], env, 120))
    assert deployed["contracts"]["ContributionMarket"]["address"].startswith("0x")
    assert deployed["genesis_hash"].startswith("0x")
    assert (home / "deployments" / f"31337-{deployed['genesis_hash'][2:18]}.json").exists()

    created = json.loads(
        run_cli(
            ["project", "create", rpc, "--reward", "2"]
            + ["--aggregator", AGGREGATOR, "--rounds", "2", "--min-stake", "0.1", "--json"],
            env,
            120,
        )
    )
    pid = str(created["project_id"])
    registered = [
        json.loads(
            run_cli(["trainer", "register", pid, "--account", str(i), rpc, "--json"], env, 120)
        )
        for i in (2, 3, 4)
    ]
    assert [r["index"] for r in registered] == [0, 1, 2]

    status = json.loads(run_cli(["trainer", "status", pid, rpc, "--json"], env, 120))
    assert [t["address"] for t in status["trainers"]] == [r["trainer"] for r in registered]
    assert all(t["stake"] == 10**17 for t in status["trainers"])
    assert status["reward"] == 2 * 10**18


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["trainer", "register", "1", "--key", "0xnotakey"], "invalid private key"),
        (["trainer", "status", "999"], "ProjectNotFound"),
        (["trainer", "register", "1", "--account", "5", "--stake", "0.001"], "below"),
        (["project", "create", "--reward", "1", "--aggregator", "0x1234"], "malformed aggregator"),
        (
            ["project", "create", "--reward", "100000", "--aggregator", AGGREGATOR],
            "insufficient funds: account 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266 has 99",
        ),
        (["trainer", "register", "1", "--key", "0x" + "42" * 32, "--account", "2"], "two signers"),
    ],
)
def test_bad_input_is_one_line_without_traceback(
    anvil_url: str, env: dict[str, str], args: list[str], expected: str
) -> None:
    run_cli(["deploy", "--force", f"--rpc-url={anvil_url}"], env, 120)  # one per case, on one chain
    if "999" not in args:
        run_cli(
            ["project", "create", f"--rpc-url={anvil_url}"]
            + ["--reward", "1", "--aggregator", AGGREGATOR, "--min-stake", "0.1"],
            env,
            120,
        )
    result = complete_cli([*args, f"--rpc-url={anvil_url}"], env, 120)
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_unreachable_node_says_how_to_start_one(env: dict[str, str]) -> None:
    result = complete_cli(
        ["trainer", "status", "1", f"--rpc-url=http://127.0.0.1:{free_port()}"], env, 120
    )
    assert result.returncode == 1
    assert "ledgerlearn node" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_flag_shows_the_traceback(env: dict[str, str]) -> None:
    url = f"--rpc-url=http://127.0.0.1:{free_port()}"
    result = complete_cli(["--debug", "trainer", "status", "1", url], env, 120)
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_node_command_keeps_state_across_restarts(tmp_path: Path, env: dict[str, str]) -> None:
    port = free_port()
    state = tmp_path / "chain.json"
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "node.log"

    def run_node() -> subprocess.Popen:
        proc = spawn_cli(["node", "--port", str(port), "--state", str(state)], env, log)
        wait_for_rpc(url, process=proc)
        return proc

    node = run_node()
    run_cli(["deploy", f"--rpc-url={url}"], env, 120)
    run_cli(
        ["project", "create", f"--rpc-url={url}", "--reward", "1", "--aggregator", AGGREGATOR],
        env,
        120,
    )
    stop(node, timeout=60)
    assert node.returncode == 0, log.read_text()
    assert state.exists()
    node = run_node()
    try:
        shown = json.loads(
            run_cli(["project", "show", "1", f"--rpc-url={url}", "--json"], env, 120)
        )
        assert shown["reward"] == 10**18
    finally:
        stop(node, timeout=60)


def test_deployments_are_kept_per_chain_and_genesis(tmp_path: Path) -> None:
    """Every local chain is 31337: a second deploy must not silently replace the first,
    and a restarted node (a new genesis) must not be handed the old chain's addresses."""
    fresh_env = cli_env(tmp_path / "home")
    fresh = tmp_path / "home"
    port = free_port()
    first, url = start_anvil(port)
    rpc = f"--rpc-url={url}"
    try:
        run_cli(["deploy", rpc], fresh_env, 120)
        run_cli(
            ["project", "create", rpc, "--reward", "1", "--aggregator", AGGREGATOR], fresh_env, 120
        )
        again = complete_cli(["deploy", rpc], fresh_env, 120)
        assert again.returncode == 1 and "Traceback" not in again.stderr
        assert "already has a deployment" in again.stderr and "--force" in again.stderr
        assert len(again.stderr.strip().splitlines()) == 1
        assert json.loads(run_cli(["project", "show", "1", rpc, "--json"], fresh_env, 120))[
            "reward"
        ]
        forced = json.loads(run_cli(["deploy", "--force", rpc, "--json"], fresh_env, 120))
        kept = sorted(p.name for p in (fresh / "deployments").iterdir())
        assert len(kept) == 2 and any(".replaced-" in name for name in kept), kept
        shown = complete_cli(
            ["project", "show", "1", rpc], fresh_env, 120
        )  # the new market is empty
        assert shown.returncode == 1 and "ProjectNotFound" in shown.stderr
    finally:
        stop(first)
    second, url = start_anvil(port)  # same URL and chain id, new genesis
    try:
        stale = complete_cli(["project", "show", "1", rpc], fresh_env, 120)
        assert stale.returncode == 1 and "Traceback" not in stale.stderr
        assert "another chain with that id" in stale.stderr and "ledgerlearn deploy" in stale.stderr
        redeployed = json.loads(
            run_cli(["deploy", rpc, "--json"], fresh_env, 120)
        )  # no --force needed
        assert redeployed["genesis_hash"] != forced["genesis_hash"]
    finally:
        stop(second)
