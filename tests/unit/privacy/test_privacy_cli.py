"""``aggregator spec`` declares privacy: sealed to the aggregator's derived reader key by
default, refused without a key unless updates are public, and public only with DP."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from marketplace.chain.accounts import account_from_key
from marketplace.cli.main import app
from marketplace.learning import ModelSpec
from marketplace.privacy.keys import ReaderKey

KEY = "0x" + "42" * 32


def _spec(tmp_path: Path, *args: str) -> tuple[int, str, Path]:
    out = tmp_path / "spec.json"
    done = CliRunner().invoke(
        app, ["aggregator", "spec", "--dataset", "digits", "--out", str(out), *args]
    )
    # the CLI's entry point prints a LedgerLearnError in one line; invoke() keeps it
    return done.exit_code, done.output + str(done.exception or ""), out


def test_spec_is_sealed_to_the_aggregators_derived_reader_key(tmp_path: Path) -> None:
    code, output, out = _spec(tmp_path, "--key", KEY, "--dp-epsilon", "8", "--rounds", "10")
    assert code == 0, output
    spec = ModelSpec.from_json(out.read_bytes())
    assert spec.privacy is not None and spec.privacy.sealed
    eth_key = account_from_key(KEY).key
    assert spec.privacy.readers == (ReaderKey.from_eth_key(eth_key).public_hex,)
    assert spec.privacy.dp is not None and spec.privacy.local_steps == 16
    assert json.loads(out.read_text())["privacy"]["dp"]["epsilon_budget"] == 8.0


def test_spec_without_a_reader_or_with_clear_updates_and_no_dp_is_refused(tmp_path: Path) -> None:
    code, output, _ = _spec(tmp_path)
    assert code == 1 and "--key or --account" in output
    code, output, _ = _spec(tmp_path, "--public-updates")
    assert code == 1 and "requires dp" in output
