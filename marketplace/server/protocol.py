"""uvicorn's HTTP/1.1 protocol with deadlines: no socket is held open by a slow sender.

uvicorn (h11) arms its keep-alive timer only after a response and cancels it on the next
byte, so a client that opens a connection and sends nothing, or drips a request head a
byte at a time (slowloris), holds the socket for ever. :func:`guarded_protocol` returns a
protocol class that

- gives every request ``read_timeout_s`` from the connection opening (or from the first
  byte after an idle keep-alive) to arrive whole, head and body, and answers 408 and
  closes when it does not (the deadline does not slide with each byte);
- refuses a client address's connection beyond ``max_connections_per_client`` at once
  (429 and close), so one address cannot take every socket the process has.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from marketplace.server.limits import ServerLimits

log = logging.getLogger(__name__)

_READ_STATES = (h11.IDLE, h11.SEND_BODY)


def _plain(status: int, phrase: str, text: str) -> bytes:
    body = text.encode("ascii", "replace")
    head = (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class _GuardedH11Protocol(H11Protocol):
    """H11Protocol plus a per-request read deadline and a per-address connection cap."""

    limits: ServerLimits = ServerLimits()
    open_per_client: Counter[str]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._deadline: asyncio.TimerHandle | None = None
        self._counted: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        who = self.client[0] if self.client else "unknown"
        if self.open_per_client[who] >= self.limits.max_connections_per_client:
            log.info("refusing a connection from %s: %d already open", who,
                     self.open_per_client[who])  # fmt: skip
            transport.write(
                _plain(429, "Too Many Requests",
                       f"too many connections from {who}: the limit is "
                       f"{self.limits.max_connections_per_client}; close idle ones"),
            )  # fmt: skip
            transport.close()
            return
        self.open_per_client[who] += 1
        self._counted = who
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._counted is not None:
            self.open_per_client[self._counted] -= 1
            if self.open_per_client[self._counted] <= 0:
                del self.open_per_client[self._counted]
            self._counted = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._counted is None or self.transport.is_closing():
            return
        super().data_received(data)
        if self.transport.is_closing():
            self._disarm()
        elif self.conn.their_state in _READ_STATES:
            self._arm()
        else:
            self._disarm()

    def on_response_complete(self) -> None:
        self._disarm()  # uvicorn's keep-alive timer takes over until the next byte
        super().on_response_complete()

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.limits.read_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.conn.their_state not in _READ_STATES:
            return
        log.info("closing a connection from %s: request not received within %g s",
                 self.client, self.limits.read_timeout_s)  # fmt: skip
        if self.conn.their_state is h11.IDLE and self.conn.our_state is h11.IDLE:
            self.transport.write(
                _plain(408, "Request Timeout",
                       f"request not received within {self.limits.read_timeout_s:g} s; "
                       "send the whole request at once"),
            )  # fmt: skip
        # a body still arriving: the app sees http.disconnect and gives up on it
        self.transport.close()


def guarded_protocol(limits: ServerLimits) -> type[H11Protocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` enforcing ``limits``.

    Each call makes a new class, so each server counts its own connections.
    """
    return type(
        "GuardedH11Protocol",
        (_GuardedH11Protocol,),
        {"limits": limits, "open_per_client": Counter()},
    )
