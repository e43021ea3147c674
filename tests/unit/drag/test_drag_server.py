"""The source node over HTTP: signed retrieval, info, and 4xx for bad input."""

from __future__ import annotations

import json

import pytest
from eth_utils import to_checksum_address
from fastapi.testclient import TestClient

from drag.corpus import generate_facts, split_over_sources
from drag.nonces import RESERVE_BLOCK, NonceLedger
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
        # one test client sends every request of this module: the per-client rate limit
        # has its own tests (tests/unit/server), so keep it out of these
        rate_per_s=1e6,
        burst=10**6,
        work_share=1e6,
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
    """Nonces rise by one per answer, survive a restart, and a repeated query id is 409.

    The first node is never closed, so the restart is an unclean one: the counter goes on
    above the block of nonces the first node had reserved (see drag.nonces)."""
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
    assert nonces[1] < r.json()["receipt"]["nonce"] <= nonces[1] + 1 + RESERVE_BLOCK


# ------------------------------------------------------------------ client-side embedding


@pytest.fixture(scope="module")
def roomy(node: SourceNode, tmp_path_factory) -> TestClient:
    """The same index behind a node whose body limit fits a 384-float embedding."""
    config = node.config.model_copy(update={"max_body_bytes": 32_768})
    ledger = NonceLedger(tmp_path_factory.mktemp("roomy-ledger"))
    return TestClient(create_app(SourceNode(node.index, config, ledger)))


def _qid(i: int) -> str:
    return "0x" + f"{i:064x}"


def _vector(node: SourceNode, text: str) -> list[float]:
    return [float(x) for x in node.index.embedder.embed([text])[0]]


def test_embedding_gives_the_same_passages_and_a_valid_receipt(
    roomy: TestClient, node: SourceNode, facts
) -> None:
    for i, fact in enumerate(facts[:5]):
        plain = roomy.post("/retrieve", json={"query": fact.question, "k": 4, "query_id": _qid(i)})
        body = {
            "query": fact.question,
            "k": 4,
            "query_id": _qid(100 + i),
            "embedding": _vector(node, fact.question),
        }
        fast = roomy.post("/retrieve", json=body)
        assert plain.status_code == fast.status_code == 200, fast.text
        texts = [p["text"] for p in fast.json()["passages"]]
        assert texts == [p["text"] for p in plain.json()["passages"]]
        assert texts[0] == fact.text
        receipt = Receipt.from_json(fast.json()["receipt"])
        qid = bytes.fromhex(_qid(100 + i)[2:])
        assert verify_receipt(receipt, node.domain, address_of(KEY), texts, qid, 3)


def test_embedding_steers_the_search_not_the_query_text(
    roomy: TestClient, node: SourceNode, facts
) -> None:
    # a client that lies about its embedding gets the passages of the vector it sent (and,
    # through the word-share half of the hybrid search, those of its query text)
    body = {
        "query": facts[0].question,
        "k": 2,
        "query_id": _qid(200),
        "embedding": _vector(node, facts[1].question),
    }
    r = roomy.post("/retrieve", json=body)
    assert r.status_code == 200
    assert {p["text"] for p in r.json()["passages"]} == {facts[0].text, facts[1].text}


@pytest.mark.parametrize(
    ("case", "embedding", "needle"),
    [
        (1, [0.05] * 383, "dimension 384"),
        (2, [float("nan")] + [0.0] * 383, "NaN"),
        (3, [0.5] * 384, "L2 norm"),
        (4, [0.0] * 384, "L2 norm"),
    ],
)
def test_bad_embedding_is_422_naming_the_field(
    roomy: TestClient, case: int, embedding: list[float], needle: str
) -> None:
    ledger = roomy.app.state.node.ledger
    before = ledger.last
    qid = _qid(300 + case)
    r = roomy.post(
        "/retrieve",
        content=json.dumps({"query": "anything", "k": 2, "query_id": qid, "embedding": embedding}),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert "embedding" in r.json()["error"] and needle in r.json()["error"]
    assert ledger.last == before
    # the refused query id was not burnt: the same id without the vector is answered
    ok = roomy.post("/retrieve", json={"query": "anything", "k": 2, "query_id": qid})
    assert ok.status_code == 200, ok.text


def test_a_node_at_the_registrys_nonce_bound_answers_503(
    node: SourceNode, tmp_path_factory, facts
) -> None:
    """A receipt beyond the registry's step bound would be refused on-chain; the node says
    so (503, retry later) instead of signing it."""
    ledger = NonceLedger(tmp_path_factory.mktemp("bounded"), fsync=False, ceiling=lambda: 1)
    bounded = TestClient(create_app(SourceNode(node.index, node.config, ledger)))
    body = {"query": facts[0].question, "k": 1}
    assert bounded.post("/retrieve", json={**body, "query_id": _qid(1)}).status_code == 200
    r = bounded.post("/retrieve", json={**body, "query_id": _qid(2)})
    assert r.status_code == 503 and "MAX_NONCE_STEP" in r.json()["error"]
