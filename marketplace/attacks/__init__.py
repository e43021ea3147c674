"""Adversaries for simulations: one module per attack, each a pure function citing its paper.

The package exports only the registry; import an attack's function from its module
(``from marketplace.attacks.alie import alie``).
"""

from marketplace.attacks.registry import (
    ATTACKS,
    AttackInfo,
    AttackSpec,
    apply_attack,
    choose_attackers,
    is_data_attack,
    parse_attack,
)

__all__ = [
    "ATTACKS",
    "AttackInfo",
    "AttackSpec",
    "apply_attack",
    "choose_attackers",
    "is_data_attack",
    "parse_attack",
]
