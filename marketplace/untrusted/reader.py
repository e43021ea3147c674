"""The one reader of bytes from another party's HTTP endpoint: bounded in time and size.

Every fetch a node makes from an endpoint it does not run (a trainer's gateway, the
aggregator's gateway, a kubo daemon's network reads, a dRAG source) goes through
:func:`read` or :func:`aread`, which enforce :class:`ReadLimits`:

* **a total deadline** per fetch, not only a timeout per socket read: a peer that drips one
  byte a second never lets a per-read timeout fire. The async reader cancels at the
  deadline exactly; the sync reader's clients (:func:`new_client`) shorten every socket
  read and write, headers included, to what is left of the deadline;
* **a size cap**: the answer is streamed and the fetch aborted as soon as it (or its
  declared ``Content-Length``) passes ``max_bytes``, so peak memory is bounded by the cap
  whatever the peer sends;
* **no redirects**: a 3xx is refused (following one lets a party make the node GET any URL,
  including the operator's own network);
* **no content coding**: ``Accept-Encoding: identity`` is sent and a compressed answer is
  refused, so a small gzip bomb cannot expand past the cap inside one chunk;
* **the content type**: when ``content_types`` is given, a 200 answer with another media
  type is refused before its body is read.

Failures are :class:`~marketplace.errors.FetchRefused` (``kind`` names the limit) or its
subclass :class:`~marketplace.errors.ResponseTooLarge`; transport errors stay httpx
errors, which callers already map to "unreachable". The status code is returned, not
judged: a gateway's 404 means something else than a source's.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from marketplace.errors import FetchRefused, ResponseTooLarge

#: Default per-read (and connect) timeout of a bounded fetch, seconds.
DEFAULT_READ_TIMEOUT_S = 10.0


#: Monotonic time by which the fetch running in this thread or task must be done.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "ledgerlearn_fetch_deadline", default=None
)


def _left(timeout: float | None) -> float | None:
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the fetch's total deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read and write ends by the fetch's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, _left(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's sync socket backend with :class:`_DeadlineStream` streams."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(
            host, port, _left(timeout), local_address, socket_options
        )
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def new_client(base_url: str = "", timeout: float = DEFAULT_READ_TIMEOUT_S) -> httpx.Client:
    """An httpx client for :func:`read`: never follows redirects, and its sockets honour the
    per-fetch deadline (connect, headers and body alike)."""
    transport = httpx.HTTPTransport()
    pool = transport._pool  # noqa: SLF001 - httpx offers no other way to set the backend
    pool._network_backend = _DeadlineBackend()  # type: ignore[union-attr]  # noqa: SLF001
    return httpx.Client(
        base_url=base_url, timeout=timeout, follow_redirects=False, transport=transport
    )


@dataclass(frozen=True)
class ReadLimits:
    """What one fetch may cost: ``max_bytes`` of body within ``deadline_s`` seconds."""

    max_bytes: int
    deadline_s: float
    content_types: tuple[str, ...] | None = None
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S


@dataclass(frozen=True)
class Fetched:
    """A bounded answer: status, headers and the whole (capped) body."""

    status: int
    headers: httpx.Headers
    body: bytes
    url: str

    @property
    def text(self) -> str:
        """The body as text for error messages (invalid UTF-8 replaced, 200 chars)."""
        return self.body[:200].decode("utf-8", "replace")


def _check_head(response: httpx.Response, url: str, limits: ReadLimits) -> None:
    """Refuse a redirect, a wrong content type or a declared oversize before the body."""
    if response.is_redirect or 300 <= response.status_code < 400:
        where = response.headers.get("location", "?")[:100]
        raise FetchRefused(
            f"{url} answered a redirect (HTTP {response.status_code} to {where!r}); "
            "redirects from untrusted endpoints are never followed",
            "redirect",
        )
    if limits.content_types is not None and response.status_code == 200:
        media = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in limits.content_types:
            raise FetchRefused(
                f"{url} answered content type {media or 'none'!r}, expected "
                f"{' or '.join(limits.content_types)}",
                "content type",
            )
    coding = response.headers.get("content-encoding", "identity").strip().lower()
    if coding not in ("", "identity"):
        raise FetchRefused(
            f"{url} answered with content encoding {coding[:40]!r}; only identity is read",
            "content encoding",
        )
    declared = response.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limits.max_bytes:
        raise _too_large(url, limits)


def _too_large(url: str, limits: ReadLimits) -> ResponseTooLarge:
    return ResponseTooLarge(
        f"{url} sent more than {limits.max_bytes} bytes; refusing the rest of the answer"
    )


def _overdue(url: str, limits: ReadLimits) -> FetchRefused:
    return FetchRefused(
        f"{url} did not finish its answer within {limits.deadline_s:g} s; giving up",
        "timeout",
    )


def _headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {**(headers or {}), "Accept-Encoding": "identity"}


def _timeout(limits: ReadLimits, left: float) -> httpx.Timeout:
    step = max(0.001, min(limits.read_timeout_s, left))
    return httpx.Timeout(step)


def read(
    client: httpx.Client,
    method: str,
    url: str,
    limits: ReadLimits,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    files: Any = None,
) -> Fetched:
    """Fetch ``url`` with ``client`` within ``limits`` (see the module docstring).

    With a client from :func:`new_client` the deadline holds from the connection on; with
    another client it is checked between body chunks only.
    """
    start = time.monotonic()
    token = _DEADLINE.set(start + limits.deadline_s)
    try:
        return _read(client, method, url, limits, start, params, headers, content, files)
    except httpx.TimeoutException:
        if time.monotonic() - start >= limits.deadline_s:
            raise _overdue(url, limits) from None
        raise
    finally:
        _DEADLINE.reset(token)


def _read(
    client: httpx.Client,
    method: str,
    url: str,
    limits: ReadLimits,
    start: float,
    params: Mapping[str, str] | None,
    headers: Mapping[str, str] | None,
    content: bytes | None,
    files: Any,
) -> Fetched:
    request = client.build_request(
        method,
        url,
        params=params,
        headers=_headers(headers),
        content=content,
        files=files,
        timeout=_timeout(limits, limits.deadline_s),
    )
    response = client.send(request, stream=True, follow_redirects=False)
    try:
        _check_head(response, str(request.url), limits)
        body = bytearray()
        chunks: Iterator[bytes] = response.iter_raw()
        for part in chunks:
            if time.monotonic() - start > limits.deadline_s:
                raise _overdue(str(request.url), limits)
            body += part
            if len(body) > limits.max_bytes:
                raise _too_large(str(request.url), limits)
    finally:
        response.close()
    return Fetched(response.status_code, response.headers, bytes(body), str(request.url))


async def aread(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    limits: ReadLimits,
    *,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
) -> Fetched:
    """:func:`read` for asyncio: the deadline cancels the whole fetch exactly."""
    try:
        return await asyncio.wait_for(
            _aread(client, method, url, limits, headers, content), timeout=limits.deadline_s
        )
    except TimeoutError:
        raise _overdue(url, limits) from None


async def _aread(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    limits: ReadLimits,
    headers: Mapping[str, str] | None,
    content: bytes | None,
) -> Fetched:
    request = client.build_request(
        method,
        url,
        headers=_headers(headers),
        content=content,
        timeout=_timeout(limits, limits.deadline_s),
    )
    response = await client.send(request, stream=True, follow_redirects=False)
    try:
        _check_head(response, url, limits)
        body = bytearray()
        chunks: AsyncIterator[bytes] = response.aiter_raw()
        async for part in chunks:
            body += part
            if len(body) > limits.max_bytes:
                raise _too_large(url, limits)
    finally:
        await response.aclose()
    return Fetched(response.status_code, response.headers, bytes(body), url)
