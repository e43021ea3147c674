"""``KeepingReader``: what the aggregator reads from a trainer's gateway stays in its own
store, block for block (same CIDs, pinned), and only bytes that match their CID."""

from __future__ import annotations

import pytest

from marketplace.errors import CidMismatch, StorageError
from marketplace.storage import BlobManifest, MemoryStore, get_blob, put_blob
from marketplace.storage.keeping import KeepingReader


def test_every_block_read_is_kept_pinned_under_its_cid() -> None:
    trainer, aggregator = MemoryStore(), MemoryStore()
    data = bytes(range(256)) * 40
    cid = put_blob(trainer, data, chunk_size=1000)  # a manifest and 11 chunks
    assert get_blob(KeepingReader(trainer, aggregator), cid, 10**6) == data
    blocks = [cid, *BlobManifest.from_bytes(trainer.get(cid)).chunks]
    assert len(blocks) == 12
    assert all(aggregator.has(b) and aggregator.is_pinned(b) for b in blocks)

    trainer._blocks.clear()  # the trainer has gone: the copy serves the same CID
    assert get_blob(aggregator, cid, 10**6) == data
    assert get_blob(KeepingReader(trainer, aggregator), cid, 10**6) == data


def test_a_damaged_copy_is_fetched_again_and_bad_bytes_are_never_kept() -> None:
    trainer, aggregator = MemoryStore(), MemoryStore()
    cid = trainer.put(b"an update")
    reader = KeepingReader(trainer, aggregator)
    reader.get(cid)
    aggregator._blocks[cid] = b"rotten"
    assert reader.get(cid) == b"an update"
    assert aggregator.get(cid) == b"an update"

    liar, kept = MemoryStore(), MemoryStore()
    other = liar.put(b"honest bytes")
    liar._blocks[other] = b"forged bytes"  # a gateway that serves other bytes
    with pytest.raises(CidMismatch):
        KeepingReader(liar, kept).get(other)
    assert not kept.has(other)
    with pytest.raises(StorageError, match="read-only"):
        KeepingReader(liar, kept).put(b"x")
