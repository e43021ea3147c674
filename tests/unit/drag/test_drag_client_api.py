"""The long-running client (serve-client app, batch reading) and the probe prior, over real
HTTP source nodes: a clean one and a fully polluted one."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from drag.client import ClientConfig, DragClient
from drag.client_api import create_client_app
from drag.corpus import QAExample, SourceCorpus, generate_facts, questions, split_over_sources
from drag.feedback import FeedbackQueue
from drag.generate import ExtractiveGenerator
from drag.index import PassageIndex
from drag.probe import aprobe
from drag.receipts import ReceiptDomain, address_of
from drag.registry import SourceRecord, StaticDirectory
from drag.server import BackgroundServer, SourceConfig, SourceNode, create_app
from drag.service import QueryService, read_batch
from marketplace.errors import ConfigError

DOMAIN = ReceiptDomain(31337, "0x" + "dd" * 20)
KEYS = ["0x" + f"{i + 7:02x}" * 32 for i in range(2)]


@pytest.fixture(scope="module")
def facts():
    return generate_facts(16, seed=44)


@pytest.fixture(scope="module")
def servers(tmp_path_factory, facts):
    root = tmp_path_factory.mktemp("client-api")
    corpora = split_over_sources(facts, [0.0, 1.0], seed=44)
    running = []
    for i, corpus in enumerate(corpora):
        SourceCorpus(i, 0.0, corpus.documents).write(root / f"s{i}" / "docs")
        index = PassageIndex(root / f"s{i}" / "idx")
        index.sync(root / f"s{i}" / "docs")
        config = SourceConfig(
            source_id=i + 1,
            private_key=KEYS[i],
            chain_id=DOMAIN.chain_id,
            registry_address=DOMAIN.verifying_contract,
        )
        running.append(BackgroundServer(create_app(SourceNode(index, config))).start())
    yield running
    for s in running:
        s.stop()


def _client(servers, tmp_path: Path, n_sources: int = 1) -> DragClient:
    records = [SourceRecord(i + 1, address_of(KEYS[i]), s.url) for i, s in enumerate(servers)]
    directory = StaticDirectory(DOMAIN, records)
    queue = FeedbackQueue(tmp_path / "fb.jsonl", directory.submit_feedback, max_batch=100)
    config = ClientConfig(n_sources=n_sources, k=3, top_n=3, timeout_s=5.0)
    return DragClient(directory, ExtractiveGenerator(), config, queue)


def test_probes_give_new_sources_a_prior(servers, facts, tmp_path: Path) -> None:
    client = _client(servers, tmp_path)
    probes = questions(facts[:4])

    async def run():
        async with client:
            return await aprobe(client, probes)

    report = asyncio.run(run())
    assert report.asked == {1: 4, 2: 4}
    assert report.right[1] == 4 and report.right.get(2, 0) == 0
    assert client.queue is not None and len(client.queue) == 8
    client.queue.flush()
    scores = {s.source_id: s for s in client.directory.list_sources()}
    assert scores[1].reliability() > 0.8 > 0.2 > scores[2].reliability()
    # with the prior, Thompson sampling picks the clean source for the first questions
    picks = [
        client.query(f.question, seed=i).chosen[0].source_id for i, f in enumerate(facts[4:12])
    ]
    assert picks.count(1) >= 7
    # an already judged source is not probed again
    assert asyncio.run(aprobe(client, probes, min_evidence=3.0)).asked == {}
    with pytest.raises(ConfigError, match="probe question"):
        asyncio.run(aprobe(client, []))


def test_serve_client_answers_judges_and_refuses_bad_bodies(servers, facts, tmp_path) -> None:
    client = _client(servers[:1], tmp_path)
    assert client.queue is not None
    status = {"pending": 0}
    app = create_client_app(
        QueryService(client), lambda: {**status, "pending": len(client.queue or [])}
    )
    with BackgroundServer(app) as api, httpx.Client(base_url=api.url, timeout=30) as http:
        fact = facts[0]
        out = http.post("/query", json={"question": fact.question, "truth": [fact.answer.lower()]})
        assert out.status_code == 200, out.text
        body = out.json()
        assert body["answer"] == fact.answer and body["correct"] is True
        assert body["feedback"]["queued"] == 1 and body["confidence"] > 0.5
        assert http.get("/feedback").json()["pending"] == 1
        second = http.post("/query", json={"question": facts[1].question, "seed": 3}).json()
        assert second["answer"] == facts[1].answer and "correct" not in second
        assert http.get("/health").json()["answered"] == 2
        assert http.post("/query", json={"question": ""}).status_code == 422
        assert http.post("/query", json={"question": "x" * 5000}).status_code == 422
        assert http.post("/query", json={"question": "   "}).status_code == 400
        assert http.post("/feedback/flush").status_code == 409


def test_batch_files_jsonl_or_plain(tmp_path: Path) -> None:
    path = tmp_path / "batch.jsonl"
    rows = [
        json.dumps({"id": "a", "question": "What is the capital of Peru?", "answer": "Lima"}),
        "Who wrote Hamlet?",
        json.dumps({"question": "Q?", "truth": ["x"], "aliases": ["y"]}),
    ]
    path.write_text("\n".join(rows) + "\n\n", encoding="utf-8")
    items = list(read_batch(path))
    assert [(i.qid, i.truth) for i in items] == [("a", ("Lima",)), ("2", ()), ("3", ("x", "y"))]
    path.write_text('{"question": 3}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match='needs a string "question"'):
        list(read_batch(path))
    with pytest.raises(ConfigError, match="does not exist"):
        list(read_batch(tmp_path / "missing.jsonl"))
    assert QAExample("q", ("a",), aliases=("b",)).accepted == ("a", "b")
