"""The first things a user does, through the real CLI against a real anvil node:
deploy, create a project, register three trainers, see them in `trainer status`; and
bad input gives one line, exit code != 0 and no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from marketplace.chain.node import free_port, start_anvil, stop

pytestmark = pytest.mark.e2e

CLI = [sys.executable, "-m", "marketplace.cli.main"]
AGGREGATOR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # anvil dev account 1


@pytest.fixture(scope="module")
def anvil_url() -> Iterator[str]:
    process, url = start_anvil()
    yield url
    stop(process)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


def ll(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEDGERLEARN_HOME": str(home)}
    env.pop("LEDGERLEARN_KEY", None)
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_deploy_create_register_status(anvil_url: str, home: Path) -> None:
    rpc = f"--rpc-url={anvil_url}"
    deployed = json.loads(ll(home, "deploy", rpc, "--json").stdout)
    assert deployed["contracts"]["ContributionMarket"]["address"].startswith("0x")
    assert deployed["genesis_hash"].startswith("0x")
    assert (home / "deployments" / f"31337-{deployed['genesis_hash'][2:18]}.json").exists()

    created = json.loads(
        ll(
            home,
            "project",
            "create",
            rpc,
            "--reward",
            "2",
            "--aggregator",
            AGGREGATOR,
            "--rounds",
            "2",
            "--min-stake",
            "0.1",
            "--json",
        ).stdout
    )
    pid = str(created["project_id"])
    registered = [
        json.loads(ll(home, "trainer", "register", pid, "--account", str(i), rpc, "--json").stdout)
        for i in (2, 3, 4)
    ]
    assert [r["index"] for r in registered] == [0, 1, 2]

    status = json.loads(ll(home, "trainer", "status", pid, rpc, "--json").stdout)
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
    anvil_url: str, home: Path, args: list[str], expected: str
) -> None:
    ll(home, "deploy", "--force", f"--rpc-url={anvil_url}")  # one per case, on one chain
    if "999" not in args:
        ll(
            home,
            "project",
            "create",
            f"--rpc-url={anvil_url}",
            "--reward",
            "1",
            "--aggregator",
            AGGREGATOR,
            "--min-stake",
            "0.1",
        )
    result = ll(home, *args, f"--rpc-url={anvil_url}", check=False)
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_unreachable_node_says_how_to_start_one(home: Path) -> None:
    result = ll(
        home,
        "trainer",
        "status",
        "1",
        f"--rpc-url=http://127.0.0.1:{free_port()}",
        check=False,
    )
    assert result.returncode == 1
    assert "ledgerlearn node" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_flag_shows_the_traceback(home: Path) -> None:
    url = f"--rpc-url=http://127.0.0.1:{free_port()}"
    result = ll(home, "--debug", "trainer", "status", "1", url, check=False)
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_node_command_keeps_state_across_restarts(tmp_path: Path, home: Path) -> None:
    port = free_port()
    state = tmp_path / "chain.json"
    env = {**os.environ, "LEDGERLEARN_HOME": str(home)}
    url = f"http://127.0.0.1:{port}"

    def run_node() -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [*CLI, "node", "--port", str(port), "--state", str(state)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        from marketplace.chain.node import wait_for_rpc

        wait_for_rpc(url, process=proc)
        return proc

    node = run_node()
    ll(home, "deploy", f"--rpc-url={url}")
    ll(home, "project", "create", f"--rpc-url={url}", "--reward", "1", "--aggregator", AGGREGATOR)
    stop(node, timeout=60)
    assert node.returncode == 0, node.stderr.read() if node.stderr else ""
    assert state.exists()
    node = run_node()
    try:
        shown = json.loads(ll(home, "project", "show", "1", f"--rpc-url={url}", "--json").stdout)
        assert shown["reward"] == 10**18
    finally:
        stop(node, timeout=60)


def test_deployments_are_kept_per_chain_and_genesis(home: Path, tmp_path: Path) -> None:
    """Every local chain is 31337: a second deploy must not silently replace the first,
    and a restarted node (a new genesis) must not be handed the old chain's addresses."""
    fresh = tmp_path / "home"
    port = free_port()
    first, url = start_anvil(port)
    rpc = f"--rpc-url={url}"
    try:
        ll(fresh, "deploy", rpc)
        ll(fresh, "project", "create", rpc, "--reward", "1", "--aggregator", AGGREGATOR)
        again = ll(fresh, "deploy", rpc, check=False)
        assert again.returncode == 1 and "Traceback" not in again.stderr
        assert "already has a deployment" in again.stderr and "--force" in again.stderr
        assert len(again.stderr.strip().splitlines()) == 1
        assert json.loads(ll(fresh, "project", "show", "1", rpc, "--json").stdout)["reward"]
        forced = json.loads(ll(fresh, "deploy", "--force", rpc, "--json").stdout)
        kept = sorted(p.name for p in (fresh / "deployments").iterdir())
        assert len(kept) == 2 and any(".replaced-" in name for name in kept), kept
        shown = ll(fresh, "project", "show", "1", rpc, check=False)  # the new market is empty
        assert shown.returncode == 1 and "ProjectNotFound" in shown.stderr
    finally:
        stop(first)
    second, url = start_anvil(port)  # same URL and chain id, new genesis
    try:
        stale = ll(fresh, "project", "show", "1", rpc, check=False)
        assert stale.returncode == 1 and "Traceback" not in stale.stderr
        assert "another chain with that id" in stale.stderr and "ledgerlearn deploy" in stale.stderr
        redeployed = json.loads(ll(fresh, "deploy", rpc, "--json").stdout)  # no --force needed
        assert redeployed["genesis_hash"] != forced["genesis_hash"]
    finally:
        stop(second)
