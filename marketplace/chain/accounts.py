"""Who signs: a private key (``--key`` / ``LEDGERLEARN_KEY``) or a dev account index."""

from __future__ import annotations

import os

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address

from marketplace.chain.connection import Chain
from marketplace.errors import ConfigError, InvalidKey

KEY_ENV = "LEDGERLEARN_KEY"


def account_from_key(key: str) -> LocalAccount:
    """Parse a hex private key, failing with one line that does not echo the key."""
    text = key.strip()
    if not text.startswith("0x"):
        text = "0x" + text
    try:
        return Account.from_key(text)
    except Exception as exc:  # eth-keys raises several types for bad keys
        raise InvalidKey(
            "invalid private key: expected 32 bytes as 64 hex characters (0x-prefixed or not)"
        ) from exc


def chosen_key(key: str | None = None, index: int | None = None) -> str | None:
    """The private key that signs (``key``, else ``$LEDGERLEARN_KEY``), or None for dev
    account ``index``; both at once is refused, never settled silently for the key."""
    key = key or os.environ.get(KEY_ENV)
    if key and index is not None:
        raise ConfigError(
            f"--account {index} and --key (or {KEY_ENV}) name two signers: pass only one"
            + (f" (unset {KEY_ENV} to use --account)" if os.environ.get(KEY_ENV) else "")
        )
    return key or None


def resolve_account(chain: Chain, key: str | None = None, index: int | None = None) -> LocalAccount:
    """The signing account: ``key``, else ``$LEDGERLEARN_KEY``, else dev account ``index``
    (default 0) of a local chain."""
    chosen = chosen_key(key, index)
    if chosen:
        return account_from_key(chosen)
    return chain.dev_account(0 if index is None else index)


def parse_address(value: str, what: str = "address") -> str:
    """Checksum an address given by a user, or fail with one line naming the field."""
    if not is_address(value):
        raise ConfigError(f"malformed {what} {value!r}: expected 0x followed by 40 hex characters")
    return to_checksum_address(value)
