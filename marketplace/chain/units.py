"""Ether amounts: parsed from what a user types, shown in ether with the unit.

On-chain and in ``--json`` output amounts stay integers in wei; people read and type
ether. The chain layer's own messages (insufficient funds) use :func:`format_eth` too,
so one amount reads the same in every message.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from marketplace.errors import ConfigError

WEI_PER_ETH = 10**18
_UNITS = {"eth": WEI_PER_ETH, "ether": WEI_PER_ETH, "gwei": 10**9, "wei": 1}


def parse_amount(text: str, what: str = "amount") -> int:
    """Parse '1.5' (ETH), '2eth', '10gwei' or '1000wei' into wei."""
    raw = text.strip().lower().replace("_", "")
    unit = WEI_PER_ETH
    for suffix, factor in _UNITS.items():
        if raw.endswith(suffix):
            raw, unit = raw[: -len(suffix)].strip(), factor
            break
    try:
        value = Decimal(raw) * unit
    except InvalidOperation as exc:
        raise ConfigError(f"invalid {what} {text!r}: use e.g. 1.5, 2eth, 10gwei, 1000wei") from exc
    if value < 0 or value != value.to_integral_value():
        raise ConfigError(f"invalid {what} {text!r}: must be a whole, non-negative number of wei")
    return int(value)


def format_eth(wei: int) -> str:
    """``10**17`` -> ``'0.1 ETH'``: exact (every significant wei), no trailing zeros."""
    return f"{Decimal(wei) / Decimal(WEI_PER_ETH):f} ETH"
