"""Property-based fuzzing of the dRAG source node's HTTP API (issue 14).

Requests are generated from the shape the OpenAPI schema publishes (``RetrieveRequest``:
query, k, query_id, embedding) with hostile values in every field (lone surrogates,
control characters, huge and non-integer numbers, NaN, nesting, wrong types), as raw or
mutated bytes under any content type, and against any path and method. They go through
the real app (routing, the shared server guard, validation, the node's search and
signing) in process; no request may give a 5xx or raise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from fuzz.http_fuzz import (
    FAST,
    LONG,
    check_raw_response,
    check_response,
    content_types,
    dumps,
    hostile_text,
    json_values,
    long_numbers,
    mutated,
    path_text,
    raw_requests,
    run_target,
    send_raw,
)
from hypothesis import strategies as st

from drag.server import BackgroundServer, SourceConfig, SourceNode, create_app

# large generated bodies make hypothesis warn about long reprs; they are the point here
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")

DIM = 384


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> SourceNode:
    root = tmp_path_factory.mktemp("fuzz-source")
    (root / "docs").mkdir()
    for i in range(5):
        (root / "docs" / f"d{i}.txt").write_text(f"Fact number {i}: the sky has {i} moons.")
    config = SourceConfig(
        source_id=1, private_key="0x" + "5a" * 32, chain_id=31337,
        registry_address="0x" + "ab" * 20, max_k=10, max_query_chars=300,
        # the per-client limits have their own tests; fuzz everything else
        rate_per_s=1e9, burst=10**9, work_share=1e9,
    )  # fmt: skip
    return SourceNode.from_dirs(root / "docs", root / "idx", config)


@pytest.fixture(scope="module")
def client(node: SourceNode) -> Iterator[TestClient]:
    with TestClient(create_app(node)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def server(node: SourceNode) -> Iterator[BackgroundServer]:
    """The same node behind a real uvicorn socket, for requests written byte by byte."""
    with BackgroundServer(create_app(node)) as running:
        yield running


unit_vectors = st.integers(0, 2**32 - 1).map(
    lambda seed: (lambda v: (v / np.linalg.norm(v)).tolist())(
        np.random.default_rng(seed).normal(size=DIM)
    )
)
query_ids = st.one_of(
    st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex()),
    st.binary(min_size=32, max_size=32).map(lambda b: b.hex().upper()),
    hostile_text,
)
retrieve_bodies = st.fixed_dictionaries(
    {
        "query": st.one_of(hostile_text, st.text(min_size=1, max_size=400), json_values),
        "k": st.one_of(st.integers(-5, 15), json_values),
        "query_id": st.one_of(query_ids, json_values),
    },
    optional={
        "embedding": st.one_of(unit_vectors, st.lists(st.floats(), max_size=DIM + 2), json_values),
        "extra": json_values,
    },
)
retrieve_requests = st.tuples(
    st.one_of(
        mutated(st.builds(dumps, retrieve_bodies, st.booleans())),
        mutated(st.builds(dumps, json_values, st.booleans())),
        st.binary(max_size=600),
        long_numbers,
    ),
    content_types,
)
other_requests = st.tuples(
    st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]),
    st.one_of(
        st.sampled_from(["/health", "/info", "/retrieve", "/openapi.json", "/docs", "/"]),
        path_text.map(lambda p: "/" + p),
    ),
    st.dictionaries(st.sampled_from(["k", "query", "q", "\u00e9"]), hostile_text, max_size=2),
)


def _post(client: TestClient) -> Callable[[tuple[bytes, str | None]], None]:
    def check(case: tuple[bytes, str | None]) -> None:
        body, kind = case
        headers = {"content-type": kind} if kind else {}
        check_response(client.post("/retrieve", content=body, headers=headers))

    return check


def _any(client: TestClient) -> Callable[[tuple[str, str, dict[str, Any]]], None]:
    def check(case: tuple[str, str, dict[str, Any]]) -> None:
        method, path, params = case
        params = {k: v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
                  for k, v in params.items()}  # fmt: skip
        check_response(client.request(method, path, params=params))

    return check


def test_fuzz_source_retrieve(client: TestClient, capsys, record_property) -> None:
    run_target("source POST /retrieve", retrieve_requests, _post(client), FAST, capsys,
               record_property)  # fmt: skip


def test_fuzz_source_any_route(client: TestClient, capsys, record_property) -> None:
    run_target("source any route", other_requests, _any(client), FAST, capsys, record_property)


def _wire(server: BackgroundServer) -> Callable[[bytes], None]:
    def check(request: bytes) -> None:
        check_raw_response(send_raw(server.host, server.port, request))

    return check


WIRE_TARGETS = [b"/health", b"/retrieve", b"/info", b"*", b"http://x/health", b"/%ff%00"]


def test_fuzz_source_wire(server: BackgroundServer, capsys, record_property) -> None:
    run_target("source raw HTTP/1.1 over a socket", raw_requests(WIRE_TARGETS), _wire(server),
               FAST, capsys, record_property)  # fmt: skip
    assert send_raw(server.host, server.port, b"GET /health HTTP/1.1\r\nHost: x\r\n"
                    b"Connection: close\r\n\r\n").startswith(b"HTTP/1.1 200")  # fmt: skip


@pytest.mark.slow
def test_fuzz_source_wire_long(server: BackgroundServer, capsys, record_property) -> None:
    run_target("source raw HTTP/1.1 over a socket (long)", raw_requests(WIRE_TARGETS),
               _wire(server), LONG, capsys, record_property)  # fmt: skip


@pytest.mark.slow
def test_fuzz_source_retrieve_long(client: TestClient, capsys, record_property) -> None:
    run_target("source POST /retrieve (long)", retrieve_requests, _post(client), LONG, capsys,
               record_property)  # fmt: skip


@pytest.mark.slow
def test_fuzz_source_any_route_long(client: TestClient, capsys, record_property) -> None:
    run_target("source any route (long)", other_requests, _any(client), LONG, capsys,
               record_property)  # fmt: skip
