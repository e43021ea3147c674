"""ASGI middleware in front of every LedgerLearn HTTP app: rate limit, body cap, JSON guard.

Order matters and is cheapest first: the rate limit and the cap on a client's requests in
flight cost a dict lookup each and refuse a flood before any byte of its body is read
(after a tarpit delay: a flooding connection then sends one request per delay, not
hundreds a second of 429s for the event loop to answer);
the body cap refuses a declared ``Content-Length`` over the limit at once, and counts the
bytes of a chunked body, reading at most ``max_body_bytes + 1`` of them; the JSON guard
then looks at the (small, bounded) body once, so the app behind it only ever sees UTF-8
JSON of bounded depth whose strings are all encodable. Every refusal is
``{"error": "<one line>", "detail": null}`` with a 4xx.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.responses import Response

from marketplace.server.limits import ServerLimits
from marketplace.server.ratelimit import TokenBuckets
from marketplace.untrusted.parse import json_depth

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """The one error body of our servers: one line (line breaks escaped), ASCII-escaped so
    that it can always be encoded, whatever a client's field names held."""
    line = message.replace("\r", "\\r").replace("\n", "\\n")
    body = json.dumps({"error": line, "detail": None}, ensure_ascii=True)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def unencodable_string(value: Any, path: str = "body") -> str | None:
    """Path of the first string (key or value) in ``value`` that is not valid Unicode.

    JSON's ``\\ud800`` escapes decode to lone surrogates, which no UTF-8 encoder accepts:
    left in, they turn any later ``.encode()`` (a log line, an error echo, a tokenizer)
    into a 500.
    """
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return where
        elif isinstance(item, dict):
            for key, child in item.items():
                try:
                    key.encode("utf-8")
                except UnicodeEncodeError:
                    return f"{where} (a key)"
                name = key if key.isidentifier() else json.dumps(key)
                stack.append((child, f"{where}.{name}" if where != "body" else name))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(item))
    return None


def check_json_body(body: bytes, max_depth: int) -> tuple[int, str] | None:
    """``(status, reason)`` if ``body`` is not UTF-8 JSON the app may safely parse, else None."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return 422, f"invalid request: body is not UTF-8 (byte {exc.start}); send UTF-8 JSON"
    # before json.loads, whose C parser recurses once per level (the parser's json_depth)
    if json_depth(body, max_depth) > max_depth:
        return 422, f"invalid request: body nests deeper than {max_depth} levels"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return 422, f"invalid request: body is not JSON ({exc.msg} at char {exc.pos})"
    except ValueError:  # e.g. an integer longer than Python's 4,300-digit conversion limit
        return 422, "invalid request: body holds a number too long to read"
    except RecursionError:
        return 422, f"invalid request: body nests deeper than {max_depth} levels"
    where = unencodable_string(value)
    if where is not None:
        return 422, (
            f"invalid request: {where}: holds an unpaired UTF-16 surrogate (\\ud800-\\udfff); "
            "send valid Unicode text"
        )
    return None


def _is_json(headers: dict[bytes, bytes]) -> bool:
    kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    return kind in (b"", b"application/json") or kind.endswith(b"+json")


class GuardMiddleware:
    """Per-client rate limit and in-flight cap (429), body cap (413), JSON guard (422)."""

    def __init__(self, app: ASGIApp, limits: ServerLimits | None = None) -> None:
        self.app = app
        self.limits = limits or ServerLimits()
        self.buckets = TokenBuckets(
            self.limits.rate_per_s, self.limits.burst, self.limits.tracked_clients
        )
        self.in_flight: Counter[str] = Counter()
        self.work = TokenBuckets(
            self.limits.work_share, self.limits.work_burst_s, self.limits.tracked_clients
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        who = str(client[0]) if client else "unknown"
        wait = self.buckets.take(who)
        if wait > 0:
            limit = f"{self.limits.rate_per_s:g}/s (burst {self.limits.burst})"
            await self._throttle(scope, receive, send, wait, f"too many requests from {who}", limit)
            return
        debt = self.work.take(who, cost=0.0)
        if debt > 0:
            limit = f"{self.limits.work_share:g} s of handling per second"
            await self._throttle(scope, receive, send, debt, f"too much work asked by {who}", limit)
            return
        if self.in_flight[who] >= self.limits.max_in_flight_per_client:
            await self._refuse(
                scope, receive, send, 429,
                f"too many requests in flight from {who}: the limit is "
                f"{self.limits.max_in_flight_per_client}; wait for an answer first",
                {"Retry-After": "1"},
            )  # fmt: skip
            return
        self.in_flight[who] += 1
        try:
            await self._admitted(scope, receive, send, who)
        finally:
            self.in_flight[who] -= 1
            if self.in_flight[who] <= 0:
                del self.in_flight[who]

    async def _admitted(self, scope: Scope, receive: Receive, send: Send, who: str) -> None:
        headers = dict(scope.get("headers") or [])
        limit = self.limits.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away (or was cut by the read deadline)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = bool(message.get("more_body", False))
            if size > limit:
                await self._too_large(scope, receive, send)
                return
        body = b"".join(chunks)
        if body and _is_json(headers):
            problem = check_json_body(body, self.limits.max_json_depth)
            if problem is not None:
                await self._refuse(scope, receive, send, *problem)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        started = time.monotonic()
        try:
            await self.app(scope, replay, send)
        finally:  # a client pays for the handler time it used, so a few costly requests
            # cannot take a whole worker whatever their rate (e.g. long queries to embed)
            self.work.charge(who, time.monotonic() - started)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limits.max_body_bytes
        await self._refuse(
            scope, receive, send, 413,
            f"request body is larger than {limit} bytes; send at most {limit} bytes",
            {"Connection": "close"},
        )  # fmt: skip

    async def _throttle(
        self, scope: Scope, receive: Receive, send: Send, wait: float, what: str, limit: str
    ) -> None:
        """429 after the tarpit: ``what`` exceeded ``limit``; retry after ``wait`` s."""
        retry = max(1, math.ceil(wait))
        await asyncio.sleep(self.limits.tarpit_s)
        message = f"{what}: the limit is {limit}; retry after {retry} s"
        await self._refuse(scope, receive, send, 429, message, {"Retry-After": str(retry)})

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        log.info("%s %s from %s: %d %s", scope.get("method"), scope.get("path"),
                 scope.get("client"), status, message)  # fmt: skip
        await error_response(status, message, headers)(scope, receive, send)


def harden(app: ASGIApp, limits: ServerLimits | None = None) -> GuardMiddleware:
    """``app`` behind :class:`GuardMiddleware` with ``limits`` (the defaults if None)."""
    return GuardMiddleware(app, limits)
