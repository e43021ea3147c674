"""Turn revert data into one readable line: custom errors by name with their arguments."""

from __future__ import annotations

from typing import Any

from eth_abi import decode
from eth_utils import to_checksum_address

from marketplace.chain.artifacts import error_selectors
from marketplace.chain.units import format_eth

ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)
PANIC = bytes.fromhex("4e487b71")  # Panic(uint256)

#: Arguments of the contracts' custom errors that are amounts of wei: the message shows
#: them in ether (``StakeTooLow(sent=0.001 ETH, required=0.1 ETH)``); ``args`` keep wei.
AMOUNT_ARGS: dict[str, frozenset[str]] = {
    "StakeTooLow": frozenset({"sent", "required"}),
    "WrongStake": frozenset({"sent", "required"}),
    "BondMissing": frozenset({"required", "posted"}),
    "StakeTooLarge": frozenset({"stake"}),
}


def _format_arg(value: Any, abi_type: str, amount: bool = False) -> str:
    if amount:
        return format_eth(int(value))
    if abi_type == "address":
        return to_checksum_address(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


def decode_revert(data: bytes | str | None) -> tuple[str | None, tuple[Any, ...], str]:
    """Return ``(error name, args, human message)`` for revert ``data``."""
    if data is None:
        return None, (), "reverted without a reason"
    if isinstance(data, str):
        text = data[2:] if data.startswith("0x") else data
        try:
            data = bytes.fromhex(text)
        except ValueError:
            return None, (), str(data)
    if len(data) < 4:
        return None, (), "reverted without a reason"
    selector, body = data[:4], data[4:]
    if selector == ERROR_STRING:
        (reason,) = decode(["string"], body)
        return "Error", (reason,), str(reason)
    if selector == PANIC:
        (code,) = decode(["uint256"], body)
        return "Panic", (code,), f"Panic(0x{code:x})"
    known = error_selectors().get(selector)
    if known is None:
        return None, (), f"reverted with unknown error 0x{data.hex()}"
    name, types, names = known
    args = tuple(decode(types, body))
    amounts = AMOUNT_ARGS.get(name, frozenset())
    shown = ", ".join(
        f"{n}={_format_arg(v, t, n in amounts)}" if n else _format_arg(v, t)
        for n, v, t in zip(names, args, types, strict=True)
    )
    return name, args, f"{name}({shown})"
