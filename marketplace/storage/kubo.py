"""A content store backed by an IPFS kubo daemon, through its HTTP RPC API.

``ipfshttpclient`` is abandoned and refuses kubo >= 0.8, so this speaks the RPC API
(https://docs.ipfs.tech/reference/kubo/rpc/) directly with httpx. Every RPC call is a
``POST /api/v0/<command>?arg=...``; errors come back as HTTP 500 with a JSON body
``{"Message": ..., "Code": ..., "Type": "error"}``.

kubo computes the CID of a block itself; this client computes it too and refuses a
daemon whose answer differs, and reads are verified like every other store's.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from marketplace.errors import (
    BlobTooLarge,
    BlockNotFound,
    CidMismatch,
    FetchRefused,
    MalformedInput,
    StorageError,
)
from marketplace.storage.base import MAX_BLOCK_SIZE, ContentStore
from marketplace.untrusted.parse import loads
from marketplace.untrusted.reader import Fetched, ReadLimits, new_client, read

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "http://127.0.0.1:5001"
#: Largest answer read from a kubo RPC call other than ``block/get`` (small JSON objects).
MAX_RPC_ANSWER_BYTES = 1 << 20


class KuboStore(ContentStore):
    """Blocks stored in (and fetched through) a kubo daemon.

    ``offline=True`` makes :meth:`get` answer only from the daemon's local repository
    instead of searching the IPFS network until the timeout. :meth:`has` is always
    local: it asks whether the daemon holds the block, not whether the network does.
    """

    def __init__(
        self,
        api_url: str = DEFAULT_API_URL,
        timeout: float = 60.0,
        offline: bool = False,
        max_block_size: int = MAX_BLOCK_SIZE,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.offline = offline
        self.max_block_size = max_block_size
        self._timeout = timeout
        self._client = new_client(f"{self.api_url}/api/v0", timeout=timeout)

    def __repr__(self) -> str:
        return f"KuboStore({self.api_url!r})"

    def close(self) -> None:
        self._client.close()

    def _put(self, cid: str, data: bytes) -> None:
        params = {"cid-codec": "raw", "mhtype": "sha2-256", "pin": "true"}
        files = {"file": ("block", data, "application/octet-stream")}
        reply = self._json(self._call("block/put", params, files=files), "block/put")
        key = reply.get("Key")
        if key != cid:
            raise CidMismatch(
                f"kubo at {self.api_url} stored the block as {key!r} but its bytes hash to "
                f"{cid}; check the daemon's version and configuration"
            )

    def _get_unverified(self, cid: str) -> bytes:
        params = self._params(cid, offline=self.offline)
        limits = ReadLimits(self.max_block_size, self._timeout, read_timeout_s=self._timeout)
        try:
            response = read(self._client, "POST", "/block/get", limits, params=params)
        except BlobTooLarge as exc:
            raise BlobTooLarge(
                f"kubo at {self.api_url} sent more than {self.max_block_size} "
                f"bytes for block {cid}; refusing it"
            ) from exc
        except FetchRefused as exc:
            if exc.kind != "timeout":
                raise
            raise BlockNotFound(
                f"kubo at {self.api_url} did not find {cid} within {self._timeout:g} s; "
                "check that a peer provides it or raise the timeout"
            ) from exc
        except httpx.TimeoutException as exc:
            raise BlockNotFound(
                f"kubo at {self.api_url} did not find {cid} within {self._timeout:g} s; "
                "check that a peer provides it or raise the timeout"
            ) from exc
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        if response.status != 200:
            self._raise_for(response, "block/get", cid)
        return response.body

    def _has(self, cid: str) -> bool:
        try:
            self._call("block/stat", self._params(cid, offline=True))
        except BlockNotFound:
            return False
        return True

    def _pin(self, cid: str) -> None:
        reply = self._json(self._call("pin/add", self._params(cid, offline=True)), "pin/add")
        if cid not in reply.get("Pins", []):
            raise StorageError(
                f"kubo at {self.api_url} did not confirm the pin of {cid} (answer: {reply}); "
                "check the daemon's log"
            )

    @staticmethod
    def _params(cid: str, offline: bool) -> dict[str, str]:
        params = {"arg": cid}
        if offline:
            params["offline"] = "true"
        return params

    def _call(
        self, command: str, params: dict[str, str], files: dict[str, Any] | None = None
    ) -> Fetched:
        limits = ReadLimits(MAX_RPC_ANSWER_BYTES, self._timeout, read_timeout_s=self._timeout)
        try:
            response = read(self._client, "POST", f"/{command}", limits, params=params, files=files)
        except httpx.TimeoutException as exc:
            raise StorageError(
                f"kubo at {self.api_url} timed out on {command}; raise the timeout"
            ) from exc
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        if response.status != 200:
            self._raise_for(response, command, params.get("arg"))
        return response

    def _raise_for(self, response: Fetched, command: str, cid: str | None) -> None:
        try:
            doc = loads(response.body, max_bytes=MAX_RPC_ANSWER_BYTES, what="kubo error")
            message = str(doc.get("Message", "")) if isinstance(doc, dict) else response.text
        except MalformedInput:
            message = response.text
        if cid is not None and "not found" in message.lower():
            raise BlockNotFound(f"kubo at {self.api_url} does not have {cid}: {message}")
        raise StorageError(
            f"kubo at {self.api_url} failed {command} (HTTP {response.status}: "
            f"{message or 'no message'}); check the daemon's log"
        )

    def _json(self, response: Fetched, command: str) -> dict[str, Any]:
        try:
            reply = loads(response.body, max_bytes=MAX_RPC_ANSWER_BYTES, what=f"kubo {command}")
        except MalformedInput as exc:
            raise StorageError(
                f"kubo at {self.api_url} answered {command} with non-JSON; is it a kubo API?"
            ) from exc
        if not isinstance(reply, dict):
            raise StorageError(f"kubo at {self.api_url} answered {command} unexpectedly")
        return reply

    def _unreachable(self, exc: httpx.HTTPError) -> StorageError:
        return StorageError(
            f"kubo RPC API unreachable at {self.api_url} ({type(exc).__name__}); "
            "start it with `ipfs daemon` or fix the kubo: URL"
        )
