"""A source node's receipt counter: one nonce per answered query, never reused.

The ``SourceRegistry`` accepts each ``(sourceId, nonce)`` once and keeps only the highest
nonce and a 96-nonce window (see :mod:`drag.receipts`), so a source must

- never hand out the same nonce twice, even across restarts (two receipts with one nonce:
  only one could ever be used, and which one would be a race);
- never sign the same query id twice (two receipts for one query with two nonces would let
  a client count one query twice).

:class:`NonceLedger` keeps both facts in one append-only file, ``receipts.log`` in the
index folder: fixed-size records ``nonce (8 bytes, big-endian) || query id (32 bytes)``.
A record is written with one ``write`` on an ``O_APPEND`` descriptor and ``fsync``'ed before
the receipt is signed, so a crash either loses the whole record (the nonce was never
given out) or keeps it; a torn tail shorter than a record is cut off on the next start.
The next nonce is the last record's plus one; the seen query ids are loaded into a set
(40 bytes per query on disk, so a million queries cost 40 MB).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from marketplace.errors import DragError, QueryIdReused

log = logging.getLogger(__name__)

LEDGER_FILE = "receipts.log"
RECORD_SIZE = 40
MAX_NONCE = 2**64 - 1


class NonceLedger:
    """Durable, thread-safe issuer of receipt nonces for one source (see module doc)."""

    def __init__(self, folder: Path | str, fsync: bool = True) -> None:
        self.path = Path(folder) / LEDGER_FILE
        self.fsync = fsync
        self._lock = threading.Lock()
        self._seen: set[bytes] = set()
        self._last = 0
        self._load()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _load(self) -> None:
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        whole = len(data) - len(data) % RECORD_SIZE
        if whole != len(data):
            log.warning("cutting a torn %d-byte record off %s", len(data) - whole, self.path)
            with self.path.open("r+b") as f:
                f.truncate(whole)
        for offset in range(0, whole, RECORD_SIZE):
            nonce = int.from_bytes(data[offset : offset + 8], "big")
            self._seen.add(data[offset + 8 : offset + RECORD_SIZE])
            self._last = max(self._last, nonce)
        if whole:
            log.info(
                "nonce ledger %s: %d receipts, last %d", self.path, whole // RECORD_SIZE, self._last
            )

    @property
    def last(self) -> int:
        """The highest nonce given out so far (0 before the first)."""
        return self._last

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, query_id: object) -> bool:
        return query_id in self._seen

    def issue(self, query_id: bytes) -> int:
        """Record ``query_id`` and return its fresh nonce; :class:`DragError` on a repeat."""
        if len(query_id) != 32:
            raise DragError("query id must be 32 bytes")
        with self._lock:
            if query_id in self._seen:
                raise QueryIdReused(
                    "query id 0x" + query_id.hex() + " was already answered; send a fresh "
                    "random query id per query"
                )
            if self._last >= MAX_NONCE:
                raise DragError("receipt nonces are exhausted; register a new source id")
            nonce = self._last + 1
            os.write(self._fd, nonce.to_bytes(8, "big") + query_id)
            if self.fsync:
                os.fsync(self._fd)
            self._last = nonce
            self._seen.add(query_id)
            return nonce

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __del__(self) -> None:
        fd = getattr(self, "_fd", -1)
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass
