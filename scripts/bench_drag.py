"""Benchmark the decentralized RAG: accuracy under pollution, retrieval latency, feedback gas.

Accuracy (the setting of Reliable-dRAG, Lu et al. 2025, arXiv:2511.07577): a seeded
synthetic QA corpus (invented facts with one-token answers, :mod:`drag.corpus`), every fact
held by all 6 sources, source i polluting 0, 20, 40, 60, 80, 100% of its documents,
token-level (answer replaced by a random answer token) and document-level (wrong answer plus
random text). Compared, all with the same offline extractive generator and top-5 contexts:

- centralized on clean data: one index of the clean facts;
- centralized on polluted data: one index of the distinct documents of all six sources
  (a central store keeps one copy of each distinct document; the paper's setting). The
  union *with* its duplicates is reported too: there, copies of the clean statement outvote
  the scattered wrong answers, so it is a much stronger baseline than the paper's;
- dRAG with the paper's usefulness-proportional sampling, and with our Thompson sampling
  over Beta reliability: real source nodes over HTTP (in-process uvicorn servers, real
  MiniLM embeddings, real EIP-712 receipts with nonces), real on-chain feedback on the
  embedded chain with ``SourceRegistry`` (one ``applyFeedback`` per 20 deltas, through the
  persistent feedback queue). Warm-up questions with ground-truth feedback, then disjoint
  test questions without feedback; "cold" is the test accuracy before any feedback.

``--collude`` makes polluters collude (every polluted copy of a document states the same
wrong answer); ``--equal-votes`` gives every passage one vote instead of its source's
log-odds reliability (:func:`drag.rerank.vote_weight`).

Latency: p50/p99 of one retrieval (query all 6 sources of 10,000 one-sentence passages each,
k=5, verify every receipt, rerank) over HTTP, generator excluded, timed around
``DragClient.aretrieve``, the code ``ledgerlearn drag query`` runs before it answers. Three
ways on the same sources, rotating per query: the client embeds the query once and sends the
vector over the keep-alive connections of one client session (the default, its embedding
time included); the same with new connections per query (one CLI process); or every source
embeds it itself.
``--skip accuracy gas`` reruns only the latency and keeps the other sections of ``--out``.
Indexes are cached under ``--cache-dir`` so reruns do not re-embed.

Gas: ``applyFeedback`` per authenticated update for batches of 1, 5, 10, 20, 50 deltas, sent
through :class:`drag.chain_directory.ChainDirectory` with receipts signed by source keys, on
the embedded chain (py-evm), after a warm-up batch as in ``scripts/bench_registry_gas.py``.

Run: ``.venv/bin/python scripts/bench_drag.py [--quick]``; writes
``benchmarks/results/drag.json`` (``--out``) and prints tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from eth_account import Account
from eth_utils import keccak
from rich.console import Console
from rich.table import Table

from drag.chain_directory import ChainDirectory
from drag.client import ClientConfig, DragClient
from drag.corpus import (
    Fact,
    PollutionMode,
    QAExample,
    SourceCorpus,
    generate_facts,
    load_docs_jsonl,
    load_qa_jsonl,
    questions,
    split_documents_over_sources,
    split_over_sources,
)
from drag.embed import CachedEmbedder, default_embedder, get_model
from drag.feedback import FeedbackDelta, FeedbackPolicy, FeedbackQueue
from drag.generate import ExtractiveGenerator
from drag.index import PassageIndex
from drag.ingest import ChunkConfig
from drag.judge import is_correct
from drag.probe import probe
from drag.receipts import ReceiptDomain, new_query_id, sign_receipt
from drag.registry import SourceRecord, StaticDirectory
from drag.rerank import rerank, select_contexts
from drag.retrieve import RetrievedPassage
from drag.server import (
    OPERATOR_CLIENT_LIMITS,
    BackgroundServer,
    SourceConfig,
    SourceNode,
    create_app,
)
from marketplace.chain.connection import Chain, connect_embedded
from marketplace.chain.deploy import DEFAULT_SOURCE_STAKE, deploy_contract
from marketplace.chain.registry import RegistryClient
from marketplace.chain.tx import TxSender
from marketplace.paths import ledgerlearn_home

log = logging.getLogger("bench_drag")
console = Console()

RATES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
BATCHES = (1, 5, 10, 20, 50)
REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "drag.json"
DEFAULT_REAL_OUT = REPO / "benchmarks" / "results" / "drag_real.json"
FIRST_QUERIES = 50
GOALS = {
    "points_above_centralized_polluted": 15.0,
    "points_below_centralized_clean": 3.0,
    "gas_per_update_at_20": 12_000,
    "retrieval_p50_ms": 50.0,
    "gold_context_accuracy": 95.0,
}


def source_key(i: int) -> str:
    """Receipt-signing key of bench source ``i`` (deterministic, not a dev account)."""
    return "0x" + keccak(text=f"ledgerlearn bench drag source {i}").hex()


# ------------------------------------------------------------------ chain + sources


@dataclass
class Deployment:
    chain: Chain
    admin: RegistryClient
    evaluator: RegistryClient


def deploy_registry(n_sources: int, endpoints: Sequence[str]) -> tuple[Deployment, list[int]]:
    """A fresh embedded chain with SourceRegistry, ``n_sources`` registered sources (owned by
    dev accounts 1.., signing with :func:`source_key`) and an evaluator (dev account 9)."""
    chain = connect_embedded()
    admin_account = chain.dev_account(0)
    address = deploy_contract(
        TxSender(chain, admin_account), "SourceRegistry", DEFAULT_SOURCE_STAKE
    ).address
    admin = RegistryClient(chain, address, admin_account)
    ids = []
    for i in range(n_sources):
        owner = admin.as_account(chain.dev_account(1 + i % 8))
        sid, _ = owner.register_source(Account.from_key(source_key(i)).address, endpoints[i])
        ids.append(sid)
    evaluator = chain.dev_account(9)
    admin.grant_evaluator(evaluator.address)
    return Deployment(chain, admin, admin.as_account(evaluator)), ids


def build_indexes(
    corpora: Sequence[SourceCorpus],
    root: Path,
    embedder: CachedEmbedder,
    chunk: ChunkConfig | None = None,
) -> list[PassageIndex]:
    """One persisted index per source under ``root/s<i>`` (reused when already built)."""
    indexes = []
    for i, corpus in enumerate(corpora):
        docs = root / f"s{i}" / "docs"
        if not (docs / "docs.jsonl").is_file():
            corpus.write(docs)
        start = time.perf_counter()
        index = PassageIndex(root / f"s{i}" / "idx", embedder=embedder, chunk=chunk)
        report = index.sync(docs)
        if report.embedded_passages:
            log.info(
                "source %d: embedded %d passages in %.1f s",
                i,
                report.embedded_passages,
                time.perf_counter() - start,
            )
        indexes.append(index)
    return indexes


def start_sources(
    indexes: Sequence[PassageIndex], chain_id: int, registry: str, first_id: int = 1
) -> list[BackgroundServer]:
    servers = []
    for i, index in enumerate(indexes):
        config = SourceConfig(
            source_id=first_id + i,
            private_key=source_key(i),
            chain_id=chain_id,
            registry_address=registry,
            **OPERATOR_CLIENT_LIMITS,
        )
        servers.append(BackgroundServer(create_app(SourceNode(index, config))).start())
    return servers


def preallocated_servers(n: int) -> list[str]:
    """Endpoints are registered before the servers exist: reserve free ports for them."""
    import socket

    ports = []
    for _ in range(n):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(int(s.getsockname()[1]))
    return [f"http://127.0.0.1:{p}" for p in ports]


# ------------------------------------------------------------------ accuracy


@dataclass
class Dataset:
    """Documents and questions of one accuracy study: the synthetic facts, or a corpus
    read from ``--docs``/``--qa`` (gold documents named by id)."""

    name: str
    docs: dict[str, str]
    examples: list[QAExample]
    facts: list[Fact] | None = None

    def sources(self, mode: PollutionMode, seed: int, collude: bool = False) -> list[SourceCorpus]:
        if self.facts is not None:
            return split_over_sources(self.facts, RATES, seed=seed, mode=mode, collude=collude)
        return split_documents_over_sources(
            self.docs, self.examples, RATES, seed, mode, collude=collude
        )


def synthetic_dataset(n_facts: int, seed: int) -> Dataset:
    facts = generate_facts(n_facts, seed=seed)
    return Dataset("synthetic", {f.fact_id: f.text for f in facts}, questions(facts), facts)


def corpus_dataset(docs_path: Path, qa_path: Path) -> Dataset:
    docs = load_docs_jsonl(docs_path)
    examples = load_qa_jsonl(qa_path, docs)
    if not examples:
        raise SystemExit(f"{qa_path} has no questions")
    return Dataset(docs_path.parent.name or docs_path.stem, docs, examples)


def judged(generator: ExtractiveGenerator, example: QAExample, contexts: Sequence[str]) -> bool:
    answer = generator.generate(example.question, contexts)
    return is_correct(answer.text, example.answers, example.aliases)


def centralized_accuracy(
    index: PassageIndex,
    generator: ExtractiveGenerator,
    tests: Sequence[QAExample],
    top_n: int,
    k: int,
    lexical_weight: float,
) -> float:
    """One index, the same hybrid search for candidates (k) as a source node, hybrid
    reordering and context selection as the client (no reliability: one source)."""
    correct = 0
    for ex in tests:
        hits = index.search_hybrid(ex.question, k, lexical_weight=lexical_weight)
        passages = [
            RetrievedPassage(h.passage.text, h.score, b"", h.passage.doc_id, h.passage.chunk_id, 0)
            for h in hits
        ]
        ranked = rerank(passages, {}, 0.0, question=ex.question, lexical_weight=lexical_weight)
        correct += judged(generator, ex, [r.text for r in select_contexts(ranked, top_n)])
    return 100.0 * correct / len(tests)


def gold_context_accuracy(
    dataset: Dataset, generator: ExtractiveGenerator, examples: Sequence[QAExample]
) -> float:
    """The generator given only each question's gold documents: its ceiling."""
    correct = sum(judged(generator, ex, [dataset.docs[d] for d in ex.documents]) for ex in examples)
    return 100.0 * correct / len(examples)


def central_index(
    root: Path, name: str, texts: Sequence[str], embedder: CachedEmbedder, chunk: ChunkConfig
) -> Any:
    docs = root / name / "docs"
    path = docs / "docs.jsonl"
    lines = "".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts))
    if not path.is_file() or path.read_text(encoding="utf-8") != lines:
        docs.mkdir(parents=True, exist_ok=True)
        path.write_text(lines, encoding="utf-8")
    index = PassageIndex(root / name / "idx", embedder=embedder, chunk=chunk)
    index.sync(docs)
    return index


def drag_run(
    deployment: Deployment,
    strategy: str,
    generator: ExtractiveGenerator,
    warmup: Sequence[QAExample],
    tests: Sequence[QAExample],
    config: ClientConfig,
    seed: int,
    workdir: Path,
    probes: Sequence[QAExample] = (),
) -> dict[str, Any]:
    """Cold test accuracy, (probes,) warm-up with on-chain feedback, then test accuracy."""
    directory = ChainDirectory(deployment.evaluator)
    name = strategy + ("-probed" if probes else "")
    queue = FeedbackQueue(workdir / f"queue-{name}.jsonl", directory.submit_feedback, 20, 1e9)
    cfg = ClientConfig(**{**vars(config), "strategy": strategy})
    client = DragClient(directory, generator, cfg, queue)

    def accuracy(examples: Sequence[QAExample], offset: int) -> tuple[float, dict[int, int]]:
        correct, picks = 0, dict.fromkeys(range(1, len(RATES) + 1), 0)
        for i, ex in enumerate(examples):
            result = client.query(ex.question, seed=seed + offset + i)
            correct += is_correct(result.answer.text, ex.answers, ex.aliases)
            for s in result.chosen:
                picks[s.source_id] += 1
        return 100.0 * correct / len(examples), picks

    cold, _ = accuracy(tests, 1_000_000)
    start = time.perf_counter()
    probe_out: dict[str, Any] = {}
    if probes:
        report = probe(client, probes)
        queue.flush()
        probe_out = {
            "questions": len(probes),
            "right_per_source": {sid: f"{report.right.get(sid, 0)}/{n}"
                                 for sid, n in sorted(report.asked.items())},
        }  # fmt: skip
    warm_hits: list[bool] = []
    for i, ex in enumerate(warmup):
        result = client.query(ex.question, seed=seed + i)
        warm_hits.append(is_correct(result.answer.text, ex.answers, ex.aliases))
        client.feedback(result, truth=list(ex.accepted), seed=i)
    queue.flush()
    warm_s = time.perf_counter() - start
    acc, picks = accuracy(tests, 2_000_000)
    scores = {
        r.source_id: {
            "pollution": RATES[r.source_id - 1],
            "reliability": round(r.reliability(cfg.prior), 4),
            "usefulness": round(r.usefulness, 4),
        }
        for r in directory.list_sources()
    }
    first = warm_hits[:FIRST_QUERIES]
    out: dict[str, Any] = {
        "cold_accuracy": round(cold, 2),
        "first_50_accuracy": round(100.0 * sum(first) / len(first), 2) if first else None,
        "warmup_accuracy": round(100.0 * sum(warm_hits) / len(warmup), 2),
        "accuracy": round(acc, 2),
        "test_picks_per_source": picks,
        "scores_after_warmup": scores,
        "feedback_dropped": directory.dropped,
        "warmup_seconds": round(warm_s, 1),
    }
    if probes:
        out["probes"] = probe_out
    return out


def accuracy_setting(
    mode: PollutionMode, dataset: Dataset, args: argparse.Namespace, embedder: CachedEmbedder
) -> dict[str, Any]:
    corpora = dataset.sources(mode, args.seed, args.collude)
    chunk = ChunkConfig(chunk_words=args.chunk_words, overlap=min(20, args.chunk_words // 4))
    colluding = "-collude" if args.collude else ""
    if dataset.facts is not None:
        root = args.cache_dir / f"acc-{mode}-n{args.facts}-s{args.seed}{colluding}"
    else:
        root = args.cache_dir / (
            f"acc-{dataset.name}-{mode}-s{args.seed}-c{args.chunk_words}{colluding}"
        )
    indexes = build_indexes(corpora, root, embedder, chunk)
    order = list(range(len(dataset.examples)))
    random.Random(args.seed).shuffle(order)
    n_warm = min(args.warmup, len(order) // 2)
    warmup_all = [dataset.examples[i] for i in order[:n_warm]]
    tests = [dataset.examples[i] for i in order[n_warm : n_warm + args.test]]
    probes, warmup = warmup_all[: args.probes], warmup_all[args.probes :]
    generator = ExtractiveGenerator()
    top_n = 5
    union = [d["text"] for c in corpora for d in c.documents]
    central = {
        "centralized_clean": central_index(
            root, "central-clean", list(dataset.docs.values()), embedder, chunk
        ),
        "centralized_polluted": central_index(
            root, "central-polluted", list(dict.fromkeys(union)), embedder, chunk
        ),
        "centralized_polluted_with_duplicates": central_index(
            root, "central-polluted-dup", union, embedder, chunk
        ),
    }
    out: dict[str, Any] = {
        name: round(
            centralized_accuracy(index, generator, tests, top_n, args.k, args.lexical_weight), 2
        )
        for name, index in central.items()
    }
    out["gold_context"] = round(gold_context_accuracy(dataset, generator, tests), 2)
    out["gold_context_all_questions"] = round(
        gold_context_accuracy(dataset, generator, dataset.examples), 2
    )
    endpoints = preallocated_servers(len(RATES))
    deployment, ids = deploy_registry(len(RATES), endpoints)
    config = ClientConfig(
        n_sources=args.n_sources,
        k=args.k,
        top_n=top_n,
        alpha=args.alpha,
        lexical_weight=args.lexical_weight,
        weighted_vote=not args.equal_votes,
        policy=FeedbackPolicy(reliability_evidence=args.reliability_evidence),
    )
    servers = []
    for i, (index, endpoint) in enumerate(zip(indexes, endpoints, strict=True)):
        node = SourceNode(
            index,
            SourceConfig(
                source_id=ids[i],
                private_key=source_key(i),
                chain_id=deployment.chain.chain_id,
                registry_address=deployment.admin.address,
                **OPERATOR_CLIENT_LIMITS,
            ),
        )
        servers.append(BackgroundServer(create_app(node), port=int(endpoint.rsplit(":", 1)[1])))
    for s in servers:
        s.start()
    base = deployment.chain.snapshot()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            runs: list[tuple[str, str, Sequence[QAExample]]] = [
                ("drag_usefulness", "usefulness", ()),
                ("drag_thompson", "thompson", ()),
            ]
            if probes:
                runs.append(("drag_thompson_probed", "thompson", probes))
            for name, strategy, probe_set in runs:
                deployment.chain.revert(base)
                out[name] = drag_run(
                    deployment, strategy, generator, warmup, tests, config, args.seed,
                    Path(tmp), probe_set,
                )  # fmt: skip
                log.info("%s %s: %s", mode, name, out[name]["accuracy"])
    finally:
        for s in servers:
            s.stop()
    out["config"] = {
        "corpus": dataset.name,
        "documents": len(dataset.docs),
        "questions": len(dataset.examples),
        "facts": args.facts if dataset.facts is not None else None,
        "chunk_words": args.chunk_words,
        "probe_questions": len(probes),
        "warmup_questions": len(warmup),
        "test_questions": len(tests),
        "sources": len(RATES),
        "pollution_rates": list(RATES),
        "colluding_polluters": args.collude,
        "n_sources_queried": args.n_sources,
        "k_per_source": args.k,
        "lexical_weight": args.lexical_weight,
        "contexts": top_n,
        "alpha": args.alpha,
        "reliability_evidence": args.reliability_evidence,
        "generator": "extractive reader (reference resolution, typed spans, voting)",
        "votes": "equal per passage" if args.equal_votes else "weighted by log-odds reliability",
        "attribution": "exact Shapley over the 5 contexts (soft vote-share utility)",
    }
    return out


# ------------------------------------------------------------------ latency


def percentiles(samples_s: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "mean_ms": round(float(ms.mean()), 2),
        "n": len(ms),
    }


def _serve_source(index_dir: str, config: dict[str, Any], port: int, threads: int) -> None:
    """Child process body: one source node on ``port`` (model loaded in this process)."""
    import torch

    from drag.server import serve

    torch.set_num_threads(threads)
    node = SourceNode(PassageIndex(index_dir), SourceConfig(**config))
    serve(node, port=port, log_level="warning")


def spawn_sources(
    index_dirs: Sequence[Path], configs: Sequence[dict[str, Any]]
) -> tuple[list[str], list[Any]]:
    """Start one source node process per index folder (spawned: its own interpreter and
    faiss threads, as a real node has) and wait until all answer; (urls, processes)."""
    import multiprocessing

    urls = preallocated_servers(len(index_dirs))
    ctx = multiprocessing.get_context("spawn")
    procs = []
    for index_dir, config, url in zip(index_dirs, configs, urls, strict=True):
        port = int(url.rsplit(":", 1)[1])
        proc = ctx.Process(target=_serve_source, args=(str(index_dir), config, port, 1))
        proc.start()
        procs.append(proc)
    _wait_healthy(urls)
    return urls, procs


def source_directory(urls: Sequence[str], chain_id: int, registry: str) -> StaticDirectory:
    """The benchmark's sources as a client sees them: source i + 1 signs with
    ``source_key(i)`` and answers at ``urls[i]``."""
    records = [
        SourceRecord(i + 1, Account.from_key(source_key(i)).address, url)
        for i, url in enumerate(urls)
    ]
    return StaticDirectory(ReceiptDomain(chain_id, registry), records)


def _wait_healthy(urls: Sequence[str], timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(urls)
    while pending:
        if time.monotonic() > deadline:
            raise RuntimeError(f"sources {pending} did not start")
        try:
            if httpx.get(pending[0] + "/health", timeout=1.0).status_code == 200:
                pending.pop(0)
                continue
        except httpx.HTTPError:
            pass
        time.sleep(0.2)


def latency(args: argparse.Namespace, embedder: CachedEmbedder) -> dict[str, Any]:
    """Fan-out latency over 6 sources (processes or in-process threads), plus one source
    alone (the latency each source adds when it runs on its own machine)."""

    n = args.latency_passages
    facts = generate_facts(n, seed=args.seed + 1)
    corpora = split_over_sources(facts, RATES, seed=args.seed + 1, mode="token")
    root = args.cache_dir / f"lat-n{n}-s{args.seed}"
    start = time.perf_counter()
    indexes = build_indexes(corpora, root, embedder)
    build_s = time.perf_counter() - start
    chain_id, registry = 31337, "0x" + "ab" * 20
    configs: list[dict[str, Any]] = [
        {"source_id": i + 1, "private_key": source_key(i), "chain_id": chain_id,
         "registry_address": registry, **OPERATOR_CLIENT_LIMITS}
        for i in range(len(indexes))
    ]  # fmt: skip
    threads: list[BackgroundServer] = []
    procs: list[Any] = []
    if args.latency_transport == "thread":
        threads = [
            BackgroundServer(create_app(SourceNode(ix, SourceConfig(**c)))).start()
            for ix, c in zip(indexes, configs, strict=True)
        ]
        urls = [t.url for t in threads]
    else:
        urls, procs = spawn_sources([ix.index_dir for ix in indexes], configs)
    directory = source_directory(urls, chain_id, registry)
    questions = [f.question for f in facts]
    random.Random(args.seed).shuffle(questions)
    n_q = args.latency_queries
    query_embedder = default_embedder()  # the client's own model, no cache
    answerless = ExtractiveGenerator(embedder=None)  # aretrieve never calls the generator

    def client_for(n_sources: int, embed: bool) -> DragClient:
        config = ClientConfig(n_sources=n_sources, k=5, top_n=5, timeout_s=5.0, embed_query=embed)
        return DragClient(directory, answerless, config, embedder=query_embedder)

    async def run(n_sources: int, qs: Sequence[str]) -> tuple[dict[str, list[float]], int]:
        """Each question three ways, rotating which goes first, all through
        ``DragClient.aretrieve`` (what ``ledgerlearn drag query`` runs before it answers):
        "client": the client embeds the question once and sends the vector, connections
        kept alive across queries (one client session); "server": every source embeds it
        itself; "one_shot": like "client" but with new connections per query, as one
        ``drag query`` process has."""
        samples: dict[str, list[float]] = {m: [] for m in ("server", "client", "one_shot")}
        samples["client_embed"] = []
        failures = 0
        modes = ("client", "server", "one_shot")
        session, server_side = client_for(n_sources, True), client_for(n_sources, False)
        one_shot = client_for(n_sources, True)
        async with session, server_side:
            for i, q in enumerate(qs):
                for mode in modes[i % 3 :] + modes[: i % 3]:
                    client = {"client": session, "server": server_side}.get(mode, one_shot)
                    t0 = time.perf_counter()
                    got = await client.aretrieve(q, seed=i)
                    elapsed = time.perf_counter() - t0
                    failures += len(got.fanout.failures)
                    for f in got.fanout.failures:
                        log.warning("source %d failed: %s %s", f.source_id, f.kind, f.detail[:99])
                    if i >= 20:  # warm-up queries
                        samples[mode].append(elapsed)
                        if mode == "client":
                            samples["client_embed"].append(got.embed_s)
        return samples, failures

    try:
        all_six, failures = asyncio.run(run(len(urls), questions[: n_q + 20]))
        one, _ = asyncio.run(run(1, questions[n_q + 20 : 2 * n_q + 40]))
    finally:
        for t in threads:
            t.stop()
        for proc in procs:
            proc.terminate()
            proc.join(10)
    return {
        "sources": len(urls),
        "passages_per_source": [len(ix) for ix in indexes],
        "index_build_or_load_s": round(build_s, 1),
        "k": 5,
        "fan_out": percentiles(all_six["client"]),
        "one_source": percentiles(one["client"]),
        "client_embed_once": percentiles(all_six["client_embed"]),
        "fan_out_new_connections": percentiles(all_six["one_shot"]),
        "fan_out_server_side_embedding": percentiles(all_six["server"]),
        "one_source_server_side_embedding": percentiles(one["server"]),
        "failed_source_answers": failures,
        "transport": (
            "HTTP to 6 source processes (1 torch thread each) on this machine"
            if procs
            else "HTTP to 6 in-process uvicorn servers sharing one MiniLM model"
        ),
        "includes": (
            "DragClient.aretrieve, the path of `ledgerlearn drag query` up to the generator: "
            "read scores, choose sources, embed the question once (client_embed_once, "
            "included), one POST per source, verify every receipt (EIP-712 recovery against "
            "the registered address, passage hashes), rerank. Sources: faiss search, nonce "
            "ledger, EIP-712 signing. fan_out: keep-alive connections of one client "
            "session; fan_out_new_connections: new connections per query (one CLI process); "
            "*_server_side_embedding: every source embeds the question itself. The three "
            "modes rotate per query"
        ),
        "load_avg": os.getloadavg(),
    }


# ------------------------------------------------------------------ gas


def gas(args: argparse.Namespace) -> dict[str, Any]:
    endpoints = [f"http://127.0.0.1:{9000 + i}" for i in range(len(RATES))]
    deployment, ids = deploy_registry(len(RATES), endpoints)
    directory = ChainDirectory(deployment.evaluator)
    rng = random.Random(args.seed)
    nonces = dict.fromkeys(ids, 0)

    def batch(k: int) -> list[FeedbackDelta]:
        out = []
        for j in range(k):
            i = j % len(ids)
            nonces[ids[i]] += 1
            texts = [f"passage {rng.random()}" for _ in range(5)]
            receipt = sign_receipt(
                source_key(i), directory.domain, ids[i], nonces[ids[i]], new_query_id(rng), texts
            )
            out.append(FeedbackDelta(ids[i], receipt, rng.uniform(-1, 1), rng.uniform(-0.05, 1)))
        return out

    rows = {}
    for k in BATCHES:
        directory.submit_feedback(batch(k))  # warm-up: steady-state storage
        directory.submit_feedback(batch(k))
        assert directory.last_receipt is not None
        used = int(directory.last_receipt["gasUsed"])
        rows[str(k)] = {
            "gas": used,
            "per_update": round(used / k),
            "per_update_excl_base": round((used - 21_000) / k),
        }
    return {"batches": rows, "dropped": directory.dropped, "chain": "embedded py-evm"}


# ------------------------------------------------------------------ report


def _goal(value: float, op: str, target: float, key: str = "points") -> dict[str, Any]:
    met = value >= target if op == ">=" else value <= target
    return {key: round(value, 2), "goal": f"{op} {target}", "met": met}


def goals(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    above, below = (
        GOALS["points_above_centralized_polluted"],
        GOALS["points_below_centralized_clean"],
    )
    for mode, acc in result.get("accuracy", {}).items():
        ours = acc["drag_thompson"]["accuracy"]
        polluted = acc["centralized_polluted"]
        out[f"{mode}_above_centralized_polluted"] = _goal(ours - polluted, ">=", above)
        out[f"{mode}_below_centralized_clean"] = _goal(acc["centralized_clean"] - ours, "<=", below)
        if "gold_context" in acc:
            out[f"{mode}_below_gold_context"] = _goal(acc["gold_context"] - ours, "<=", below)
            out["gold_context_accuracy"] = _goal(
                acc["gold_context"], ">=", GOALS["gold_context_accuracy"], "value"
            )
        best_first = max(
            (acc[k].get("first_50_accuracy") or 0.0)
            for k in ("drag_thompson", "drag_thompson_probed")
            if k in acc
        )
        out[f"{mode}_first_50_above_centralized_polluted"] = _goal(
            best_first - polluted, ">=", above
        )
    if "gas" in result:
        per = result["gas"]["batches"]["20"]["per_update"]
        out["gas_per_update_at_20"] = {
            "value": per,
            "goal": f"<= {GOALS['gas_per_update_at_20']}",
            "met": per <= GOALS["gas_per_update_at_20"],
        }
    if "latency" in result:
        p50 = result["latency"]["fan_out"]["p50_ms"]
        out["retrieval_p50_ms"] = {
            "value": p50,
            "passages_per_source": result["latency"]["passages_per_source"][0],
            "goal": f"<= {GOALS['retrieval_p50_ms']}",
            "met": p50 <= GOALS["retrieval_p50_ms"],
        }
    return out


def print_tables(result: dict[str, Any]) -> None:
    for mode, acc in result.get("accuracy", {}).items():
        table = Table(title=f"accuracy (%), {mode}-level pollution, 6 sources at 0-100%")
        for col in ("system", "cold", "first 50 warm-up", "after warm-up"):
            table.add_column(col)
        for name in (
            "centralized_polluted",
            "centralized_polluted_with_duplicates",
            "centralized_clean",
            "gold_context",
        ):
            if name in acc:
                table.add_row(name, "", "", f"{acc[name]:.1f}")
        for name in ("drag_usefulness", "drag_thompson", "drag_thompson_probed"):
            if name in acc:
                first = acc[name].get("first_50_accuracy")
                table.add_row(
                    name,
                    f"{acc[name]['cold_accuracy']:.1f}",
                    "" if first is None else f"{first:.1f}",
                    f"{acc[name]['accuracy']:.1f}",
                )
        console.print(table)
    if "latency" in result:
        lat = result["latency"]["fan_out"]
        console.print(
            f"fan-out over {result['latency']['sources']} sources x "
            f"{result['latency']['passages_per_source'][0]} passages: p50 {lat['p50_ms']} ms, "
            f"p99 {lat['p99_ms']} ms (n={lat['n']}); one source alone: p50 "
            f"{result['latency']['one_source']['p50_ms']} ms ({result['latency']['transport']})"
        )
        if "fan_out_new_connections" in result["latency"]:
            new = result["latency"]["fan_out_new_connections"]
            console.print(
                f"  (new connections per query, as one CLI process: p50 {new['p50_ms']} ms, "
                f"p99 {new['p99_ms']} ms)"
            )
        if "fan_out_server_side_embedding" in result["latency"]:
            srv = result["latency"]["fan_out_server_side_embedding"]
            emb = result["latency"]["client_embed_once"]
            console.print(
                f"  (client embeds once: {emb['p50_ms']} ms p50, included above; with every "
                f"source embedding instead: p50 {srv['p50_ms']} ms, p99 {srv['p99_ms']} ms)"
            )
    if "gas" in result:
        table = Table(title="applyFeedback gas per authenticated update")
        for col in ("batch", "gas", "per update", "per update excl. 21k base"):
            table.add_column(col)
        for k, row in result["gas"]["batches"].items():
            table.add_row(
                k, str(row["gas"]), str(row["per_update"]), str(row["per_update_excl_base"])
            )
        console.print(table)
    table = Table(title="goals")
    for col in ("goal", "value", "target", "met"):
        table.add_column(col)
    for name, g in result["goals"].items():
        table.add_row(name, str(g.get("points", g.get("value"))), g["goal"], str(g["met"]))
    console.print(table)


def run_corpora(args: argparse.Namespace, embedder: CachedEmbedder) -> int:
    """The accuracy study on each ``--docs``/``--qa`` corpus: one section per corpus,
    each shaped like ``drag.json``'s accuracy section with its goals."""
    result: dict[str, Any] = {
        "machine": {"cpu_count": os.cpu_count(), "load_avg_start": os.getloadavg()},
        "seed": args.seed,
        "quick": args.quick,
        "collude": args.collude,
        "corpora": {},
    }
    if args.keep_other_corpora and args.out.is_file():
        # corpora run by separate invocations (in parallel) share one results file
        result["corpora"] = json.loads(args.out.read_text()).get("corpora", {})
    for docs_path, qa_path in zip(args.docs, args.qa, strict=True):
        dataset = corpus_dataset(docs_path, qa_path)
        start = time.perf_counter()
        section: dict[str, Any] = {
            "docs": str(docs_path),
            "qa": str(qa_path),
            "accuracy": {
                mode: accuracy_setting(mode, dataset, args, embedder)
                for mode in ("token", "document")
            },
        }
        section["seconds"] = round(time.perf_counter() - start, 1)
        section["goals"] = goals(section)
        result["corpora"][dataset.name] = section
        console.rule(f"corpus {dataset.name}")
        print_tables(section)
    result["machine"]["load_avg_end"] = os.getloadavg()
    if args.keep_other_corpora and args.out.is_file():
        others = json.loads(args.out.read_text()).get("corpora", {})
        result["corpora"] = {**others, **result["corpora"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    console.print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--facts", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--n-sources", type=int, default=3, help="sources queried per question")
    parser.add_argument("--alpha", type=float, default=0.3, help="reliability weight in rerank")
    parser.add_argument("--k", type=int, default=20, help="passages asked of each source")
    parser.add_argument(
        "--lexical-weight", type=float, default=0.5, help="weight of word overlap in rerank"
    )
    parser.add_argument(
        "--reliability-evidence",
        choices=["bernoulli", "share"],
        default="bernoulli",
        help="reliability feedback: one unit per judged query, or the Shapley share (old)",
    )
    parser.add_argument(
        "--collude",
        action="store_true",
        help="polluters collude: every polluted copy of a document states the same wrong answer",
    )
    parser.add_argument(
        "--equal-votes",
        action="store_true",
        help="every passage votes alike (the reader before reliability-weighted votes)",
    )
    parser.add_argument("--latency-passages", type=int, default=10_000)
    parser.add_argument("--latency-queries", type=int, default=200)
    parser.add_argument("--latency-transport", choices=["process", "thread"], default="process")
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["accuracy", "latency", "gas"],
        help="sections not to run; they are kept from the existing --out file",
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)"
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="default: $LEDGERLEARN_HOME/cache/drag-bench"
    )
    parser.add_argument("--out", type=Path, default=None, help="default: " + str(DEFAULT_OUT))
    parser.add_argument(
        "--docs", type=Path, action="append", default=[],
        help="a corpus's documents (JSONL {id, text}); repeat with --qa for several corpora",
    )  # fmt: skip
    parser.add_argument(
        "--qa", type=Path, action="append", default=[],
        help="its questions (JSONL {id, question, answer, documents: [ids], aliases?})",
    )  # fmt: skip
    parser.add_argument("--chunk-words", type=int, default=120, help="passage size in words")
    parser.add_argument(
        "--probes", type=int, default=0,
        help="probe questions (taken from the warm-up set) that give new sources a prior",
    )  # fmt: skip
    parser.add_argument(
        "--keep-other-corpora",
        action="store_true",
        help="update --out with these corpora, keeping the sections of others",
    )
    args = parser.parse_args(argv)
    if len(args.docs) != len(args.qa):
        parser.error("give one --qa per --docs")
    if args.out is None:
        args.out = DEFAULT_REAL_OUT if args.docs else DEFAULT_OUT
    args.cache_dir = args.cache_dir or ledgerlearn_home() / "cache" / "drag-bench"
    if args.quick:
        args.facts, args.warmup, args.test = 60, 20, 30
        args.latency_passages, args.latency_queries = 500, 40
        if args.out == DEFAULT_OUT:
            args.out = DEFAULT_OUT.with_name("drag_quick.json")
        elif args.out == DEFAULT_REAL_OUT:
            args.out = DEFAULT_OUT.with_name("drag_real_quick.json")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("httpx", "drag.feedback", "drag.index", "web3", "drag.chain_directory"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    get_model()
    embedder = CachedEmbedder()
    if args.docs:
        return run_corpora(args, embedder)
    result: dict[str, Any] = {}
    if args.skip and args.out.is_file():
        # a partial rerun keeps the sections it skips from the last full run
        result = json.loads(args.out.read_text())
        result.pop("goals", None)
    result.setdefault("machine", {}).update(
        {"cpu_count": os.cpu_count(), "load_avg_start": os.getloadavg()}
    )
    result.update({"seed": args.seed, "quick": args.quick, "collude": args.collude})
    if "gas" not in args.skip:
        result["gas"] = gas(args)
    if "accuracy" not in args.skip:
        dataset = synthetic_dataset(args.facts, args.seed)
        result["accuracy"] = {
            mode: accuracy_setting(mode, dataset, args, embedder) for mode in ("token", "document")
        }
    if "latency" not in args.skip:
        result["latency"] = latency(args, embedder)
    result["machine"]["load_avg_end"] = os.getloadavg()
    result["goals"] = goals(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print_tables(result)
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
