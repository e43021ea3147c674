"""Per-account feedback queues through the real CLI on anvil: a non-evaluator's verdict is
refused before anything is asked or queued, and `drag feedback-status` shows the account's
own queue (pending, drops by reason, role)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from marketplace.chain.node import start_anvil, stop

pytestmark = pytest.mark.e2e

CLI = [sys.executable, "-m", "marketplace.cli.main"]
ACCOUNT_4 = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEDGERLEARN_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env.pop("LEDGERLEARN_KEY", None)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def anvil_url() -> Iterator[str]:
    process, url = start_anvil()
    yield url
    stop(process)


def test_feedback_status_and_a_refused_non_evaluator(anvil_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    rpc = f"--rpc-url={anvil_url}"
    assert run(home, "deploy", rpc).returncode == 0
    refused = run(home, "drag", "query", "Who?", "--truth=x", "--account=4", rpc)
    assert refused.returncode != 0
    assert "lacks EVALUATOR_ROLE" in refused.stderr and "grant-evaluator" in refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1

    status = json.loads(run(home, "drag", "feedback-status", "--account=4", rpc, "--json").stdout)
    assert status["account"] == ACCOUNT_4 and status["evaluator"] is False
    assert status["pending"] == 0 and status["dropped"] == 0
    assert ACCOUNT_4.lower() in status["queue"]  # this account's own queue file
    assert not Path(status["queue"]).exists()  # the refused verdict queued nothing

    assert run(home, "registry", "grant-evaluator", ACCOUNT_4, "--account=0", rpc).returncode == 0
    again = json.loads(run(home, "drag", "feedback-status", "--account=4", rpc, "--json").stdout)
    assert again["evaluator"] is True
    other = json.loads(run(home, "drag", "feedback-status", "--account=5", rpc, "--json").stdout)
    assert other["queue"] != again["queue"]
