"""The one content-store interface, and chunked blobs built on top of it.

A :class:`ContentStore` holds raw blocks addressed by their CID (see :mod:`.cid`). The
checks every store needs live here, once: a block is at most :data:`MAX_BLOCK_SIZE`
bytes, a CID is validated before any I/O, and :meth:`ContentStore.get` always verifies
the bytes against the CID, whatever backend produced them. Backends only implement the
underscored primitives.

Data larger than one block (a model update of a few MB) is a *blob*: its chunks are raw
blocks, and a manifest block lists them::

    {"chunks":["bafkrei...",...],"kind":"ledgerlearn-chunked/v1","size":N}

The manifest is canonical JSON (sorted keys, no spaces, ASCII), so the same bytes always
give the same blob CID, and it is itself a raw block, so any IPFS node stores it. A
blob is always written with a manifest, even when it fits in one chunk: a reader then
never has to guess whether a block is data or a manifest.
"""

from __future__ import annotations

import json
import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from marketplace.errors import BlobTooLarge, FetchRefused, MalformedInput, StorageError
from marketplace.storage.cid import cid_for, parse_cid, verify
from marketplace.untrusted.parse import loads

logger = logging.getLogger(__name__)

#: Largest block IPFS nodes exchange (kubo's soft block limit; bitswap refuses larger).
MAX_BLOCK_SIZE = 1 << 20
#: Default chunk size of :func:`put_blob`: as large as a block may be.
DEFAULT_CHUNK_SIZE = 1 << 20
#: ``kind`` field of a chunked-blob manifest.
MANIFEST_KIND = "ledgerlearn-chunked/v1"


class ContentStore(ABC):
    """A store of raw blocks addressed by CID; reads are always verified.

    Subclasses implement ``_put``, ``_get_unverified``, ``_has`` and ``_pin`` and may
    assume the CID they receive is valid.
    """

    max_block_size: int = MAX_BLOCK_SIZE

    def put(self, data: bytes) -> str:
        """Store one block and return its CID (the same CID IPFS computes)."""
        data = bytes(data)
        if len(data) > self.max_block_size:
            raise BlobTooLarge(
                f"block of {len(data)} bytes exceeds the {self.max_block_size}-byte block "
                "limit; store large data with put_blob, which chunks it"
            )
        cid = cid_for(data)
        self._put(cid, data)
        logger.debug("stored block %s (%d bytes) in %s", cid, len(data), self)
        return cid

    def get(self, cid: str) -> bytes:
        """Fetch the block ``cid``; raises ``CidMismatch`` if the bytes do not match it."""
        parse_cid(cid)
        data = self._get_unverified(cid)
        verify(cid, data)
        return data

    def has(self, cid: str) -> bool:
        """Whether this store holds ``cid`` (without fetching or verifying it)."""
        parse_cid(cid)
        return self._has(cid)

    def pin(self, cid: str) -> None:
        """Keep ``cid`` from garbage collection; raises ``BlockNotFound`` if absent."""
        parse_cid(cid)
        self._pin(cid)

    def close(self) -> None:
        """Release connections or files; the default store holds none."""
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @abstractmethod
    def _put(self, cid: str, data: bytes) -> None:
        """Write ``data`` under ``cid`` (already computed from ``data``)."""

    @abstractmethod
    def _get_unverified(self, cid: str) -> bytes:
        """Return the stored bytes or raise ``BlockNotFound``; the caller verifies."""

    @abstractmethod
    def _has(self, cid: str) -> bool:
        """Whether the block is present."""

    @abstractmethod
    def _pin(self, cid: str) -> None:
        """Record a pin for a present block."""


def canonical_json(obj: Any) -> bytes:
    """The one canonical JSON encoding of signed or content-addressed headers (sorted keys,
    no spaces, ASCII): equal documents give equal bytes, hence equal CIDs and digests."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass(frozen=True)
class BlobManifest:
    """The manifest of a chunked blob: total size and chunk CIDs in order."""

    size: int
    chunks: tuple[str, ...]

    def to_bytes(self) -> bytes:
        """Canonical JSON encoding: one manifest, one byte string, one CID."""
        return canonical_json(
            {"kind": MANIFEST_KIND, "size": self.size, "chunks": list(self.chunks)}
        )

    @classmethod
    def from_bytes(cls, data: bytes, cid: str = "blob") -> BlobManifest:
        """Parse and strictly validate a manifest block (canonical form required)."""
        hint = f"{cid} is not a {MANIFEST_KIND} manifest; pass a CID returned by put_blob"
        if not bytes(data).isascii():
            raise StorageError(f"{hint} (not ASCII)")
        try:
            doc = loads(data, max_bytes=MAX_BLOCK_SIZE, max_depth=2, what="manifest")
        except MalformedInput as exc:
            raise StorageError(f"{hint} ({exc})") from None
        if not isinstance(doc, dict) or set(doc) != {"kind", "size", "chunks"}:
            raise StorageError(f"{hint} (wrong fields)")
        if doc["kind"] != MANIFEST_KIND:
            raise StorageError(f"{hint} (kind is {doc['kind']!r})")
        size, chunks = doc["size"], doc["chunks"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise StorageError(f"{hint} (size must be a non-negative integer)")
        if not isinstance(chunks, list) or not all(isinstance(c, str) for c in chunks):
            raise StorageError(f"{hint} (chunks must be a list of CID strings)")
        for chunk in chunks:
            parse_cid(chunk)
        if len(chunks) > size or (size > 0 and not chunks):
            raise StorageError(f"{hint} ({len(chunks)} chunks cannot hold {size} bytes)")
        manifest = cls(size=size, chunks=tuple(chunks))
        if manifest.to_bytes() != bytes(data):
            raise StorageError(f"{hint} (not canonical JSON)")
        return manifest


def put_blob(
    store: ContentStore,
    data: bytes,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    pin: bool = False,
) -> str:
    """Store ``data`` of any size as chunks plus a manifest; return the manifest's CID.

    With ``pin=True`` every chunk and the manifest are pinned (a raw manifest has no
    IPLD links, so pinning it alone would not protect the chunks).
    """
    if not 0 < chunk_size <= store.max_block_size:
        raise StorageError(
            f"chunk_size {chunk_size} must be between 1 and the block limit {store.max_block_size}"
        )
    view = memoryview(bytes(data))
    chunks = tuple(
        store.put(bytes(view[i : i + chunk_size])) for i in range(0, len(view), chunk_size)
    )
    manifest = BlobManifest(size=len(view), chunks=chunks).to_bytes()
    if len(manifest) > store.max_block_size:
        raise BlobTooLarge(
            f"blob of {len(view)} bytes needs a {len(manifest)}-byte manifest, over the "
            "block limit; use a larger chunk_size"
        )
    cid = store.put(manifest)
    if pin:
        for chunk in (*chunks, cid):
            store.pin(chunk)
    logger.debug("stored blob %s: %d bytes in %d chunks", cid, len(view), len(chunks))
    return cid


def get_blob(
    store: ContentStore, cid: str, max_size: int, deadline_s: float | None = None
) -> bytes:
    """Fetch and verify the blob ``cid``, refusing it if it is over ``max_size`` bytes.

    The size comes from the manifest, so an oversized blob is refused after reading one
    block, and a manifest that lies about its size is caught as soon as the chunks
    exceed it. ``deadline_s`` bounds the whole blob (each block fetch has its own
    deadline too), so a peer cannot stretch a many-chunk blob to many deadlines.
    """
    start = time.monotonic()
    manifest = BlobManifest.from_bytes(store.get(cid), cid)
    if manifest.size > max_size:
        raise BlobTooLarge(
            f"blob {cid} is {manifest.size} bytes, over the limit of {max_size}; "
            "refusing to download it (raise the limit only if you trust the sender)"
        )
    parts: list[bytes] = []
    total = 0
    for chunk_cid in manifest.chunks:
        if deadline_s is not None and time.monotonic() - start > deadline_s:
            raise FetchRefused(
                f"blob {cid} was not fetched within {deadline_s:g} s; giving up", "timeout"
            )
        chunk = store.get(chunk_cid)
        total += len(chunk)
        if not chunk or total > manifest.size:
            raise StorageError(
                f"blob {cid}: chunks do not add up to the declared {manifest.size} bytes; "
                "the manifest is corrupt, ask the sender to store it again"
            )
        parts.append(chunk)
    if total != manifest.size:
        raise StorageError(
            f"blob {cid}: chunks hold {total} bytes but the manifest declares "
            f"{manifest.size}; the manifest is corrupt, ask the sender to store it again"
        )
    return b"".join(parts)
