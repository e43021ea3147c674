"""Micro-benchmarks of the dRAG source node: embedding, retrieval latency, receipts.

``python scripts/bench_drag_node.py --passages 10000`` prints one JSON object (one source node;
scripts/bench_drag.py measures the six-source system). Numbers depend on the
machine and its load; report the core count and load average with them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from drag.corpus import generate_facts, split_over_sources
from drag.embed import MiniLMEmbedder, get_model
from drag.index import PassageIndex
from drag.receipts import ReceiptDomain, address_of, new_query_id, sign_receipt, verify_receipt
from drag.server import (
    OPERATOR_CLIENT_LIMITS,
    BackgroundServer,
    SourceConfig,
    SourceNode,
    create_app,
)

KEY = "0x" + "42" * 32
DOMAIN = ReceiptDomain(31337, "0x" + "ab" * 20)


def _percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "n": len(ms),
    }


def _time(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def embedding_throughput(
    n_docs: int = 1000, words_per_doc: int = 0, batch_size: int = 64
) -> dict[str, Any]:
    """Passages per second (after a warm-up batch).

    ``words_per_doc=0`` embeds the one-sentence synthetic facts (~8 words); otherwise
    facts are concatenated into passages of about that many words (a typical chunk is 120).
    """
    facts = [f.text for f in generate_facts(max(n_docs, 1) * max(1, words_per_doc // 7), 1)]
    if words_per_doc:
        texts, current = [], []
        for fact in facts:
            current.append(fact)
            if sum(len(x.split()) for x in current) >= words_per_doc:
                texts.append(" ".join(current))
                current = []
        texts = texts[:n_docs]
    else:
        texts = facts[:n_docs]
    embedder = MiniLMEmbedder(batch_size=batch_size)
    embedder.embed(texts[:batch_size])
    start = time.perf_counter()
    embedder.embed(texts)
    elapsed = time.perf_counter() - start
    words = statistics.mean(len(t.split()) for t in texts)
    return {"docs": len(texts), "docs_per_s": round(len(texts) / elapsed, 1), "mean_words": words}


def retrieval_latency(
    n_passages: int = 10_000, n_queries: int = 200, k: int = 5, workdir: Path | None = None
) -> dict[str, Any]:
    """p50/p99 of ``/retrieve`` in process (embed + search + sign) and over HTTP."""
    root = Path(workdir or tempfile.mkdtemp(prefix="drag-bench-"))
    facts = generate_facts(n_passages, seed=7)
    split_over_sources(facts, [0.0], seed=7)[0].write(root / "docs")
    index = PassageIndex(root / "idx")
    start = time.perf_counter()
    index.sync(root / "docs")
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    reopened = PassageIndex(root / "idx")
    reopened.sync(root / "docs")
    reopen_s = time.perf_counter() - start
    config = SourceConfig(
        source_id=1, private_key=KEY, chain_id=DOMAIN.chain_id,
        registry_address=DOMAIN.verifying_contract,
        **OPERATOR_CLIENT_LIMITS,  # one client measures latency, no flood
    )  # fmt: skip
    node = SourceNode(reopened, config)
    questions = [f.question for f in facts[:n_queries]]
    for q in questions[:10]:
        node.retrieve(q, k, new_query_id())
    it = iter(questions * 2)
    in_process = _time(lambda: node.retrieve(next(it), k, new_query_id()), n_queries)
    search_only = _time(lambda: reopened.search(next(it), k), n_queries)
    hits = sum(reopened.search(f.question, 1)[0].passage.text == f.text for f in facts[:n_queries])
    with BackgroundServer(create_app(node)) as server, httpx.Client() as client:
        url = server.url + "/retrieve"

        def body(q: str) -> dict[str, Any]:
            return {"query": q, "k": k, "query_id": "0x" + new_query_id().hex()}

        for q in questions[:10]:
            client.post(url, json=body(q)).raise_for_status()
        it = iter(questions)
        over_http = _time(
            lambda: client.post(url, json=body(next(it))).raise_for_status(), n_queries
        )
    return {
        "passages": len(reopened),
        "index_build_s": round(build_s, 1),
        "reopen_s": round(reopen_s, 3),
        "top1_accuracy": hits / n_queries,
        "handler_in_process": _percentiles(in_process),
        "embed_plus_search": _percentiles(search_only),
        "over_http": _percentiles(over_http),
    }


def receipt_timing(n: int = 1000) -> dict[str, Any]:
    """Sign and verify time for a 5-passage receipt."""
    texts = [f"passage number {i} about something" for i in range(5)]
    qid = bytes(range(32))
    address = address_of(KEY)
    receipt = sign_receipt(KEY, DOMAIN, 1, 1, qid, texts)
    sign = _time(lambda: sign_receipt(KEY, DOMAIN, 1, 1, qid, texts), n)
    verify = _time(lambda: verify_receipt(receipt, DOMAIN, address, texts, qid, 1), n)
    return {"sign": _percentiles(sign), "verify": _percentiles(verify)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--passages", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--embed-docs", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--workdir", type=Path, default=None, help="reuse a corpus + index here")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    get_model()
    report: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "torch_threads": args.threads,
        "load_avg_before": os.getloadavg(),
        "model_load_s": round(time.perf_counter() - start, 2),
        "receipts": receipt_timing(),
        "embedding_short": embedding_throughput(args.embed_docs),
        "embedding_120_words": embedding_throughput(args.embed_docs // 4, words_per_doc=120),
        "retrieval": retrieval_latency(args.passages, args.queries, workdir=args.workdir),
        "load_avg_after": os.getloadavg(),
    }
    sys.stdout.write(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
