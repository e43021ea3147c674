"""User errors of the CLI core are one line (issue 15): two signers, a taken port, an
RPC error that escaped the chain layer."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
from cli_process import cli_env, complete_cli
from typer.testing import CliRunner

from marketplace.chain.accounts import chosen_key
from marketplace.cli import main
from marketplace.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
KEY = "0x" + "42" * 32


def test_key_and_account_together_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGERLEARN_KEY", raising=False)
    with pytest.raises(ConfigError, match="--account 2 and --key .* name two signers"):
        chosen_key(KEY, 2)
    monkeypatch.setenv("LEDGERLEARN_KEY", KEY)
    with pytest.raises(ConfigError, match="unset LEDGERLEARN_KEY to use --account"):
        chosen_key(None, 2)
    assert chosen_key(None, None) == KEY


def test_key_and_account_together_fail_before_any_transaction() -> None:
    done = CliRunner().invoke(
        main.app,
        ["trainer", "register", "1", "--key", KEY, "--account", "2", "--rpc-url", "embedded"],
    )
    assert isinstance(done.exception, ConfigError)
    assert "name two signers" in str(done.exception)


def test_node_refuses_a_taken_port_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = complete_cli(["node", "--port", str(port)], cli_env(PYTHONPATH=str(ROOT)))
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        == f"error: port {port} on 127.0.0.1 is already in use: pass another --port"
    )


def test_an_rpc_error_that_escaped_the_chain_layer_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from web3.exceptions import Web3RPCError

    def boom() -> None:
        raise Web3RPCError("{'code': -32602, 'message': 'block range too large'}")

    monkeypatch.setattr(main, "app", boom)
    monkeypatch.setattr(sys, "argv", ["ledgerlearn", "project", "show", "1"])
    with pytest.raises(SystemExit) as caught:
        main.run()
    assert caught.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the chain node refused: block range too large")
    assert "\n" not in err


def test_simulate_refuses_shards_under_the_privacy_minimum_before_deploying() -> None:
    """A Dirichlet split of `synthetic` gives some trainers 12-23 samples, under the spec's
    min_samples of 32: their nodes refuse to train, and the simulation used to stop in
    round 1 with a traceback and a half-played project. Now it refuses in one line before
    deploying anything, naming the trainers and the ways out; --min-samples is one."""
    done = CliRunner().invoke(
        main.app,
        ["simulate", "--dataset", "synthetic", "--partition", "dirichlet:0.3", "--trainers", "10"],
    )
    assert isinstance(done.exception, ConfigError)
    message = str(done.exception)
    assert "fewer than the 32 samples" in message and "--min-samples" in message
    assert "\n" not in message
    assert "deployed" not in done.output.lower()


def test_a_rule_missing_its_required_parameter_is_refused_before_any_round() -> None:
    """`simulate --aggregator krum` printed a TypeError traceback from round 1 (Krum needs
    f, and simulate had no way to pass it); now it is a one-line error naming the option,
    and --rule-param passes it."""
    done = CliRunner().invoke(main.app, ["simulate", "--aggregator", "krum", "--trainers", "7"])
    assert isinstance(done.exception, ConfigError)
    assert str(done.exception) == "aggregator 'krum' needs f: pass --rule-param f=N"
    done = CliRunner().invoke(
        main.app,
        ["aggregator", "spec", "--rule", "multi_krum", "--dataset", "digits", "--account", "1"]
        + ["--out", "never-written.json"],
    )
    assert isinstance(done.exception, ConfigError) and "--rule-param f=N" in str(done.exception)


def test_a_setting_refused_by_its_model_is_one_line() -> None:
    """`simulate --lr 0` passed the CLI's bound but not the settings model's: a pydantic
    traceback. Every such refusal is now one line naming the setting."""
    done = complete_cli(["simulate", "--lr", "0"], cli_env(PYTHONPATH=str(ROOT)), timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: invalid lr: Input should be greater than 0; change that option's value"
    )
