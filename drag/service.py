"""One query end to end as data: the answer, its passages, its judgement and its feedback.

Shared by ``ledgerlearn drag query`` (one question), ``drag query --batch FILE`` (many
questions, one loaded model and one set of keep-alive connections) and ``drag
serve-client`` (a long-running local HTTP API): each builds a :class:`QueryService`
once and asks it as often as it likes, so the embedding model and the generator are
loaded once, not per question (a CLI process spent 9-35 s loading MiniLM per query).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drag.client import DragClient, QueryResult
from drag.feedback import FeedbackDelta
from drag.judge import is_correct
from marketplace.errors import ConfigError

MAX_QUESTION_CHARS = 2000


@dataclass(frozen=True)
class BatchItem:
    """One line of a batch file: a question and, optionally, its accepted answers."""

    question: str
    truth: tuple[str, ...] = ()
    qid: str = ""


def check_question(question: str) -> str:
    """The question stripped, or a one-line error naming the problem."""
    question = question.strip()
    if not question:
        raise ConfigError("question is empty; ask something")
    if len(question) > MAX_QUESTION_CHARS:
        raise ConfigError(
            f"question has {len(question)} characters; ask in at most {MAX_QUESTION_CHARS}"
        )
    return question


def read_batch(path: Path) -> Iterator[BatchItem]:
    """Questions of a batch file: JSONL (``{"question", "answer"|"truth"?, "aliases"?,
    "id"?}``) or plain text (one question per line)."""
    if not path.is_file():
        raise ConfigError(f"batch file {path} does not exist; check the path")
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            text = line.strip()
            if not text:
                continue
            if not text.startswith("{"):
                yield BatchItem(check_question(text), (), str(line_no))
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{line_no} is not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict) or not isinstance(row.get("question"), str):
                raise ConfigError(f'{path}:{line_no} needs a string "question"')
            raw = row.get("truth", row.get("answer", []))
            truth = [raw] if isinstance(raw, str) else raw
            aliases = row.get("aliases", [])
            if not isinstance(truth, list) or not isinstance(aliases, list):
                raise ConfigError(f'{path}:{line_no} "answer" and "aliases" must be strings')
            items = [str(t) for t in [*truth, *aliases]]
            yield BatchItem(
                check_question(row["question"]), tuple(items), str(row.get("id", line_no))
            )


def result_payload(
    result: QueryResult, client: DragClient, deltas: Sequence[FeedbackDelta], seed: int
) -> dict[str, Any]:
    """The JSON form of one answered query (what ``drag query --json`` prints)."""
    prior = client.config.prior
    return {
        "answer": result.answer.text,
        "abstained": not result.answer.text,
        "confidence": result.answer.meta.get("confidence"),
        "query_id": "0x" + result.fanout.query_id.hex(),
        "seed": seed,
        "passages": [
            {
                "text": r.text,
                "source_id": r.source_id,
                "relevance": r.relevance,
                "reliability": r.reliability,
                "score": r.score,
            }
            for r in result.ranked
        ],
        "sources": [
            {
                "source_id": s.source_id,
                "endpoint": s.endpoint,
                "reliability": s.reliability(prior),
                "usefulness": s.usefulness,
                "answered": any(r.source.source_id == s.source_id for r in result.fanout.responses),
            }
            for s in result.chosen
        ],
        "failures": [
            {"source_id": f.source_id, "kind": f.kind, "detail": f.detail}
            for f in result.fanout.failures
        ],
        "feedback": {"queued": len(deltas)},
    }


class QueryService:
    """A :class:`DragClient` kept open: ask many questions over one model and one
    connection pool. Use inside ``async with service:``."""

    def __init__(self, client: DragClient) -> None:
        self.client = client
        self.answered = 0

    async def __aenter__(self) -> QueryService:
        await self.client.__aenter__()
        if self.client.embedder is not None:
            self.client.embedder.embed(["warm-up"])  # load the model before the first question
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.__aexit__(None, None, None)

    async def ask(
        self,
        question: str,
        truth: Sequence[str] = (),
        user_correct: bool | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """Answer ``question``; with ``truth`` (accepted answers) or ``user_correct``,
        judge it and queue feedback."""
        question = check_question(question)
        seed = secrets.randbits(32) if seed is None else seed
        start = time.perf_counter()
        got = await self.client.aretrieve(question, seed)
        retrieved = time.perf_counter()
        result = self.client.answer(got)
        generated = time.perf_counter()
        deltas: list[FeedbackDelta] = []
        if truth or user_correct is not None:
            deltas = self.client.feedback(
                result,
                truth=list(truth) if truth else None,
                user_correct=None if truth else user_correct,
                seed=seed,
            )
        self.answered += 1
        out = result_payload(result, self.client, deltas, seed)
        out["timing_ms"] = {
            "retrieve": round(1000 * (retrieved - start), 2),
            "embed": round(1000 * got.embed_s, 2),
            "generate": round(1000 * (generated - retrieved), 2),
        }
        if truth:
            out["correct"] = is_correct(result.answer.text, list(truth))
        return out
