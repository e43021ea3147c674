"""Hostile clients against the real servers over real sockets (issue 14, items 6-8 and 13).

Both HTTP servers LedgerLearn runs, the dRAG source node and the content gateway that
trainers and aggregators serve, are attacked as a stranger would: lone surrogates in any
JSON field, half-sent heads and bodies (slowloris), idle sockets, a connection hoard, a
request flood and huge bodies. Each test also checks that a well-behaved client at
another address is still served. The read deadline is shortened to keep the tests fast.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from drag.server import BackgroundServer as SourceServer
from drag.server import SourceConfig, SourceNode, create_app
from marketplace.server import ServerLimits
from marketplace.storage import LocalStore, cid_for
from marketplace.storage.gateway import BackgroundServer as GatewayServer
from marketplace.storage.gateway import make_gateway_app

KEY = "0x" + "5a" * 32
QID = "0x" + "0f" * 32
READ_TIMEOUT = 0.5
ATTACKER = "127.0.0.2"  # all of 127/8 is loopback: a second client address on one machine
BLOCK = b"a block any trainer could serve"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("hostile-source")
    (root / "docs").mkdir()
    (root / "docs" / "notes.txt").write_text("The gateway verifies every block against its CID.")
    config = SourceConfig(
        source_id=1, private_key=KEY, chain_id=31337, registry_address="0x" + "ab" * 20,
        read_timeout_s=READ_TIMEOUT, rate_per_s=5.0, burst=10, tarpit_s=0.02,
    )  # fmt: skip
    node = SourceNode.from_dirs(root / "docs", root / "idx", config)
    with SourceServer(create_app(node)) as server:
        yield server.url


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = LocalStore(tmp_path_factory.mktemp("hostile-gateway"))
    store.put(BLOCK)
    limits = ServerLimits(
        max_body_bytes=1024, read_timeout_s=READ_TIMEOUT, rate_per_s=5.0, burst=10,
        max_connections_per_client=8, tarpit_s=0.02,
    )  # fmt: skip
    with GatewayServer(make_gateway_app(store, limits), limits=limits) as server:
        yield server.url


@pytest.fixture(params=["source", "gateway"])
def server(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(base URL, a path that a well-behaved client GETs) of each server in turn."""
    if request.param == "source":
        return request.getfixturevalue("source"), "/health"
    return request.getfixturevalue("gateway"), f"/ipfs/{cid_for(BLOCK)}?format=raw"


def _connect(url: str, source: str = ATTACKER) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5, source_address=(source, 0))


def _wait_closed(sock: socket.socket, within: float) -> tuple[bool, bytes]:
    """(closed by the server within ``within`` s, what it sent before closing)."""
    sock.settimeout(within)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except TimeoutError:
        return False, data
    except ConnectionResetError:
        pass
    return True, data


def _honest_get(url: str, path: str) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=5) as client:
        return client.get(path)


# ------------------------------------------------------------------ 6, 13: bad text


@pytest.mark.parametrize(
    "body",
    [
        b'{"query": "a\\ud800b", "k": 1, "query_id": "%s"}' % QID.encode(),
        b'{"query": "q", "k": 1, "query_id": "\\udfff"}',
        b'{"query": "q", "k": "\\ud800", "query_id": "%s"}' % QID.encode(),
        b'{"query": "q", "k": 1, "query_id": "%s", "embedding": ["\\udc00"]}' % QID.encode(),
        b'{"query": "q", "k": 1, "query_id": "%s", "extra": {"\\ud83d": 1}}' % QID.encode(),
        b'{"query": "caf\xe9", "k": 1, "query_id": "%s"}' % QID.encode(),  # latin-1, not UTF-8
        b"[" * 20_000,
    ],
)
def test_lone_surrogates_and_bad_text_in_any_field_are_a_422(source: str, body: bytes) -> None:
    r = httpx.post(source + "/retrieve", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error.startswith("invalid request: ") and "\n" not in error
    assert r.json()["detail"] is None  # the input is never echoed back


# ------------------------------------------------------------------ 7: slowloris


def test_half_sent_head_is_cut_at_the_read_deadline(server: tuple[str, str]) -> None:
    url, path = server
    sock = _connect(url)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Drip: ".encode())
    start = time.monotonic()
    for _ in range(3):  # a byte now and then must not extend the deadline
        time.sleep(READ_TIMEOUT / 4)
        sock.sendall(b"a")
    closed, data = _wait_closed(sock, within=READ_TIMEOUT + 3)
    assert closed, "the server kept a half-sent request open"
    assert time.monotonic() - start < READ_TIMEOUT + 2
    assert data.startswith(b"HTTP/1.1 408")
    assert _honest_get(url, path).status_code == 200


def test_idle_and_body_dripping_connections_are_closed(server: tuple[str, str]) -> None:
    url, _ = server
    idle = _connect(url)
    dripping = _connect(url)
    dripping.sendall(
        b"POST /retrieve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 200\r\n\r\n{"query": '
    )
    assert _wait_closed(idle, within=READ_TIMEOUT + 3)[0]
    assert _wait_closed(dripping, within=READ_TIMEOUT + 3)[0]


def test_one_address_cannot_hoard_connections(gateway: str) -> None:
    hoard = [_connect(gateway) for _ in range(8)]
    extra = _connect(gateway)
    closed, data = _wait_closed(extra, within=2)
    assert closed and data.startswith(b"HTTP/1.1 429")
    assert b"too many connections from 127.0.0.2" in data
    path = f"/ipfs/{cid_for(BLOCK)}?format=raw"
    assert _honest_get(gateway, path).content == BLOCK  # another address is served
    for sock in hoard:
        sock.close()


# ------------------------------------------------------------------ 8: floods


def test_a_flooding_client_gets_429_and_others_are_served(server: tuple[str, str]) -> None:
    url, path = server
    transport = httpx.HTTPTransport(local_address=ATTACKER)
    start = time.monotonic()
    with httpx.Client(base_url=url, transport=transport, timeout=5) as flood:
        answers = [flood.get(path) for _ in range(40)]
    elapsed = time.monotonic() - start
    codes = [r.status_code for r in answers]
    assert set(codes) == {200, 429}
    assert codes.count(200) <= 10 + 5 * elapsed + 1  # burst 10, then 5/s
    refused = next(r for r in answers if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert "too many requests from 127.0.0.2" in refused.json()["error"]
    assert _honest_get(url, path).status_code == 200


# ------------------------------------------------------------------ body cap


def test_a_huge_declared_body_is_refused_before_it_is_sent(server: tuple[str, str]) -> None:
    url, _ = server
    sock = _connect(url, source="127.0.0.3")
    sock.sendall(
        b"POST /retrieve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000000000\r\n\r\n"
    )
    closed, data = _wait_closed(sock, within=READ_TIMEOUT / 2)
    assert data.startswith(b"HTTP/1.1 413"), data[:200]


def test_a_huge_chunked_body_is_refused_after_the_cap(server: tuple[str, str]) -> None:
    url, _ = server
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(10_000):  # 640 MB if it were all read
            sent += 65_536
            yield b" " * 65_536

    transport = httpx.HTTPTransport(local_address="127.0.0.4")
    with httpx.Client(transport=transport, timeout=10) as client:
        try:
            r = client.post(url + "/retrieve", content=chunks())
            assert r.status_code == 413
        except httpx.WriteError:
            pass  # the server answered 413 and closed while we were still writing
    assert sent < 50_000_000


def test_limits_are_in_the_openapi_schema(source: str) -> None:
    schema = httpx.get(source + "/openapi.json").json()["components"]["schemas"]
    fields = schema["RetrieveRequest"]["properties"]
    assert fields["k"]["minimum"] == 1 and fields["k"]["maximum"] == 50
    assert fields["query"]["maxLength"] == 2000 and fields["query"]["minLength"] == 1
    assert fields["embedding"]["maxItems"] == fields["embedding"]["minItems"] == 384
    assert "pattern" in fields["query_id"]
