"""Does a round config run the rule the project pinned in its model spec? (issue 13.9)

One comparison, used twice: the aggregator refuses to run another rule
(:func:`check_pinned`, a one-line :class:`ConfigError`), and the audit reports a round
whose report declares another rule or other parameters (:func:`pinned_rule_problem`).
Parameters are compared after the CLI's parsing (:func:`rule_params_from`), so
``f=1`` and ``{"f": 1}`` are the same pin. A spec without a pin (written before pins
existed) pins nothing.
"""

from __future__ import annotations

from marketplace.errors import ConfigError
from marketplace.learning import ModelSpec
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
