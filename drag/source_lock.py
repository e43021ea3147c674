"""One serving process per registered source on a machine.

Two ``source serve`` processes for one source id sign receipts with one key from two
nonce ledgers (each index folder has its own, :mod:`drag.nonces`), so sooner or later
they sign two different receipts with the same nonce: the registry treats that as
equivocation and anyone holding both receipts can take the source's stake
(``reportEquivocation``). The ledger's own lock only catches two servers on one index
folder; this lock is per (chain, registry, source id) under ``$LEDGERLEARN_HOME``, so a
second server for the same source is refused whatever folder it serves.

It is a BSD ``flock`` on ``drag/serving/<chain>-<registry>-<source>.lock``: held by the
open file, released by the kernel when the process dies (no stale lock after a crash),
and it conflicts even between two descriptors of one process. The file holds the pid of
the holder, for the error message only. A server on another machine with its own home is
not seen: that is the operator's own key on two machines, which no local check can stop.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from marketplace.errors import DragError


def lock_path(home: Path, chain_id: int, registry: str, source_id: int) -> Path:
    """Where the serving lock of one source lives under ``home``."""
    return home / "drag" / "serving" / f"{chain_id}-{registry.lower()}-{source_id}.lock"


class SourceLock:
    """Held while this process serves ``source_id``; :meth:`acquire` refuses a second one."""

    def __init__(self, home: Path, chain_id: int, registry: str, source_id: int) -> None:
        self.path = lock_path(home, chain_id, registry, source_id)
        self.source_id = source_id
        self._fd = -1

    def acquire(self) -> SourceLock:
        """Take the lock or raise :class:`DragError` naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise DragError(
                f"source {self.source_id} is already served by another process (pid {holder}, "
                f"lock {self.path}): two servers of one source would sign two receipts with "
                "one nonce and forfeit its stake; stop that server first, or serve another "
                "source with --source-id"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Let another process serve the source (closing the file drops the lock)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> SourceLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
