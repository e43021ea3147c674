"""Local and in-memory stores, and chunked blobs on top of any store."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.errors import BlobTooLarge, BlockNotFound, CidMismatch, InvalidCid, StorageError
from marketplace.storage import (
    MAX_BLOCK_SIZE,
    BlobManifest,
    ContentStore,
    LocalStore,
    MemoryStore,
    cid_for,
    get_blob,
    put_blob,
)


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ContentStore:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    return MemoryStore()


class CountingStore(MemoryStore):
    """A memory store that counts block reads, to prove what get_blob downloads."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def _get_unverified(self, cid: str) -> bytes:
        self.reads += 1
        return super()._get_unverified(cid)


def test_put_get_has_pin(store: ContentStore) -> None:
    cid = store.put(b"hello world")
    assert cid == "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    assert store.has(cid)
    assert store.get(cid) == b"hello world"
    assert store.put(b"hello world") == cid  # idempotent
    store.pin(cid)
    assert store.is_pinned(cid)  # type: ignore[attr-defined]


def test_unknown_block(store: ContentStore) -> None:
    cid = cid_for(b"never stored")
    assert not store.has(cid)
    with pytest.raises(BlockNotFound, match=cid):
        store.get(cid)
    with pytest.raises(BlockNotFound):
        store.pin(cid)


def test_malformed_cid_is_refused_before_io(store: ContentStore) -> None:
    for call in (store.get, store.has, store.pin):
        with pytest.raises(InvalidCid):
            call("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")


def test_block_limit(store: ContentStore) -> None:
    assert cid_for(bytes(MAX_BLOCK_SIZE)) == store.put(bytes(MAX_BLOCK_SIZE))
    with pytest.raises(BlobTooLarge, match="put_blob"):
        store.put(bytes(MAX_BLOCK_SIZE + 1))


def test_local_store_layout_is_sharded_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    cids = [store.put(bytes([i]) * 10) for i in range(20)]
    for cid in cids:
        path = store.path_of(cid)
        assert path.is_file()
        assert path.parent.name == hashlib.sha256(store.get(cid)).hexdigest()[:2]
    assert not list(tmp_path.rglob(".tmp-*"))
    assert len({store.path_of(c).parent for c in cids}) > 1


def test_local_pins_survive_a_restart(tmp_path: Path) -> None:
    first = LocalStore(tmp_path)
    a, b = first.put(b"a"), first.put(b"b")
    first.pin(b)
    first.pin(a)
    first.pin(a)
    second = LocalStore(tmp_path)
    assert second.pins() == {a, b}
    assert second.get(a) == b"a"
    assert (tmp_path / "pins").read_text().split() == sorted([a, b])


def _pin_many(root: str, tag: str, count: int, start: Any) -> None:
    store = LocalStore(root)
    cids = [store.put(f"{tag}-{k}".encode()) for k in range(count)]
    start.wait()
    for cid in cids:
        store.pin(cid)


def test_local_pins_from_two_processes_are_all_kept(tmp_path: Path) -> None:
    """A trainer node and its gateway (or an aggregator and an audit) may pin into one
    store at once; each pin rewrites the list, so without the file lock one is lost."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    workers = [ctx.Process(target=_pin_many, args=(str(tmp_path), tag, 60, start)) for tag in "ab"]
    for w in workers:
        w.start()
    start.set()
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    expected = {cid_for(f"{tag}-{k}".encode()) for tag in "ab" for k in range(60)}
    assert LocalStore(tmp_path).pins() == expected


def test_tampered_local_block_is_detected_and_repaired(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    cid = store.put(b"model update bytes")
    store.path_of(cid).write_bytes(b"model update bytez")
    with pytest.raises(CidMismatch, match=cid):
        store.get(cid)
    assert store.put(b"model update bytes") == cid  # writing it again repairs the file
    assert store.get(cid) == b"model update bytes"


_ROUND_TRIP_DIR = tempfile.TemporaryDirectory(prefix="ledgerlearn-storage-test-")


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes_round_trip_through_local_store(data: bytes) -> None:
    store = LocalStore(_ROUND_TRIP_DIR.name)
    cid = store.put(data)
    assert cid == cid_for(data)
    assert store.get(cid) == data


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=3000), st.integers(min_value=1, max_value=700))
def test_chunked_blob_round_trip(data: bytes, chunk_size: int) -> None:
    store = MemoryStore()
    cid = put_blob(store, data, chunk_size=chunk_size)
    assert get_blob(store, cid, max_size=len(data)) == data
    manifest = BlobManifest.from_bytes(store.get(cid), cid)
    assert manifest.size == len(data)
    assert len(manifest.chunks) == -(-len(data) // chunk_size)
    assert put_blob(store, data, chunk_size=chunk_size) == cid  # deterministic


def test_multi_block_blob_in_local_store(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    data = hashlib.sha256(b"seed").digest() * (3 * MAX_BLOCK_SIZE // 32 + 5)
    cid = put_blob(store, data, pin=True)
    manifest = json.loads(store.get(cid))
    assert manifest["kind"] == "ledgerlearn-chunked/v1"
    assert manifest["size"] == len(data)
    assert len(manifest["chunks"]) == 4
    assert store.pins() == {cid, *manifest["chunks"]}
    assert get_blob(store, cid, max_size=len(data)) == data


def test_manifest_is_canonical_json() -> None:
    chunk = cid_for(b"abc")
    encoded = BlobManifest(size=3, chunks=(chunk,)).to_bytes()
    assert (
        encoded
        == ('{"chunks":["' + chunk + '"],"kind":"ledgerlearn-chunked/v1","size":3}').encode()
    )


def test_oversized_blob_is_refused_after_reading_only_the_manifest() -> None:
    store = CountingStore()
    cid = put_blob(store, bytes(10_000), chunk_size=1000)
    store.reads = 0
    with pytest.raises(BlobTooLarge, match="10000 bytes, over the limit of 9999"):
        get_blob(store, cid, max_size=9_999)
    assert store.reads == 1


def test_a_plain_block_is_not_a_blob() -> None:
    store = MemoryStore()
    cid = store.put(b"just bytes")
    with pytest.raises(StorageError, match="not a ledgerlearn-chunked/v1 manifest"):
        get_blob(store, cid, max_size=100)


@pytest.fixture()
def chunk_store() -> Iterator[tuple[MemoryStore, list[str]]]:
    store = MemoryStore()
    yield store, [store.put(b"abcd"), store.put(b"efgh")]


def _manifest_cid(store: MemoryStore, doc: object) -> str:
    return store.put(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())


def test_manifest_that_understates_its_size_is_caught(
    chunk_store: tuple[MemoryStore, list[str]],
) -> None:
    store, chunks = chunk_store
    kind = "ledgerlearn-chunked/v1"
    cid = _manifest_cid(store, {"kind": kind, "size": 5, "chunks": chunks})
    with pytest.raises(StorageError, match="do not add up"):
        get_blob(store, cid, max_size=100)
    cid = _manifest_cid(store, {"kind": kind, "size": 9, "chunks": chunks})
    with pytest.raises(StorageError, match="hold 8 bytes"):
        get_blob(store, cid, max_size=100)


@pytest.mark.parametrize(
    "doc",
    [
        {"kind": "other/v1", "size": 0, "chunks": []},
        {"kind": "ledgerlearn-chunked/v1", "size": -1, "chunks": []},
        {"kind": "ledgerlearn-chunked/v1", "size": True, "chunks": []},
        {"kind": "ledgerlearn-chunked/v1", "size": 3, "chunks": []},
        {"kind": "ledgerlearn-chunked/v1", "size": 0, "chunks": [1]},
        {"kind": "ledgerlearn-chunked/v1", "size": 0},
        [1, 2, 3],
    ],
)
def test_malformed_manifests_are_refused(doc: object) -> None:
    store = MemoryStore()
    cid = _manifest_cid(store, doc)
    with pytest.raises(StorageError, match="manifest"):
        get_blob(store, cid, max_size=100)


def test_non_canonical_manifest_is_refused() -> None:
    store = MemoryStore()
    cid = store.put(b'{"kind": "ledgerlearn-chunked/v1", "size": 0, "chunks": []}')
    with pytest.raises(StorageError, match="canonical"):
        get_blob(store, cid, max_size=100)


def test_manifest_with_a_bad_chunk_cid_is_refused() -> None:
    store = MemoryStore()
    doc = {"kind": "ledgerlearn-chunked/v1", "size": 1, "chunks": ["Qmabc"]}
    with pytest.raises(InvalidCid):
        get_blob(store, _manifest_cid(store, doc), max_size=100)


def test_empty_blob() -> None:
    store = MemoryStore()
    cid = put_blob(store, b"")
    assert get_blob(store, cid, max_size=0) == b""


@pytest.mark.parametrize("chunk_size", [0, -1, MAX_BLOCK_SIZE + 1])
def test_chunk_size_must_fit_a_block(chunk_size: int) -> None:
    with pytest.raises(StorageError, match="chunk_size"):
        put_blob(MemoryStore(), b"data", chunk_size=chunk_size)
