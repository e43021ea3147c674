"""Hostile peers over real sockets, for the tests of the bounded reader and its callers.

:class:`RawServer` accepts TCP connections on 127.0.0.1 and hands each to a handler that
writes whatever an attacker would: a drip of one byte at a time, an endless body, a
redirect. Each connection runs in its own daemon thread; :meth:`RawServer.stop` closes
the listening socket (handlers notice through broken pipes).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

Handler = Callable[[socket.socket], None]


class RawServer:
    """A TCP server on 127.0.0.1 whose every connection is given to ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = int(self._sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            _read_request(conn)
            self.handler(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()

    def __enter__(self) -> RawServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _read_request(conn: socket.socket) -> bytes:
    """Read the request head and a Content-Length body (enough for our clients)."""
    conn.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head


def respond(status: str, body: bytes, content_type: str, extra: str = "") -> Handler:
    """A handler answering once with ``body``."""

    def handler(conn: socket.socket) -> None:
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
        )
        conn.sendall(head.encode() + body)

    return handler


def drip_body(content_type: str, length: int = 10_000, every_s: float = 0.05) -> Handler:
    """Headers at once, then the body one byte every ``every_s`` seconds."""

    def handler(conn: socket.socket) -> None:
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
        )
        conn.sendall(head.encode())
        for _ in range(length):
            conn.sendall(b"[")
            time.sleep(every_s)

    return handler


def drip_headers(every_s: float = 0.05, count: int = 100_000) -> Handler:
    """A status line, then one header byte every ``every_s`` seconds (slowloris, reversed)."""

    def handler(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
        for _ in range(count):
            conn.sendall(b"a")
            time.sleep(every_s)

    return handler


def endless_body(content_type: str, total: int = 200 * 2**20, chunk: int = 1 << 16) -> Handler:
    """A chunked answer of ``total`` bytes (200 MB by default), sent as fast as possible."""

    def handler(conn: socket.socket) -> None:
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        conn.sendall(head.encode())
        piece = b"%x\r\n" % chunk + b'"' + b"a" * (chunk - 2) + b'"' + b"\r\n"
        for _ in range(total // chunk):
            conn.sendall(piece)
        conn.sendall(b"0\r\n\r\n")

    return handler
