"""The dRAG client: one query end to end, and the feedback that follows it.

Composes the steps of docs/architecture.md "The dRAG query": read scores from the registry
(:class:`drag.registry.SourceDirectory`), choose sources (:mod:`drag.sampling`), fan out
with verified receipts (:mod:`drag.retrieve`), rerank (:mod:`drag.rerank`), answer
(:mod:`drag.generate`); then, given correctness, attribute (:mod:`drag.attribution`) and
queue bounded deltas (:mod:`drag.feedback`) that a batch flush submits to the registry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import httpx

from drag.attribution import Attribution, attribute
from drag.embed import Embedder, default_embedder
from drag.feedback import FeedbackDelta, FeedbackPolicy, FeedbackQueue, compute_deltas
from drag.generate import Answer, Generator
from drag.receipts import Receipt
from drag.registry import SourceDirectory, SourceRecord
from drag.rerank import RankedPassage, rerank, select_contexts
from drag.retrieve import FanOutResult, fan_out, new_http_client
from drag.sampling import Strategy, choose_sources
from marketplace.errors import ConfigError
from marketplace.untrusted.parse import utf8_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClientConfig:
    """Knobs of one query; defaults follow the paper's six-source setting loosely."""

    n_sources: int = 3
    k: int = 5
    top_n: int = 5  # distinct passages given to the generator, each with all its copies
    alpha: float = 0.3
    lexical_weight: float = 0.5
    # each passage's vote counts by its source's log-odds reliability (drag/rerank.py)
    weighted_vote: bool = True
    strategy: Strategy = "thompson"
    prior: tuple[float, float] = (1.0, 1.0)
    timeout_s: float = 5.0
    embed_query: bool = True
    attribution: Literal["loo", "shapley", "auto"] = "auto"
    policy: FeedbackPolicy = field(default_factory=FeedbackPolicy)


@dataclass
class Retrieval:
    """Steps 1-4 of a query: the sources chosen, their verified answers, the ranking."""

    question: str
    chosen: list[SourceRecord]
    fanout: FanOutResult
    ranked: list[RankedPassage]
    embed_s: float = 0.0


@dataclass
class QueryResult:
    """Everything one query produced; the input of :meth:`DragClient.feedback`."""

    question: str
    chosen: list[SourceRecord]
    fanout: FanOutResult
    ranked: list[RankedPassage]
    answer: Answer
    weighted_vote: bool = True

    @property
    def contexts(self) -> list[str]:
        return [r.text for r in self.ranked]

    @property
    def weights(self) -> list[float] | None:
        """What the generator was given as each context's vote weight (None: equal)."""
        return context_weights(self.ranked) if self.weighted_vote else None

    @property
    def context_sources(self) -> list[int]:
        return [r.source_id for r in self.ranked]


def context_weights(ranked: Sequence[RankedPassage]) -> list[float]:
    """Each passage's vote weight: its source's log-odds reliability
    (:func:`drag.rerank.vote_weight`)."""
    return [r.vote_weight for r in ranked]


def feedback_for_answer(
    generator: Generator,
    question: str,
    contexts: Sequence[str],
    context_sources: Sequence[int],
    receipts: dict[int, Receipt],
    answer: str,
    truth: Sequence[str] | None = None,
    user_correct: bool | None = None,
    method: Literal["loo", "shapley", "auto"] = "auto",
    policy: FeedbackPolicy | None = None,
    seed: int = 0,
    weights: Sequence[float] | None = None,
) -> tuple[list[FeedbackDelta], Attribution | None]:
    """Deltas for one answered query, from ground truth or a user's verdict.

    With ground truth, the truth is the target whatever was answered: contexts that
    produce it earn credit, contexts that pull the generator away from it are blamed (their
    Shapley value is negative). With only a user verdict, the produced answer is the target
    and the verdict its sign. With neither, there is nothing to learn and no deltas.
    ``weights`` are the contexts' vote weights the answer was generated with: attribution
    replays the generator with the same ones.
    """
    targets: list[str]
    if truth is not None:
        targets, target_correct = [t for t in truth if t], True
    elif user_correct is not None:
        targets, target_correct = [answer] if answer else [], user_correct
    else:
        return [], None
    if not contexts or not targets:
        return [], None
    attr = attribute(
        generator, question, contexts, method=method, target=targets, seed=seed, weights=weights
    )
    deltas = compute_deltas(attr.scores, context_sources, target_correct, receipts, policy)
    return deltas, attr


class DragClient:
    """Runs queries against the registered sources and feeds back their outcomes.

    With ``config.embed_query`` (the default) the question is embedded once here, with
    ``embedder`` (default: the sources' all-MiniLM-L6-v2, :mod:`drag.embed`), and the vector
    goes to every chosen source, which then only searches; sources that refuse or ignore
    it embed the question themselves.
    """

    def __init__(
        self,
        directory: SourceDirectory,
        generator: Generator,
        config: ClientConfig | None = None,
        queue: FeedbackQueue | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.directory = directory
        self.generator = generator
        self.config = config or ClientConfig()
        self.queue = queue
        self.embedder: Embedder | None = embedder
        if self.embedder is None and self.config.embed_query:
            self.embedder = default_embedder()
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient | None:
        """The keep-alive HTTP client inside ``async with client:``, else None."""
        return self._http

    async def __aenter__(self) -> DragClient:
        """Open one keep-alive HTTP client for every query until the block exits."""
        if self._http is None:
            self._http = new_http_client(self.config.n_sources)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def embed_question(self, question: str) -> Any:
        """The question's vector for the sources' dense retrieval (None: lexical only)."""
        if self.config.embed_query and self.embedder is not None:
            return self.embedder.embed([question])[0]
        return None

    async def ask_sources(
        self, question: str, targets: Sequence[SourceRecord], vector: Any
    ) -> FanOutResult:
        """Ask each of ``targets`` for its top-k passages (receipts verified), reusing the
        client's connections inside ``async with client:``."""
        cfg = self.config
        return await fan_out(
            question,
            cfg.k,
            targets,
            self.directory.domain,
            timeout_s=cfg.timeout_s,
            client=self._http,
            embedding=vector,
        )

    async def aretrieve(self, question: str, seed: int) -> Retrieval:
        """Choose sources, embed the question, fan out, verify, rerank: everything but the
        answer (what the retrieval-latency benchmark times). ``seed`` drives the sampling.

        Inside ``async with client:`` the fan-out reuses the client's connections; outside,
        each call opens its own (one ``ledgerlearn drag query`` process asks once).
        """
        if not utf8_text(question, "the question").strip():
            raise ConfigError("question is empty; ask something")
        cfg = self.config
        sources = self.directory.list_sources()
        chosen = choose_sources(sources, cfg.n_sources, seed, cfg.strategy, cfg.prior)
        start = time.perf_counter()
        vector = self.embed_question(question)
        embed_s = time.perf_counter() - start
        result = await self.ask_sources(question, chosen, vector)
        for f in result.failures:
            log.warning("source %d skipped: %s (%s)", f.source_id, f.kind, f.detail)
        reliability = {s.source_id: s.reliability(cfg.prior) for s in chosen}
        ranked = select_contexts(
            rerank(
                result.passages(),
                reliability,
                cfg.alpha,
                question=question,
                lexical_weight=cfg.lexical_weight,
            ),
            cfg.top_n,
        )
        return Retrieval(question, chosen, result, ranked, embed_s)

    def answer(self, got: Retrieval) -> QueryResult:
        """Step 5: the generator reads the ranked passages, each vote weighted by its
        source's reliability (``config.weighted_vote``)."""
        weighted = self.config.weighted_vote
        contexts = [r.text for r in got.ranked]
        weights = context_weights(got.ranked) if weighted else None
        answer = self.generator.generate(got.question, contexts, weights)
        return QueryResult(got.question, got.chosen, got.fanout, got.ranked, answer, weighted)

    async def aquery(self, question: str, seed: int) -> QueryResult:
        """Answer ``question``; ``seed`` drives the source sampling."""
        return self.answer(await self.aretrieve(question, seed))

    def query(self, question: str, seed: int) -> QueryResult:
        """:meth:`aquery` for callers without an event loop."""
        return asyncio.run(self.aquery(question, seed))

    def feedback(
        self,
        result: QueryResult,
        truth: Sequence[str] | None = None,
        user_correct: bool | None = None,
        seed: int = 0,
    ) -> list[FeedbackDelta]:
        """Compute deltas for ``result`` and queue them (if a queue is attached)."""
        deltas, _ = feedback_for_answer(
            self.generator,
            result.question,
            result.contexts,
            result.context_sources,
            result.fanout.receipts(),
            result.answer.text,
            truth=truth,
            user_correct=user_correct,
            method=self.config.attribution,
            policy=self.config.policy,
            seed=seed,
            weights=result.weights,
        )
        if self.queue is not None and deltas:
            self.queue.put(deltas)
        return deltas
