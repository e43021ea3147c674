"""Assertions shared by the chain tests (importable because pytest puts tests/ on the path)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from marketplace.errors import TransactionReverted


@contextmanager
def reverts(name: str) -> Iterator[None]:
    """Expect the block to revert with the custom error ``name`` (decoded by the chain layer)."""
    with pytest.raises(TransactionReverted) as caught:
        yield
    assert caught.value.error_name == name, f"expected {name}, got {caught.value}"
