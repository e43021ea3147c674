"""A content store on the local file system: one file per block.

Layout under ``root``::

    blocks/<2 hex chars of the digest>/<cid>    one file per raw block
    pins                                        pinned CIDs, one per line, sorted
    pins.lock                                   taken while the pin list is rewritten

Sharding by the digest (the CID string starts with the same ``bafkrei`` for every
block, so it cannot be used) keeps directories small, as kubo's flatfs does. Every
write goes to a temporary file in the target directory and is renamed into place, so a
crash never leaves a half-written block under a valid name; a block that was corrupted
anyway is caught by the verified read of :meth:`ContentStore.get`.

Several processes may share one store (a trainer node and its gateway, an aggregator and
an audit): blocks need no coordination (same CID, same bytes), but pinning rewrites the
pin list, so a pin holds an exclusive ``flock`` on ``pins.lock`` from the read to the
rename. Without it two processes pinning at once each wrote back the list they had read,
and one pin was lost.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path

from marketplace.errors import BlockNotFound, StorageError
from marketplace.storage.base import ContentStore
from marketplace.storage.cid import digest_of, parse_cid

logger = logging.getLogger(__name__)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LocalStore(ContentStore):
    """Blocks as files under ``root``; pins recorded in ``root/pins``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._blocks = self.root / "blocks"
        self._pins_file = self.root / "pins"
        self._pins_lock = self.root / "pins.lock"
        self._lock = threading.Lock()
        try:
            self._blocks.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the local store at {self.root} ({exc}); choose a writable directory"
            ) from exc

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def path_of(self, cid: str) -> Path:
        """File that holds (or would hold) the block ``cid``."""
        return self._blocks / digest_of(cid)[:1].hex() / cid

    def _put(self, cid: str, data: bytes) -> None:
        path = self.path_of(cid)
        try:
            if hashlib.sha256(path.read_bytes()).digest() == digest_of(cid):
                return  # content-addressed: already here, intact
            logger.warning("repairing corrupted block %s in %s", cid, self.root)
        except FileNotFoundError:
            pass
        atomic_write(path, data)

    def _get_unverified(self, cid: str) -> bytes:
        try:
            return self.path_of(cid).read_bytes()
        except FileNotFoundError:
            raise BlockNotFound(
                f"block {cid} is not in {self.root}; fetch it from a gateway or the trainer "
                "that published it"
            ) from None

    def _has(self, cid: str) -> bool:
        return self.path_of(cid).is_file()

    def _pin(self, cid: str) -> None:
        if not self._has(cid):
            raise BlockNotFound(f"cannot pin {cid}: it is not in {self.root}; put it first")
        with self._lock, self._pins_lock.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # other processes on this store (module doc)
            pins = self.pins()
            if cid in pins:
                return
            pins.add(cid)
            atomic_write(self._pins_file, "".join(f"{p}\n" for p in sorted(pins)).encode())

    def pins(self) -> set[str]:
        """The set of pinned CIDs (invalid lines, e.g. from hand edits, are skipped)."""
        try:
            lines = self._pins_file.read_text(encoding="ascii").split()
        except FileNotFoundError:
            return set()
        valid: set[str] = set()
        for line in lines:
            try:
                parse_cid(line)
            except StorageError:
                logger.warning("ignoring malformed line in %s: %r", self._pins_file, line)
                continue
            valid.add(line)
        return valid

    def is_pinned(self, cid: str) -> bool:
        """Whether ``cid`` has been pinned in this store."""
        parse_cid(cid)
        return cid in self.pins()
