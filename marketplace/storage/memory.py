"""An in-memory content store for single-process simulations and tests.

It behaves exactly like the other stores (same CIDs, verified reads, block limit)
and forgets everything when the process ends.
"""

from __future__ import annotations

import threading

from marketplace.errors import BlockNotFound
from marketplace.storage.base import ContentStore


class MemoryStore(ContentStore):
    """Blocks in a dict; thread-safe, nothing persisted."""

    def __init__(self) -> None:
        self._blocks: dict[str, bytes] = {}
        self._pins: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._blocks)} blocks)"

    def _put(self, cid: str, data: bytes) -> None:
        with self._lock:
            self._blocks[cid] = data

    def _get_unverified(self, cid: str) -> bytes:
        try:
            return self._blocks[cid]
        except KeyError:
            raise BlockNotFound(
                f"block {cid} is not in this in-memory store; put it first"
            ) from None

    def _has(self, cid: str) -> bool:
        return cid in self._blocks

    def _pin(self, cid: str) -> None:
        if cid not in self._blocks:
            raise BlockNotFound(f"cannot pin {cid}: it is not in this in-memory store")
        with self._lock:
            self._pins.add(cid)

    def is_pinned(self, cid: str) -> bool:
        """Whether ``cid`` has been pinned."""
        return cid in self._pins
