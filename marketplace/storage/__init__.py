"""Content store: CIDs computed locally, blocks stored locally, over HTTP, or in kubo.

Every read is verified against its CID, whichever store served it. ``open_store`` turns
a configuration string into a store:

- ``local:PATH``          a :class:`LocalStore` directory
- ``memory:``             a :class:`MemoryStore` (single-process runs and tests)
- ``http(s)://HOST:PORT`` a read-only :class:`GatewayReader` (IPFS trustless gateway)
- ``kubo:http://HOST:5001`` a :class:`KuboStore` speaking kubo's RPC API
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marketplace.errors import ConfigError
from marketplace.storage.base import (
    DEFAULT_CHUNK_SIZE,
    MAX_BLOCK_SIZE,
    BlobManifest,
    ContentStore,
    get_blob,
    put_blob,
)
from marketplace.storage.cid import (
    ParsedCid,
    cid_for,
    cid_from_digest,
    digest_of,
    parse_cid,
    verify,
)
from marketplace.storage.local import LocalStore
from marketplace.storage.memory import MemoryStore

if TYPE_CHECKING:
    from marketplace.storage.gateway import (
        BackgroundServer,
        GatewayReader,
        make_gateway_app,
        serve_gateway,
        start_gateway,
    )
    from marketplace.storage.kubo import KuboStore
    from marketplace.storage.serialize import (
        decode_tensors,
        encode_tensors,
        flatten,
        shapes_of,
        unflatten,
    )

# Imported on first use: torch (serialize) takes seconds to import and the HTTP stacks
# (gateway, kubo) are not needed to compute a CID or read a local block.
_LAZY = {
    "BackgroundServer": "gateway",
    "GatewayReader": "gateway",
    "make_gateway_app": "gateway",
    "serve_gateway": "gateway",
    "start_gateway": "gateway",
    "KuboStore": "kubo",
    "decode_tensors": "serialize",
    "encode_tensors": "serialize",
    "flatten": "serialize",
    "shapes_of": "serialize",
    "unflatten": "serialize",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_BLOCK_SIZE",
    "BackgroundServer",
    "BlobManifest",
    "ContentStore",
    "GatewayReader",
    "KuboStore",
    "LocalStore",
    "MemoryStore",
    "ParsedCid",
    "cid_for",
    "cid_from_digest",
    "decode_tensors",
    "digest_of",
    "encode_tensors",
    "flatten",
    "get_blob",
    "make_gateway_app",
    "open_store",
    "parse_cid",
    "put_blob",
    "serve_gateway",
    "shapes_of",
    "start_gateway",
    "unflatten",
    "verify",
]


def open_store(spec: str, timeout: float = 30.0) -> ContentStore:
    """Map a store specification (see the module docstring) to a content store."""
    spec = spec.strip()
    if spec.startswith("local:"):
        path = spec[len("local:") :]
        if not path:
            raise ConfigError("store spec 'local:' needs a directory, e.g. local:./store")
        return LocalStore(Path(path).expanduser())
    if spec in ("memory", "memory:"):
        return MemoryStore()
    if spec.startswith("kubo:"):
        url = spec[len("kubo:") :]
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"store spec {spec!r} needs the kubo API URL, e.g. kubo:http://127.0.0.1:5001"
            )
        from marketplace.storage.kubo import KuboStore

        return KuboStore(url, timeout=timeout)
    if spec.startswith(("http://", "https://")):
        from marketplace.storage.gateway import GatewayReader

        return GatewayReader(spec, timeout=timeout)
    raise ConfigError(
        f"unknown store spec {spec!r}; use local:PATH, memory:, http://HOST:PORT "
        "(gateway, read-only) or kubo:http://HOST:5001"
    )
