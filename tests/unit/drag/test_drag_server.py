"""The source node over HTTP: signed retrieval, info, and 4xx for bad input."""

from __future__ import annotations

import pytest
from eth_utils import to_checksum_address
from fastapi.testclient import TestClient

from drag.corpus import generate_facts, split_over_sources
from drag.receipts import Receipt, address_of, passage_hash, verify_receipt
from drag.server import SourceConfig, SourceNode, create_app

KEY = "0x" + "5a" * 32
QID = "0x" + "0f" * 32


@pytest.fixture(scope="module")
def facts():
    return generate_facts(20, seed=21)


@pytest.fixture(scope="module")
def node(tmp_path_factory, facts) -> SourceNode:
    root = tmp_path_factory.mktemp("source")
    split_over_sources(facts, [0.0], seed=0)[0].write(root / "docs")
    config = SourceConfig(
        source_id=3,
        private_key=KEY,
        chain_id=31337,
        registry_address="0x" + "ab" * 20,
        max_k=10,
        max_query_chars=200,
        max_body_bytes=1024,
    )
    return SourceNode.from_dirs(root / "docs", root / "idx", config)


@pytest.fixture(scope="module")
def client(node: SourceNode) -> TestClient:
    return TestClient(create_app(node))


def test_retrieve_returns_signed_relevant_passages(
    client: TestClient, node: SourceNode, facts
) -> None:
    fact = facts[4]
    r = client.post("/retrieve", json={"query": fact.question, "k": 3, "query_id": QID.upper()[2:]})
    assert r.status_code == 200, r.text
    body = r.json()
    texts = [p["text"] for p in body["passages"]]
    assert len(texts) == 3 and texts[0] == fact.text
    assert body["passages"][0]["passage_hash"] == "0x" + passage_hash(fact.text).hex()
    assert body["passages"][0]["doc_id"] == f"docs.jsonl#{fact.fact_id}"
    receipt = Receipt.from_json(body["receipt"])
    assert body["receipt"]["query_id"] == QID
    assert verify_receipt(receipt, node.domain, address_of(KEY), texts, bytes.fromhex(QID[2:]), 3)


def test_health_info_and_openapi(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok", "passages": 20}
    info = client.get("/info").json()
    assert info["source_id"] == 3 and info["address"] == address_of(KEY)
    assert info["passages"] == 20 and info["registry"] == to_checksum_address("0x" + "ab" * 20)
    assert info["chain_id"] == 31337 and info["max_k"] == 10
    assert "/retrieve" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"query": "q", "k": 0, "query_id": QID}, "k=0 is out of range; ask for 1..10"),
        ({"query": "q", "k": 11, "query_id": QID}, "k=11 is out of range"),
        ({"query": "   ", "k": 1, "query_id": QID}, "query is empty"),
        ({"query": "x" * 201, "k": 1, "query_id": QID}, "the limit is 200"),
        ({"query": "q", "k": 1, "query_id": "0x1234"}, "query_id"),
        ({"query": "q", "k": 1}, "query_id: Field required"),
        ({"query": "q", "k": "many", "query_id": QID}, "k:"),
    ],
)
def test_bad_input_is_422_with_a_message(client: TestClient, body: dict, fragment: str) -> None:
    r = client.post("/retrieve", json=body)
    assert r.status_code == 422
    assert fragment in r.json()["error"]


def test_oversized_and_malformed_bodies(client: TestClient) -> None:
    big = {"query": "q" * 2000, "k": 1, "query_id": QID}
    r = client.post("/retrieve", json=big)
    assert r.status_code == 413 and "larger than 1024 bytes" in r.json()["error"]

    def chunks():
        yield b'{"query": "'
        for _ in range(20):
            yield b"q" * 100
        yield b'", "k": 1}'

    r = client.post("/retrieve", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = client.post("/retrieve", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"].startswith("invalid request")
    assert client.get("/retrieve").status_code == 405


def test_receipts_are_numbered_and_a_query_id_is_signed_once(
    client: TestClient, node: SourceNode, facts
) -> None:
    """Nonces rise by one per answer, survive a restart, and a repeated query id is 409."""
    qids = ["0x" + f"{i:064x}" for i in (101, 102)]
    nonces = []
    for qid in qids:
        r = client.post("/retrieve", json={"query": facts[0].question, "k": 1, "query_id": qid})
        assert r.status_code == 200, r.text
        nonces.append(r.json()["receipt"]["nonce"])
    assert nonces[1] == nonces[0] + 1 and client.get("/info").json()["last_nonce"] == nonces[1]
    again = client.post("/retrieve", json={"query": "other", "k": 1, "query_id": qids[0]})
    assert again.status_code == 409 and "already answered" in again.json()["error"]

    restarted = TestClient(create_app(SourceNode(node.index, node.config)))
    r = restarted.post("/retrieve", json={"query": "x", "k": 1, "query_id": qids[1]})
    assert r.status_code == 409
    r = restarted.post("/retrieve", json={"query": "x", "k": 1, "query_id": "0x" + "ee" * 32})
    assert r.json()["receipt"]["nonce"] == nonces[1] + 1
