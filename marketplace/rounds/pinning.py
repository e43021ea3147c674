"""Does a round config run the rule the project pinned in its model spec? (issue 13.9)

One comparison, used twice: the aggregator refuses to run another rule
(:func:`check_pinned`, a one-line :class:`ConfigError`), and the audit reports a round
whose report declares another rule or other parameters (:func:`pinned_rule_problem`).
Parameters are compared after the CLI's parsing (:func:`rule_params_from`), so
``f=1`` and ``{"f": 1}`` are the same pin. A spec without a pin (written before pins
existed) pins nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marketplace.errors import ConfigError
from marketplace.learning import ModelSpec
from marketplace.robust.registry import min_updates
from marketplace.rounds.pipeline import RoundConfig, rule_params_from


def pinned_rule_problem(spec: ModelSpec, config: RoundConfig) -> str | None:
    """Why ``config`` is not the spec's pinned rule, or None when it is (or none is pinned)."""
    pin = spec.aggregation
    if pin is None:
        return None
    pinned = (pin.rule, rule_params_from(pin.params))
    used = (config.rule, rule_params_from(config.rule_params))
    if pinned == used:
        return None
    return (
        f"rule {used[0]} {used[1]} is not the rule the project's spec pins: {pinned[0]} {pinned[1]}"
    )


def check_pinned(spec: ModelSpec, config: RoundConfig) -> None:
    """Refuse to aggregate with a rule other than the pinned one."""
    problem = pinned_rule_problem(spec, config)
    if problem is not None:
        pin = spec.aggregation
        assert pin is not None
        flags = " ".join(f"--rule-param {k}={v}" for k, v in sorted(pin.params.items()))
        raise ConfigError(f"{problem}: run with --rule {pin.rule} {flags}".rstrip())


def too_few_trainers(rule: str, params: Mapping[str, Any], trainers: int | None) -> str | None:
    """Why a round of ``trainers`` updates keeps nobody under ``rule``, or None when
    the rule can run on that many (issue 15: the honest single trainer of an example was
    excluded without a word). ``trainers`` None (a project not joined yet): the rule's
    minimum whenever it is above one. One line, naming the fix."""
    need = min_updates(rule, rule_params_from(params))
    if need <= (1 if trainers is None else trainers):
        return None
    here = "" if trainers is None else f" ({trainers} here)"
    return (
        f"rule {rule} keeps nobody in a round with fewer than {need} trainers{here}: "
        f"register at least {need} trainers before a round's first commitment, or pin a "
        "rule that runs on fewer (aggregator spec --rule fedavg)"
    )


def spec_rule(spec: ModelSpec, config: RoundConfig | None = None) -> tuple[str, dict[str, Any]]:
    """The rule a project runs: the one its spec pins, else the aggregator's config."""
    if spec.aggregation is not None:
        return spec.aggregation.rule, dict(spec.aggregation.params)
    config = config or RoundConfig()
    return config.rule, dict(config.rule_params)
