"""The chain connection rides out an RPC outage: requests wait with backoff and a status
line until the node answers again, and give up with one ChainUnreachable line after
``max_outage_s`` (a fake JSON-RPC node over a real socket, stopped and restarted)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from marketplace.chain.connection import connect
from marketplace.errors import ChainUnreachable

RESULTS = {"eth_chainId": "0x1", "eth_blockNumber": "0x2a"}


class _Rpc(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body = json.dumps(
            {"jsonrpc": "2.0", "id": request["id"], "result": RESULTS[request["method"]]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


class _Node:
    """A fake JSON-RPC node that can be stopped and started again on the same port."""

    def __init__(self) -> None:
        self.server: ThreadingHTTPServer | None = None
        self.port = 0
        self.start()

    def start(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), _Rpc)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture()
def node() -> Iterator[_Node]:
    rpc = _Node()
    yield rpc
    rpc.stop()


def test_a_few_seconds_without_the_node_are_ridden_out(
    node: _Node, caplog: pytest.LogCaptureFixture
) -> None:
    chain = connect(node.url, timeout=2.0, max_outage_s=30.0)
    assert chain.w3.eth.block_number == 42
    node.stop()
    restart = threading.Timer(1.5, node.start)
    restart.start()
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="marketplace.chain.outage"):
        assert chain.w3.eth.block_number == 42
    restart.join()
    assert 1.0 < time.monotonic() - start < 10
    lines = [r.getMessage() for r in caplog.records]
    assert any("unreachable" in line and "retry 1" in line for line in lines), lines
    assert any("answers again" in line for line in lines), lines


def test_a_long_outage_is_one_chain_unreachable_line(node: _Node) -> None:
    chain = connect(node.url, timeout=2.0, max_outage_s=1.0)
    node.stop()
    start = time.monotonic()
    with pytest.raises(ChainUnreachable, match="has not answered for 1 s"):
        chain.w3.eth.block_number  # noqa: B018 - the property makes the request
    assert time.monotonic() - start < 5
    node.start()  # for the fixture's stop


def test_a_wrong_url_still_fails_at_once() -> None:
    start = time.monotonic()
    with pytest.raises(ChainUnreachable, match="no Ethereum node answers"):
        connect("http://127.0.0.1:1", timeout=1.0)
    assert time.monotonic() - start < 5
