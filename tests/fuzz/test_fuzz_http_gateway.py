"""Property-based fuzzing of the content gateway's HTTP API (issue 14).

The trustless gateway every trainer and aggregator serves takes ``GET``/``HEAD
/ipfs/{cid}?format=raw``. Requests are generated around that shape: real CIDs (stored and
not), CID-like base32 strings, arbitrary path text, any ``format`` and ``Accept`` value,
any method, and bodies. They go through the real app (routing, the shared server guard,
CID parsing, a local store that verifies every block); no request may give a 5xx.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from fuzz.http_fuzz import (
    FAST,
    LONG,
    check_raw_response,
    check_response,
    hostile_text,
    path_text,
    raw_requests,
    run_target,
    send_raw,
)
from hypothesis import strategies as st

from marketplace.server import ServerLimits
from marketplace.storage import LocalStore, cid_for
from marketplace.storage.gateway import BackgroundServer, make_gateway_app

# large generated bodies make hypothesis warn about long reprs; they are the point here
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")

BLOCKS = [b"", b"x", bytes(range(256)) * 8]


LIMITS = ServerLimits(max_body_bytes=1024, rate_per_s=1e9, burst=10**9, work_share=1e9)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LocalStore:
    store = LocalStore(tmp_path_factory.mktemp("fuzz-gateway"))
    for block in BLOCKS:
        store.put(block)
    return store


@pytest.fixture(scope="module")
def client(store: LocalStore) -> Iterator[TestClient]:
    with TestClient(make_gateway_app(store, LIMITS)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def server(store: LocalStore) -> Iterator[BackgroundServer]:
    with BackgroundServer(make_gateway_app(store, LIMITS), limits=LIMITS) as running:
        yield running


def _safe(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


cids = st.one_of(
    st.sampled_from([cid_for(b) for b in BLOCKS]),
    st.binary(max_size=64).map(cid_for),  # well-formed, not stored
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz234567", max_size=80).map(lambda s: "b" + s),
    st.sampled_from(["bafkrei", "Qm" + "1" * 44, "zdj7W", "bafy" + "a" * 55, "f01551220"]),
    hostile_text.map(_safe),
)
requests = st.tuples(
    st.sampled_from(["GET", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]),
    st.one_of(cids.map(lambda c: f"/ipfs/{c}"), path_text.map(lambda p: "/" + p)),
    st.one_of(st.none(), st.sampled_from(["raw", "car", "dag-json", ""]), hostile_text),
    st.one_of(
        st.none(),
        st.sampled_from(
            [
                "application/vnd.ipld.raw",
                "application/vnd.ipld.car",
                "*/*",
                "application/vnd.ipld.car, application/vnd.ipld.dag-json;q=0.5",
                "text/html",
                ",,;",
                "application/vnd.ipld.",
            ]
        ),
    ),  # fmt: skip
    st.one_of(st.just(b""), st.binary(max_size=2048)),
)


def _check(client: TestClient) -> Callable[[tuple], None]:
    def check(case: tuple) -> None:
        method, path, fmt, accept, body = case
        params = {} if fmt is None else {"format": fmt.encode("utf-8", "surrogatepass").decode(
            "utf-8", "replace")}  # fmt: skip
        headers = {} if accept is None else {"accept": accept}
        response = client.request(method, path, params=params, headers=headers, content=body)
        check_response(response)
        if response.status_code == 200 and method == "GET":
            assert cid_for(response.content) in path  # served bytes match the CID asked

    return check


def test_fuzz_gateway(client: TestClient, capsys, record_property) -> None:
    run_target("gateway /ipfs", requests, _check(client), FAST, capsys, record_property)


@pytest.mark.slow
def test_fuzz_gateway_long(client: TestClient, capsys, record_property) -> None:
    run_target("gateway /ipfs (long)", requests, _check(client), LONG, capsys, record_property)


WIRE_TARGETS = [f"/ipfs/{cid_for(BLOCKS[1])}?format=raw".encode(), b"/ipfs/", b"*", b"/ipfs/%ff"]


def _wire(server: BackgroundServer) -> Callable[[bytes], None]:
    def check(request: bytes) -> None:
        check_raw_response(send_raw(server.host, server.port, request))

    return check


def test_fuzz_gateway_wire(server: BackgroundServer, capsys, record_property) -> None:
    run_target("gateway raw HTTP/1.1 over a socket", raw_requests(WIRE_TARGETS), _wire(server),
               FAST, capsys, record_property)  # fmt: skip
    honest = send_raw(server.host, server.port, b"GET " + WIRE_TARGETS[0] + b" HTTP/1.1\r\n"
                      b"Host: x\r\nConnection: close\r\n\r\n")  # fmt: skip
    assert honest.startswith(b"HTTP/1.1 200") and honest.endswith(BLOCKS[1])


@pytest.mark.slow
def test_fuzz_gateway_wire_long(server: BackgroundServer, capsys, record_property) -> None:
    run_target("gateway raw HTTP/1.1 over a socket (long)", raw_requests(WIRE_TARGETS),
               _wire(server), LONG, capsys, record_property)  # fmt: skip
