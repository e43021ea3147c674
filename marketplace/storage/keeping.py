"""A reader that keeps what it reads: how round blobs outlive the trainers that served them.

The aggregator fetches each committed update from its trainer's gateway through a
:class:`KeepingReader` over its own store: every block that verifies against its CID (the
blob's manifest and chunks, block for block, so the copy has the very CID committed
on-chain) is written to and pinned in the aggregator's store, which its gateway serves.
An auditor replaying the project after the trainers have gone finds the updates there.
A block already kept is read from the keeper, not fetched again.
"""

from __future__ import annotations

from marketplace.errors import StorageError
from marketplace.storage.base import ContentStore
from marketplace.storage.cid import parse_cid


class KeepingReader(ContentStore):
    """Reads ``source`` (verified), keeping and pinning each block read in ``keeper``."""

    def __init__(self, source: ContentStore, keeper: ContentStore) -> None:
        self.source = source
        self.keeper = keeper
        self.max_block_size = source.max_block_size

    def __repr__(self) -> str:
        return f"KeepingReader({self.source!r} -> {self.keeper!r})"

    def get(self, cid: str) -> bytes:
        parse_cid(cid)
        if self.keeper.has(cid):
            try:
                return self.keeper.get(cid)
            except StorageError:  # a damaged copy: fetch it again below
                pass
        data = self.source.get(cid)  # verified against the CID by the source's get
        self.keeper.put(data)
        self.keeper.pin(cid)
        return data

    def close(self) -> None:
        self.source.close()

    def _put(self, cid: str, data: bytes) -> None:
        raise StorageError("a KeepingReader is read-only: put blocks into its keeper")

    def _get_unverified(self, cid: str) -> bytes:
        return self.get(cid)

    def _has(self, cid: str) -> bool:
        return self.keeper.has(cid) or self.source.has(cid)

    def _pin(self, cid: str) -> None:
        self.keeper.pin(cid)
