"""The pinned robust rule (issue 13.9): the comparison, the one-line refusal, and the
spec that `ledgerlearn aggregator spec --rule --rule-param` writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from marketplace.cli.round_cmds import aggregator_spec
from marketplace.errors import ConfigError
from marketplace.learning import ModelSpec
from marketplace.learning.rule_pin import PinnedRule
from marketplace.privacy.keys import ReaderKey
from marketplace.rounds import RoundConfig
from marketplace.rounds.pinning import check_pinned, pinned_rule_problem


def _spec(pin: PinnedRule | None) -> ModelSpec:
    return ModelSpec.for_data("logreg", (4,), 2, aggregation=pin)


def test_same_rule_and_params_pass_and_any_difference_is_named() -> None:
    spec = _spec(PinnedRule(rule="krum", params={"f": 1}))
    assert pinned_rule_problem(spec, RoundConfig(rule="krum", rule_params={"f": "1"})) is None
    assert "krum {'f': 2}" in (
        pinned_rule_problem(spec, RoundConfig(rule="krum", rule_params={"f": 2})) or ""
    )
    assert pinned_rule_problem(spec, RoundConfig(rule="median")) is not None
    assert pinned_rule_problem(_spec(None), RoundConfig(rule="median")) is None  # no pin


def test_refusal_is_one_line_with_the_fix() -> None:
    spec = _spec(PinnedRule(rule="krum", params={"f": 1}))
    with pytest.raises(ConfigError) as err:
        check_pinned(spec, RoundConfig(rule="fedavg"))
    message = str(err.value)
    assert "\n" not in message and message.endswith("--rule krum --rule-param f=1")


def test_a_spec_without_a_pin_keeps_its_bytes() -> None:
    assert b"aggregation" not in _spec(None).to_json_bytes()
    pinned = _spec(PinnedRule(rule="default"))
    assert ModelSpec.from_json(pinned.to_json_bytes()) == pinned
    assert hash(pinned) == hash(ModelSpec.from_json(pinned.to_json_bytes()))


def test_aggregator_spec_writes_the_pin(tmp_path: Path) -> None:
    out = tmp_path / "spec.json"
    # updates are sealed by default: name a reader so no chain (signer) is needed
    reader = ReaderKey.from_eth_key(b"\x01" * 32).public_hex
    aggregator_spec(out=out, dataset="digits", rule="krum", rule_param=["f=1"], reader=[reader])
    spec = ModelSpec.from_json(out.read_bytes())
    assert spec.aggregation == PinnedRule(rule="krum", params={"f": 1})
    assert spec.privacy is not None and spec.privacy.readers == (reader,)
    with pytest.raises(ConfigError, match="unknown rule"):
        aggregator_spec(out=out, dataset="digits", rule="nope", reader=[reader])
