"""Fan-out over real HTTP source nodes: dead, slow, lying and impostor sources are skipped."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from drag.client import ClientConfig, DragClient
from drag.corpus import generate_facts, split_over_sources
from drag.embed import default_embedder
from drag.feedback import FeedbackQueue
from drag.generate import ExtractiveGenerator
from drag.index import PassageIndex
from drag.nonces import NonceLedger
from drag.receipts import ReceiptDomain, address_of
from drag.registry import SourceRecord, StaticDirectory
from drag.retrieve import embedding_payload, fan_out, fan_out_sync
from drag.server import BackgroundServer, SourceConfig, SourceNode, create_app
from marketplace.errors import ConfigError

DOMAIN = ReceiptDomain(31337, "0x" + "cc" * 20)
KEYS = ["0x" + f"{i + 1:02x}" * 32 for i in range(4)]


@pytest.fixture(scope="module")
def facts():
    return generate_facts(24, seed=31)


def _node(
    root: Path, docs: list[dict[str, str]], source_id: int, key: str, name: str
) -> SourceNode:
    from drag.corpus import SourceCorpus

    SourceCorpus(source_id, 0.0, docs).write(root / name / "docs")
    index = PassageIndex(root / name / "idx")
    index.sync(root / name / "docs")
    config = SourceConfig(
        source_id=source_id,
        private_key=key,
        chain_id=DOMAIN.chain_id,
        registry_address=DOMAIN.verifying_contract,
    )
    return SourceNode(index, config)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def servers(tmp_path_factory, facts):
    root = tmp_path_factory.mktemp("sources")
    clean, polluted = split_over_sources(facts, [0.0, 1.0], seed=1)
    nodes = [
        _node(root, clean.documents, 0, KEYS[0], "clean"),
        _node(root, polluted.documents, 1, KEYS[1], "polluted"),
    ]
    # a second node that signs with key 0 (its own nonce ledger, the clean index)
    impostor = SourceNode(nodes[0].index, nodes[0].config, NonceLedger(root / "impostor"))
    slow = FastAPI()

    @slow.post("/retrieve")
    async def _slow() -> dict:
        await asyncio.sleep(5)
        return {}

    garbage = FastAPI()

    @garbage.post("/retrieve")
    async def _garbage() -> dict:
        return {"passages": "nope"}

    running = [BackgroundServer(create_app(n)).start() for n in nodes]
    running += [BackgroundServer(slow).start(), BackgroundServer(garbage).start()]
    running += [BackgroundServer(create_app(impostor)).start()]
    yield running
    for server in running:
        server.stop()


def _records(servers) -> list[SourceRecord]:
    clean, polluted, slow, garbage, impostor = servers
    return [
        SourceRecord(0, address_of(KEYS[0]), clean.url),
        SourceRecord(1, address_of(KEYS[1]), polluted.url),
        SourceRecord(2, address_of(KEYS[2]), slow.url),
        SourceRecord(3, address_of(KEYS[3]), garbage.url),
        SourceRecord(4, address_of(KEYS[0]), f"http://127.0.0.1:{_closed_port()}"),
        # registered with key 3, but the server at this endpoint signs with key 0
        SourceRecord(5, address_of(KEYS[3]), impostor.url),
    ]


def test_fan_out_keeps_verified_sources_and_reports_the_rest(servers, facts) -> None:
    records = _records(servers)
    qid = bytes(range(32))
    result = asyncio.run(
        fan_out(facts[0].question, 2, records, DOMAIN, query_id=qid, timeout_s=0.8)
    )
    assert sorted(r.source.source_id for r in result.responses) == [0, 1]
    kinds = {f.source_id: f.kind for f in result.failures}
    assert kinds == {2: "timeout", 3: "bad_response", 4: "unreachable", 5: "bad_receipt"}
    assert all(f.latency_s < 3 for f in result.failures)
    assert result.query_id == qid and set(result.receipts()) == {0, 1}
    clean = next(r for r in result.responses if r.source.source_id == 0)
    assert clean.passages[0].text == facts[0].text and clean.passages[0].source_id == 0


def test_all_sources_down_is_an_empty_result_not_an_error() -> None:
    dead = [
        SourceRecord(i, address_of(KEYS[0]), f"http://127.0.0.1:{_closed_port()}") for i in range(2)
    ]
    result = fan_out_sync("anything", 3, dead, DOMAIN, timeout_s=0.5)
    assert result.responses == [] and len(result.failures) == 2 and result.passages() == []


def test_client_answers_and_feeds_back_through_the_queue(servers, facts, tmp_path: Path) -> None:
    records = _records(servers)[:2] + [_records(servers)[4]]  # clean, polluted, dead
    directory = StaticDirectory(DOMAIN, records)
    queue = FeedbackQueue(tmp_path / "fb.jsonl", directory.submit_feedback, max_batch=4)
    config = ClientConfig(n_sources=3, k=2, top_n=4, alpha=0.5, timeout_s=2.0)
    client = DragClient(directory, ExtractiveGenerator(), config, queue)
    correct = 0
    for i, fact in enumerate(facts[:6]):
        result = client.query(fact.question, seed=i)
        assert [f.kind for f in result.fanout.failures] == ["unreachable"]
        correct += result.answer.text == fact.answer
        client.feedback(result, truth=[fact.answer], seed=i)
    assert correct >= 2
    queue.flush()
    scores = {s.source_id: s for s in directory.list_sources()}
    assert scores[0].reliability() > 0.6 > 0.4 > scores[1].reliability()
    assert scores[0].usefulness > scores[1].usefulness
    # after learning, reliability reranking makes the clean source win every question
    later = [client.query(f.question, seed=100 + i) for i, f in enumerate(facts[6:10])]
    assert [r.answer.text for r in later] == [f.answer for f in facts[6:10]]


def test_fan_out_sends_one_embedding_to_every_source(servers, facts) -> None:
    seen: list[dict] = []
    spy = FastAPI()

    @spy.post("/retrieve")
    async def _spy(body: dict) -> JSONResponse:
        seen.append(body)
        return JSONResponse({"error": "spy"}, 503)

    records = _records(servers)[:2]
    with BackgroundServer(spy) as spy_server:
        targets = [*records, SourceRecord(7, address_of(KEYS[2]), spy_server.url)]
        vec = default_embedder().embed([facts[2].question])
        result = fan_out_sync(facts[2].question, 2, targets, DOMAIN, embedding=vec)
    assert len(seen) == 1 and seen[0]["embedding"] == embedding_payload(vec)
    assert len(seen[0]["embedding"]) == 384 and seen[0]["query"] == facts[2].question
    # the real sources searched with the vector and still signed valid receipts
    assert sorted(r.source.source_id for r in result.responses) == [0, 1]
    clean = next(r for r in result.responses if r.source.source_id == 0)
    assert clean.passages[0].text == facts[2].text


def test_source_that_refuses_the_embedding_is_asked_again_without_it(servers, facts) -> None:
    seen: list[dict] = []
    strict = FastAPI()

    @strict.post("/retrieve")
    async def _strict(body: dict) -> JSONResponse:
        seen.append(body)
        if "embedding" in body:
            return JSONResponse({"error": "embedding has 3 values, the index has 2"}, 422)
        return JSONResponse({"error": "down"}, 503)

    with BackgroundServer(strict) as server:
        record = SourceRecord(8, address_of(KEYS[2]), server.url)
        result = fan_out_sync("q", 1, [record], DOMAIN, embedding=[0.6, 0.8, 0.0])
    assert ["embedding" in b for b in seen] == [True, False]
    assert [f.detail for f in result.failures] == ['HTTP 503: {"error":"down"}']


def test_embedding_payload_refuses_non_finite_vectors() -> None:
    with pytest.raises(ConfigError, match="NaN"):
        embedding_payload([0.1, float("nan")])
    assert embedding_payload([[0.6, 0.8]]) == [0.6, 0.8]


def test_a_client_for_plain_http_sources_trusts_no_certificate() -> None:
    """Skipping the CA bundle for http-only fan-outs must fail closed, not open."""
    import ssl

    from drag.retrieve import new_http_client

    plain = new_http_client(3, ["http://127.0.0.1:1", "http://127.0.0.1:2"])
    ctx = plain._transport._pool._ssl_context  # type: ignore[attr-defined]
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.cert_store_stats()["x509_ca"] == 0
    tls = new_http_client(3, ["http://127.0.0.1:1", "https://example.org"])
    assert tls._transport._pool._ssl_context.cert_store_stats()["x509_ca"] > 0  # type: ignore[attr-defined]


def test_a_client_session_reuses_one_connection_per_source(servers, facts) -> None:
    """Inside ``async with DragClient``, queries share keep-alive connections; the
    retrieval (everything but the answer) is what aquery answers from."""
    directory = StaticDirectory(DOMAIN, _records(servers)[:2])
    config = ClientConfig(n_sources=2, k=2, top_n=3, timeout_s=2.0)
    client = DragClient(directory, ExtractiveGenerator(), config)

    async def session() -> list:
        async with client:
            http = client._http
            got = [await client.aretrieve(f.question, seed=i) for i, f in enumerate(facts[:3])]
            pool = http._transport._pool  # type: ignore[union-attr]
            assert len(pool.connections) == 2  # one per source, kept alive
        assert client._http is None and http.is_closed  # type: ignore[union-attr]
        return got

    retrievals = asyncio.run(session())
    assert all(not r.fanout.failures and len(r.ranked) == 3 for r in retrievals)
    assert all(r.embed_s > 0 for r in retrievals)
    answered = client.query(facts[0].question, seed=0)  # outside a session: own connections
    assert [p.text for p in answered.ranked] == [p.text for p in retrievals[0].ranked]
