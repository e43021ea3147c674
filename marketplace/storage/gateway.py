"""The IPFS Trustless Gateway protocol: a verifying reader and a small server.

A trainer node serves its blocks with :func:`serve_gateway` (or :func:`start_gateway` in
a background thread); an aggregator or auditor reads them with :class:`GatewayReader`,
which also works against any public IPFS gateway that supports trustless raw responses.

Protocol (https://specs.ipfs.tech/http-gateways/trustless-gateway/): a client asks for
``GET /ipfs/<cid>?format=raw`` with ``Accept: application/vnd.ipld.raw`` and receives the
block's bytes with ``Content-Type: application/vnd.ipld.raw``. The gateway is not trusted:
the reader hashes what it receives and refuses bytes that do not match the CID.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Annotated

import httpx
import uvicorn
from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import PlainTextResponse

from marketplace.errors import (
    BlobTooLarge,
    BlockNotFound,
    CidMismatch,
    ConfigError,
    EndpointRefused,
    InvalidCid,
    ReadOnlyStore,
    StorageError,
)
from marketplace.server import GuardMiddleware, ServerLimits, uvicorn_config
from marketplace.storage.base import MAX_BLOCK_SIZE, ContentStore
from marketplace.storage.cid import parse_cid
from marketplace.untrusted.endpoints import check_endpoint
from marketplace.untrusted.reader import Fetched, ReadLimits, new_client, read

logger = logging.getLogger(__name__)

RAW_MEDIA_TYPE = "application/vnd.ipld.raw"

# A gateway takes no request bodies, and its honest readers come in bursts: an aggregator
# fetching every trainer's update, an auditor replaying a whole project from one node
# (a burst of 200 blocks, then 20 a second; bench_hostile.py: a reader fetching 256 KiB
# blocks at 100/s doubled a well-behaved reader's p50, at 20/s it does not).
# Blocks are cheap to serve, and many trainers may share one address (a NAT, one test
# machine): up to 32 of one address's requests at once, as many as its connections; a
# quarter of a worker's time per address (a 1 MiB block is a few ms to read and verify).
GATEWAY_LIMITS = ServerLimits(
    max_body_bytes=1024,
    rate_per_s=20.0,
    burst=200,
    max_in_flight_per_client=32,
    work_share=0.25,
    work_burst_s=5.0,
)


class GatewayReader(ContentStore):
    """Read-only store over HTTP: fetches raw blocks from a trustless gateway.

    Every request goes through the bounded reader (:mod:`marketplace.untrusted.reader`):
    ``timeout`` is the total deadline of one block's fetch, a block is cut off at
    ``max_block_size``, redirects are refused and a 200 must be ``application/vnd.ipld.raw``.
    ``base_url`` is checked by :func:`~marketplace.untrusted.endpoints.check_endpoint`;
    ``allow_private=False`` (an endpoint a party announced on a public chain) also refuses
    loopback and private addresses.
    """

    def __init__(
        self,
        base_url: str,
        timeout: float = 30.0,
        max_block_size: int = MAX_BLOCK_SIZE,
        *,
        allow_private: bool = True,
        what: str = "gateway",
    ) -> None:
        self.base_url = check_endpoint(base_url, allow_private, what)
        self.max_block_size = max_block_size
        self.timeout = timeout
        self._client = new_client(self.base_url, timeout=min(timeout, 10.0))

    def __repr__(self) -> str:
        return f"GatewayReader({self.base_url!r})"

    def close(self) -> None:
        self._client.close()

    def _request_failed(self, cid: str, exc: httpx.HTTPError) -> StorageError:
        if isinstance(exc, httpx.TimeoutException):
            return StorageError(
                f"gateway {self.base_url} timed out on {cid}; retry or raise the timeout"
            )
        return StorageError(
            f"gateway {self.base_url} unreachable ({type(exc).__name__}: {exc}); "
            "check the URL and that the node serving it is running"
        )

    def _fetch(self, method: str, cid: str, max_bytes: int) -> Fetched:
        limits = ReadLimits(
            max_bytes, self.timeout, (RAW_MEDIA_TYPE,), read_timeout_s=min(self.timeout, 10.0)
        )
        try:
            return read(
                self._client,
                method,
                f"/ipfs/{cid}",
                limits,
                params={"format": "raw"},
                headers={"Accept": RAW_MEDIA_TYPE},
            )
        except BlobTooLarge as exc:
            raise BlobTooLarge(
                f"gateway {self.base_url} sent more than {max_bytes} bytes for block {cid}; "
                "refusing it (raw blocks are never that large)"
            ) from exc
        except httpx.HTTPError as exc:
            raise self._request_failed(cid, exc) from exc

    def _get_unverified(self, cid: str) -> bytes:
        response = self._fetch("GET", cid, self.max_block_size)
        self._check_status(cid, response)
        return response.body

    def _has(self, cid: str) -> bool:
        response = self._fetch("HEAD", cid, self.max_block_size)
        if response.status in (404, 410):
            return False
        self._check_status(cid, response)
        return True

    def _put(self, cid: str, data: bytes) -> None:
        raise ReadOnlyStore(
            f"the gateway {self.base_url} is read-only; put blocks into a local or kubo "
            "store and serve that store with serve_gateway"
        )

    def _pin(self, cid: str) -> None:
        raise ReadOnlyStore(
            f"cannot pin {cid} on the read-only gateway {self.base_url}; "
            "fetch it and put it into your own store instead"
        )

    def _check_status(self, cid: str, response: Fetched) -> None:
        if response.status in (404, 410):
            raise BlockNotFound(
                f"gateway {self.base_url} does not have {cid}; ask the publisher to serve it"
            )
        if response.status != 200:
            raise StorageError(
                f"gateway {self.base_url} answered HTTP {response.status} for {cid}; "
                "check that it supports trustless raw block requests"
            )


class RefusedGateway(ContentStore):
    """Stands in for an announced endpoint that may not be fetched: every read raises the
    :class:`EndpointRefused` that says why, so the update is rejected with that reason."""

    def __init__(self, error: EndpointRefused) -> None:
        self.error = error

    def __repr__(self) -> str:
        return f"RefusedGateway({str(self.error)!r})"

    def _get_unverified(self, cid: str) -> bytes:
        raise self.error

    def _has(self, cid: str) -> bool:
        raise self.error

    def _put(self, cid: str, data: bytes) -> None:
        raise self.error

    def _pin(self, cid: str) -> None:
        raise self.error


def open_gateway(
    url: str, timeout: float, allow_private: bool, what: str = "gateway"
) -> GatewayReader | RefusedGateway:
    """A bounded reader of an endpoint a party announced, or a :class:`RefusedGateway`
    when :func:`~marketplace.untrusted.endpoints.check_endpoint` refuses the URL."""
    try:
        return GatewayReader(url, timeout=timeout, allow_private=allow_private, what=what)
    except EndpointRefused as exc:
        return RefusedGateway(exc)


def _wants_other_format(accept: str | None) -> bool:
    """True when the client asks only for IPLD formats other than raw (CAR, dag-json)."""
    if not accept:
        return False
    kinds = [part.split(";")[0].strip() for part in accept.split(",")]
    ipld = [k for k in kinds if k.startswith("application/vnd.ipld.")]
    return bool(ipld) and RAW_MEDIA_TYPE not in kinds and "*/*" not in kinds


def make_gateway_app(store: ContentStore, limits: ServerLimits = GATEWAY_LIMITS) -> FastAPI:
    """A FastAPI app serving ``GET``/``HEAD /ipfs/{cid}`` raw blocks from ``store``.

    Answers 400 for a malformed CID or an unsupported ``format``, 404 for an unknown
    block, 406 when the client accepts only other IPLD formats, and never serves a
    block whose bytes fail verification (500). The shared server guard
    (:mod:`marketplace.server`) answers 413 for a body and 429 for a client over its rate.
    """
    app = FastAPI(
        title="LedgerLearn trustless gateway", docs_url=None, redoc_url=None, openapi_url=None
    )

    @app.api_route("/ipfs/{cid}", methods=["GET", "HEAD"])
    def get_block(
        cid: str,
        request: Request,
        fmt: Annotated[str | None, Query(alias="format")] = None,
    ) -> Response:
        if fmt is not None and fmt != "raw":
            return PlainTextResponse(f"format={fmt} is not served; use format=raw", 400)
        if fmt is None and _wants_other_format(request.headers.get("accept")):
            return PlainTextResponse(f"only {RAW_MEDIA_TYPE} is served", 406)
        try:
            parse_cid(cid)
            data = store.get(cid)
        except InvalidCid as exc:
            return PlainTextResponse(str(exc), 400)
        except BlockNotFound:
            return PlainTextResponse(f"block {cid} not found", 404)
        except CidMismatch:
            logger.error("block %s is corrupted in %r; not serving it", cid, store)
            return PlainTextResponse(f"block {cid} is corrupted on this node", 500)
        except StorageError as exc:
            logger.warning("cannot serve %s: %s", cid, exc)
            return PlainTextResponse(f"block {cid} unavailable", 502)
        headers = {
            "Cache-Control": "public, max-age=29030400, immutable",
            "Etag": f'"{cid}.raw"',
            "X-Ipfs-Path": f"/ipfs/{cid}",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'attachment; filename="{cid}.bin"',
            "Vary": "Accept",
        }
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(data))
            return Response(b"", media_type=RAW_MEDIA_TYPE, headers=headers)
        return Response(data, media_type=RAW_MEDIA_TYPE, headers=headers)

    app.add_middleware(GuardMiddleware, limits=limits)
    return app


def bind_listener(host: str, port: int, option: str = "--port") -> socket.socket:
    """A TCP socket bound to ``host:port`` (0 picks a free port), or one clear line.

    ``proto`` must say TCP: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    is IPPROTO_TCP, and without it every response stalls ~40 ms (Nagle against delayed
    ACK, since h11 writes headers and body separately).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); another process uses "
            f"the port: pass another {option} (0 picks a free one) or stop that process"
        ) from None
    return sock


def check_port_free(host: str, port: int, option: str = "--port") -> None:
    """Fail with one line, before any slow work, if ``host:port`` cannot be listened on."""
    if port != 0:
        bind_listener(host, port, option).close()


class BackgroundServer:
    """Runs an ASGI app with uvicorn in a daemon thread, on a socket bound up front.

    Binding the socket before starting (port 0 picks a free one) avoids the race of
    "find a free port, then bind it". Use as a context manager or call :meth:`stop`.
    """

    def __init__(
        self,
        app: FastAPI,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        limits: ServerLimits = GATEWAY_LIMITS,
    ) -> None:
        self._socket = bind_listener(host, port)
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn_config(app, limits, host=host, port=self.port, log_level=log_level)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"uvicorn-{self.port}",
            daemon=True,
        )

    @property
    def url(self) -> str:
        """Base URL of the running server, e.g. ``http://127.0.0.1:41234``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        """Start serving (once; later calls return at once) and wait until it accepts."""
        if self._thread.ident is not None:
            return self
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise StorageError(f"HTTP server on {self.url} did not start; see the log")
            time.sleep(0.01)
        logger.info("serving on %s", self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit, wait for the thread, and close the socket."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_gateway(store: ContentStore, host: str = "127.0.0.1", port: int = 0) -> BackgroundServer:
    """Serve ``store`` as a trustless gateway in a background thread; returns the server."""
    return BackgroundServer(make_gateway_app(store), host, port).start()


def serve_gateway(
    store: ContentStore, host: str = "127.0.0.1", port: int = 8080, log_level: str = "info"
) -> None:
    """Serve ``store`` as a trustless gateway in the foreground until interrupted."""
    logger.info("serving %r as a trustless gateway on http://%s:%d", store, host, port)
    app = make_gateway_app(store, GATEWAY_LIMITS)
    uvicorn.Server(uvicorn_config(app, GATEWAY_LIMITS, host, port, log_level)).run()
