"""A source node's receipt counter: one nonce per answered query, never reused.

The ``SourceRegistry`` accepts each receipt once per evaluator lane (its highest nonce and a
96-nonce window below it), and only nonces at most ``MAX_NONCE_STEP`` (2^20) above the
highest nonce of the source applied so far (see the contract's notes), so a source must

- issue nonces strictly increasing and within that bound: a receipt beyond it is refused
  by the registry, so signing one would only look like dodging feedback. When the
  ledger has a ``ceiling`` (``source serve`` gives it one read from the chain: the
  source's highest applied nonce + ``MAX_NONCE_STEP``) it refuses to issue past it with
  :class:`NonceBoundReached` (HTTP 503), after re-reading the ceiling once: the bound
  moves up as feedback lands, so it is read again only when the cached value is reached
  (once per ~a million queries), never per query;

- never hand out the same nonce twice, even across restarts and crashes (two receipts with
  one nonce: only one could ever be used, and which one would be a race);
- not sign the same query id twice (a client that resends a query gets 409, not a second
  receipt).

:class:`NonceLedger` keeps both facts in its folder (the index folder of the node):

- ``receipts.log``: fixed-size records ``nonce (8 bytes, big-endian) || query id (32
  bytes)``, one ``write`` on an ``O_APPEND`` descriptor per answered query; a torn tail
  shorter than a record is cut off on the next start. The seen query ids are loaded into a
  set (40 bytes per query on disk, so a million queries cost 40 MB).
- ``receipts.reserved``: the highest nonce reserved so far (8 bytes, big-endian). The
  ledger holds a POSIX lock on it, so a second source process on the same folder (which
  would hand out the same nonces) is refused with a clear error.

Durability is paid per block of nonces, not per query: before it hands out a nonce above
the reservation, the ledger reserves the next ``block`` nonces and ``fsync``s the
reservation (and the log). A crash then can only lose nonces that were reserved and never
handed out; on restart the counter continues above the reservation, which is safe because
the contract needs nonces unique and increasing, not dense. ``block`` defaults to 64, below
the contract's 96-nonce lane window (``SourceRegistry.WINDOW``), so the jump a crash causes
leaves receipts signed just before it inside an evaluator's window. A clean :meth:`close` gives the
unused rest of the block back. An ``fsync`` per query cost about as much as the rest of the
request (0.1 ms on a quiet disk, milliseconds under load) and serialised the node on the
disk.

Query ids are written per query without ``fsync``: they survive a crash of the process (the
write is in the kernel) but the last block's may be lost with the machine. That only lets a
client obtain a second receipt for a recent query id, which it could get anyway by sending
a fresh query id with the same question; replay protection on-chain rests on the nonces.

For the same reason the ledger remembers only the most recent ``keep`` query ids (100,000 by
default, 4 MB on disk): once the log holds twice that many records it is compacted to the
newest ``keep`` (written to a temporary file, ``fsync``ed and renamed over the log, so a crash
leaves either log whole), and the oldest ids are forgotten. Without compaction a source that
ran for months kept every query id on disk and in memory. The nonce counter is not affected:
it continues from the reservation and the highest nonce kept.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from marketplace.errors import ConfigError, DragError, QueryIdReused

log = logging.getLogger(__name__)

LEDGER_FILE = "receipts.log"
RESERVED_FILE = "receipts.reserved"
RECORD_SIZE = 40
MAX_NONCE = 2**64 - 1
RESERVE_BLOCK = 64
KEEP_QUERY_IDS = 100_000


class NonceBoundReached(DragError):
    """The next nonce would pass the registry's step bound: the registry would refuse the
    receipt, so the node stops signing until feedback lands (or the bound is re-read)."""


class NonceLedger:
    """Durable, thread-safe issuer of receipt nonces for one source (see module doc).

    ``fsync=False`` skips every ``fsync`` (tests and simulations on throw-away folders).
    ``keep`` is how many recent query ids are remembered (module doc). ``ceiling``, when
    given, returns the highest nonce the registry accepts now (module doc).
    """

    def __init__(
        self,
        folder: Path | str,
        fsync: bool = True,
        block: int = RESERVE_BLOCK,
        keep: int = KEEP_QUERY_IDS,
        ceiling: Callable[[], int] | None = None,
    ) -> None:
        if block < 1:
            raise ConfigError(f"block={block}; reserve at least one nonce at a time")
        if keep < 1:
            raise ConfigError(f"keep={keep}; remember at least one query id")
        self.path = Path(folder) / LEDGER_FILE
        self.reserved_path = Path(folder) / RESERVED_FILE
        self.fsync = fsync
        self.block = block
        self.keep = keep
        self._lock = threading.Lock()
        self._ceiling_fn = ceiling
        self._ceiling: int | None = None
        self._seen: dict[bytes, int] = {}  # query id -> nonce, oldest first
        self._last = 0
        self._fd = self._reserved_fd = -1
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.reserved_path.exists()
        self._reserved_fd = os.open(self.reserved_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # a POSIX record lock: held per process, released when the process dies
            fcntl.lockf(self._reserved_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._reserved_fd)
            self._reserved_fd = -1
            raise DragError(
                f"another process is issuing receipts from {self.path.parent}: two source "
                "nodes on one index folder would reuse nonces; stop it or serve another folder"
            ) from None
        self._load()
        if len(self._seen) > self.keep:
            self._compact()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if created and self.fsync:
            _fsync_dir(self.path.parent)
        self._reserved = self._last

    def _load(self) -> None:
        # read through the locked descriptor: closing any other descriptor of this file
        # would release the POSIX lock
        raw = os.pread(self._reserved_fd, 8, 0)
        if len(raw) == 8:
            self._last = int.from_bytes(raw, "big")
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
            self._seen[data[offset + 8 : offset + RECORD_SIZE]] = nonce
            self._last = max(self._last, nonce)
        if whole:
            log.info(
                "nonce ledger %s: %d receipts, next nonce %d",
                self.path,
                whole // RECORD_SIZE,
                self._last + 1,
            )

    def set_ceiling(self, ceiling: Callable[[], int] | None) -> None:
        """Bound issued nonces by ``ceiling()`` (re-read only when the cached bound is hit)."""
        with self._lock:
            self._ceiling_fn = ceiling
            self._ceiling = None

    def _check_ceiling(self, nonce: int) -> None:
        if self._ceiling_fn is None or (self._ceiling is not None and nonce <= self._ceiling):
            return
        self._ceiling = int(self._ceiling_fn())
        if nonce > self._ceiling:
            raise NonceBoundReached(
                f"nonce {nonce} would pass the registry's bound {self._ceiling} (the source's "
                "highest applied nonce + MAX_NONCE_STEP): the registry would refuse its "
                "receipt; answering resumes once feedback for this source lands"
            )

    @property
    def last(self) -> int:
        """The highest nonce given out or skipped so far (0 before the first)."""
        return self._last

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, query_id: object) -> bool:
        return query_id in self._seen

    def _compact(self) -> None:
        """Keep the newest ``keep`` records: a new log written beside the old one, made
        durable, then renamed over it (a crash leaves one whole log or the other)."""
        newest = list(self._seen.items())[-self.keep :]
        self._seen = dict(newest)
        tmp = self.path.with_name(self.path.name + ".compact")
        with tmp.open("wb") as f:
            f.write(b"".join(n.to_bytes(8, "big") + q for q, n in newest))
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())
        os.replace(tmp, self.path)
        if self.fsync:
            _fsync_dir(self.path.parent)
        log.info("nonce ledger %s compacted to the newest %d query ids", self.path, len(newest))
        if self._fd >= 0:  # reopen: the old descriptor points at the replaced file
            os.close(self._fd)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND, 0o600)

    def _write_reserved(self, value: int) -> None:
        # 8 bytes at offset 0 sit in one disk sector: the write is not torn
        os.pwrite(self._reserved_fd, value.to_bytes(8, "big"), 0)
        if self.fsync:
            os.fsync(self._fd)
            os.fsync(self._reserved_fd)
        self._reserved = value

    def issue(self, query_id: bytes) -> int:
        """Record ``query_id`` and return its fresh nonce; :class:`DragError` on a repeat."""
        if len(query_id) != 32:
            raise DragError("query id must be 32 bytes")
        with self._lock:
            if self._fd < 0:
                raise DragError("the nonce ledger is closed; open it again")
            if query_id in self._seen:
                raise QueryIdReused(
                    "query id 0x" + query_id.hex() + " was already answered; send a fresh "
                    "random query id per query"
                )
            if self._last >= MAX_NONCE:
                raise DragError("receipt nonces are exhausted; register a new source id")
            nonce = self._last + 1
            self._check_ceiling(nonce)
            if nonce > self._reserved:
                self._write_reserved(min(self._reserved + self.block, MAX_NONCE))
            os.write(self._fd, nonce.to_bytes(8, "big") + query_id)
            self._last = nonce
            self._seen[query_id] = nonce
            if len(self._seen) >= 2 * self.keep:
                self._compact()
            return nonce

    def close(self) -> None:
        """Give back the unused reserved nonces (durably) and close the files."""
        with self._lock:
            if self._fd >= 0:
                if self._reserved > self._last:
                    self._write_reserved(self._last)
                os.close(self._fd)
                os.close(self._reserved_fd)
                self._fd = self._reserved_fd = -1

    def __del__(self) -> None:
        # no give-back here: an unclosed ledger behaves as after a crash (it skips the rest)
        for name in ("_fd", "_reserved_fd"):
            fd = getattr(self, name, -1)
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass


def _fsync_dir(folder: Path) -> None:
    """Make a new file's directory entry durable (POSIX needs an fsync of the folder)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
