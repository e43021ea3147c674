"""Per-account feedback queues through the real CLI on anvil: a non-evaluator's verdict is
refused before anything is asked or queued, and `drag feedback-status` shows the account's
own queue (pending, drops by reason, role)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_process import (
    anvil_fixture,  # noqa: F401  (the `anvil_url` fixture)
    cli_env,
    complete_cli,
    run_cli,
)

pytestmark = pytest.mark.e2e

ACCOUNT_4 = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"


def test_feedback_status_and_a_refused_non_evaluator(anvil_url: str, tmp_path: Path) -> None:
    env = cli_env(tmp_path / "home")
    rpc = f"--rpc-url={anvil_url}"
    run_cli(["deploy", rpc], env, 120)
    refused = complete_cli(["drag", "query", "Who?", "--truth=x", "--account=4", rpc], env, 120)
    assert refused.returncode != 0
    assert "lacks EVALUATOR_ROLE" in refused.stderr and "grant-evaluator" in refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1

    def feedback_status(account: int) -> dict:
        args = ["drag", "feedback-status", f"--account={account}", rpc, "--json"]
        return json.loads(run_cli(args, env, 120))

    status = feedback_status(4)
    assert status["account"] == ACCOUNT_4 and status["evaluator"] is False
    assert status["pending"] == 0 and status["dropped"] == 0
    assert ACCOUNT_4.lower() in status["queue"]  # this account's own queue file
    assert not Path(status["queue"]).exists()  # the refused verdict queued nothing

    run_cli(["registry", "grant-evaluator", ACCOUNT_4, "--account=0", rpc], env, 120)
    again = feedback_status(4)
    assert again["evaluator"] is True
    other = feedback_status(5)
    assert other["queue"] != again["queue"]
