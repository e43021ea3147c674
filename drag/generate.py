"""Answer a question from ranked contexts: interchangeable generator backends.

- :class:`ExtractiveGenerator` (default, offline, deterministic, no model call): reads
  each context (:mod:`drag.reader`): resolves "it", "its", "the country" to the
  document's subject, picks the sentence that best covers the question's words, and in it
  the span of the type the question asks for (a number for "how many", a year for
  "when", a name for "who", a place for "where"/"which city", a short code for "what
  symbol"), nearest to the question's own words ("symbol Fe", "capital ... is Lima").
  Every context nominates one answer; nominees within ``margin`` of the best fit vote
  with weight ``exp((fit - best) / temperature) * 0.9**rank``, times the context's
  ``weights`` entry when the client gives one (its source's log-odds reliability,
  :func:`drag.rerank.vote_weight`: a reliable source is not outvoted by doubtful ones
  that agree on a wrong answer): agreement between equally trusted sources decides, the
  reranker's order breaks ties, and removing a context can change the answer, which is
  what leave-one-out and Shapley measure. When no context covers at
  least ``min_coverage`` of the question's words with a span of the asked type, it
  abstains (empty text) and says how confident it was.
- :class:`OpenAICompatibleGenerator`: any ``/v1/chat/completions`` server (vLLM, Ollama,
  llama.cpp server, ...).
- :class:`TransformersGenerator`: a local causal LM folder, loaded lazily.

The extractive reader replaced a version that chose sentences by MiniLM similarity and
answered with the words the question lacked: it embedded every sentence of every context
(803 ms p50 per query on 2 cores, the cost of a whole query) and failed when the answer
sentence did not repeat the entity's name; it now takes ~1 ms. An embedder can still be
given to mix cosine similarity into the sentence score.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import httpx
import numpy as np

from drag.embed import Embedder
from drag.judge import is_correct, normalize
from drag.reader import Nominee, QuestionInfo, analyse_question, read_context, short_span
from drag.sentences import split_sentences
from marketplace.errors import ConfigError, DragError

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "Answer the question using only the numbered context passages. Reply with the shortest "
    "correct answer (a name, number or short phrase), with no explanation. If the passages "
    "disagree, prefer the answer most passages support. If no passage answers, reply "
    "'unknown'."
)

__all__ = [
    "Answer",
    "ExtractiveGenerator",
    "Generator",
    "OpenAICompatibleGenerator",
    "ScoringGenerator",
    "TransformersGenerator",
    "answer_matches",
    "normalize_answer",
    "short_span",
    "split_sentences",
]


@dataclass(frozen=True)
class Answer:
    """A generated answer; ``support`` lists the context indices it was drawn from.

    Empty ``text`` means the generator abstained; ``meta["confidence"]`` (0..1), where a
    backend gives it, is its estimate that the answer is right.
    """

    text: str
    support: tuple[int, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


Weights = Sequence[float] | None


class Generator(Protocol):
    """Anything that answers ``question`` from ``contexts`` (given best first).

    ``weights`` (optional, one per context, positive) says how far each context's source
    is to be believed (:func:`drag.rerank.vote_weight`); a backend that cannot use them
    may ignore them.
    """

    def generate(
        self, question: str, contexts: Sequence[str], weights: Weights = None
    ) -> Answer: ...


@runtime_checkable
class ScoringGenerator(Protocol):
    """A generator that can also say how strongly ``contexts`` support ``answer`` (0..1)."""

    def generate(
        self, question: str, contexts: Sequence[str], weights: Weights = None
    ) -> Answer: ...

    def answer_score(
        self, question: str, contexts: Sequence[str], answer: str, weights: Weights = None
    ) -> float: ...


def check_weights(contexts: Sequence[str], weights: Weights) -> list[float]:
    """``weights`` as a list with one positive finite entry per context (all 1 when None)."""
    if weights is None:
        return [1.0] * len(contexts)
    out = [float(w) for w in weights]
    if len(out) != len(contexts):
        raise ConfigError(f"{len(out)} weights for {len(contexts)} contexts; give one per context")
    if not all(np.isfinite(w) and w > 0 for w in out):
        raise ConfigError("context weights must be positive finite numbers")
    return out


def normalize_answer(text: str) -> str:
    """The comparable form of an answer: :func:`drag.judge.normalize`."""
    return normalize(text)


def answer_matches(prediction: str, answers: Sequence[str]) -> bool:
    """Exact match after normalization with any accepted answer (:mod:`drag.judge`)."""
    return is_correct(prediction, answers)


def build_messages(question: str, contexts: Sequence[str]) -> list[dict[str, str]]:
    """Chat messages shared by the LLM backends."""
    numbered = "\n".join(f"[{i + 1}] {c}" for i, c in enumerate(contexts))
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Context:\n{numbered}\n\nQuestion: {question}\nAnswer:"},
    ]


class ExtractiveGenerator:
    """Offline reading comprehension by typed spans and weighted voting (see module doc)."""

    def __init__(
        self,
        embedder: Embedder | None = None,
        answer_style: Literal["auto", "sentence", "span"] = "auto",
        margin: float = 0.25,
        rank_discount: float = 0.9,
        min_coverage: float = 0.34,
        cache_size: int = 4096,
        temperature: float = 0.1,
    ) -> None:
        if answer_style not in ("auto", "sentence", "span"):
            raise ConfigError(f"answer_style={answer_style!r}; use auto, sentence or span")
        if not 0.0 < rank_discount <= 1.0:
            raise ConfigError(f"rank_discount={rank_discount}; use a value in (0, 1]")
        if not 0.0 <= min_coverage <= 1.0:
            raise ConfigError(f"min_coverage={min_coverage}; use a value in [0, 1]")
        self.embedder = embedder
        self.answer_style = answer_style
        self.margin = margin
        self.rank_discount = rank_discount
        self.min_coverage = min_coverage
        if temperature <= 0:
            raise ConfigError(f"temperature={temperature}; use a positive value")
        self.temperature = temperature
        self._cache: OrderedDict[tuple[str, str], Nominee | None] = OrderedDict()
        self._cache_size = cache_size

    def _nominee(self, info: QuestionInfo, context: str) -> Nominee | None:
        """The answer one context nominates (memoised: attribution asks again and again)."""
        key = (info.question, context)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        nominee = read_context(info, context, self._semantic(info.question, context))
        self._cache[key] = nominee
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return nominee

    def _semantic(self, question: str, context: str) -> dict[str, float] | None:
        """Cosine similarity of the question to each sentence, when an embedder is set."""
        if self.embedder is None:
            return None
        sentences = split_sentences(context)
        if not sentences:
            return None
        vecs = self.embedder.embed([question, *sentences])
        sims = np.asarray(vecs[1:] @ vecs[0], dtype=np.float64)
        return {s: float(v) for s, v in zip(sentences, sims, strict=True)}

    def _votes(
        self, question: str, contexts: Sequence[str], weights: Weights = None
    ) -> tuple[dict[str, float], dict[str, str], dict[str, list[int]], float]:
        """Vote weight, surface form and supporting contexts per normalized nominee, and
        the best coverage seen. ``weights`` multiply each context's vote (its source's
        credibility, :func:`drag.rerank.vote_weight`)."""
        credibility = check_weights(contexts, weights)
        info = analyse_question(question)
        votes: dict[str, float] = {}
        surface: dict[str, str] = {}
        support: dict[str, list[int]] = {}
        nominees = [(ci, self._nominee(info, ctx)) for ci, ctx in enumerate(contexts)]
        found = [(ci, n) for ci, n in nominees if n is not None]
        if not found:
            return votes, surface, support, 0.0
        top = max(n.score for _, n in found)
        best_coverage = max(n.coverage for _, n in found)
        for ci, n in found:
            if n.score < top - self.margin or n.coverage < self.min_coverage:
                continue
            text = n.sentence if self.answer_style == "sentence" else n.text
            if self.answer_style == "auto" and not n.typed:
                text = n.text
            key = normalize(text) or text
            # a soft-max over fit: equally good contexts (copies of one fact) vote as
            # equals, a context that fits the question worse counts for little
            weight = float(np.exp((n.score - top) / self.temperature))
            weight *= credibility[ci] * self.rank_discount**ci
            votes[key] = votes.get(key, 0.0) + weight
            surface.setdefault(key, text)
            support.setdefault(key, []).append(ci)
        return votes, surface, support, best_coverage

    def generate(self, question: str, contexts: Sequence[str], weights: Weights = None) -> Answer:
        """The best-supported answer span; empty text (an abstention) when no context
        answers, with ``meta["confidence"]`` either way. With ``weights``, each context's
        vote is multiplied by its weight (one reliable source outvotes two doubtful ones
        that agree)."""
        votes, surface, support, coverage = self._votes(question, contexts, weights)
        if not votes:
            return Answer(
                text="", support=(), meta={"abstained": True, "confidence": 0.0,
                                           "coverage": round(coverage, 3)}
            )  # fmt: skip
        winner = max(votes, key=lambda k: (votes[k], -support[k][0]))
        share = votes[winner] / sum(votes.values())
        return Answer(
            text=surface[winner],
            support=tuple(support[winner]),
            meta={
                "votes": {surface[k]: v for k, v in votes.items()},
                "confidence": round(confidence(coverage, share), 4),
                "coverage": round(coverage, 3),
                "abstained": False,
            },
        )

    def answer_score(
        self, question: str, contexts: Sequence[str], answer: str, weights: Weights = None
    ) -> float:
        """The share of the vote ``answer`` gets from ``contexts``, in [0, 1] (weighted as
        :meth:`generate` weighs them).

        A graded utility for attribution: a passage that argues for another answer lowers
        the share even when it does not flip the winner.
        """
        votes, _, _, _ = self._votes(question, contexts, weights)
        total = sum(votes.values())
        key = normalize(answer) or answer
        return votes.get(key, 0.0) / total if total > 0 else 0.0


def confidence(coverage: float, share: float) -> float:
    """Estimated probability that an extractive answer is right, from how much of the
    question its sentence covers and how much of the vote it won.

    A logistic curve with hand-set weights: about 0.6 for a sentence covering half the
    question with a split vote, 0.98 at full coverage and a unanimous vote. How well it is
    calibrated (accuracy per confidence bin, abstentions on questions the sources cannot
    answer) is measured by ``scripts/bench_drag_client.py``.
    """
    z = CONFIDENCE_WEIGHTS[0] + CONFIDENCE_WEIGHTS[1] * coverage + CONFIDENCE_WEIGHTS[2] * share
    return float(1.0 / (1.0 + np.exp(-z)))


CONFIDENCE_WEIGHTS = (-3.0, 4.0, 3.0)


def chat_completions_url(base_url: str) -> str:
    """``<base>/v1/chat/completions`` whether or not ``base_url`` already ends in /v1."""
    base = base_url.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if base.endswith("/v1"):
        return base + "/chat/completions"
    return base + "/v1/chat/completions"


class OpenAICompatibleGenerator:
    """Generation by any server speaking the OpenAI chat-completions protocol."""

    def __init__(
        self,
        url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_tokens: int = 64,
        temperature: float = 0.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"generator url {url!r} must start with http:// or https://")
        self.url = chat_completions_url(url)
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout_s, headers=headers, transport=transport)

    def generate(self, question: str, contexts: Sequence[str], weights: Weights = None) -> Answer:
        """The model's reply to the numbered contexts (best first). ``weights`` are not
        sent: the prompt asks for the answer most passages support, and the client has
        already ranked reliable sources' passages first."""
        check_weights(contexts, weights)
        body = {
            "model": self.model,
            "messages": build_messages(question, contexts),
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        try:
            response = self._client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise DragError(
                f"generator at {self.url} unreachable ({type(exc).__name__}); is it running?"
            ) from exc
        if response.status_code != 200:
            raise DragError(
                f"generator at {self.url} answered HTTP {response.status_code}: "
                f"{response.text[:200]}"
            )
        try:
            text = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise DragError(
                f"generator at {self.url} sent no choices[0].message.content; "
                "is it an OpenAI-compatible server?"
            ) from exc
        return Answer(text=str(text).strip(), meta={"model": self.model})

    def close(self) -> None:
        self._client.close()


_CITATION_RE = re.compile(r"\[\d+\]?")
_PREAMBLE_RE = re.compile(
    r"^\s*(?:the\s+)?answer(?:\s+to\s+(?:this|the)\s+question)?\s+is\s*:?\s*", re.IGNORECASE
)


def trim_reply(question: str, reply: str) -> str:
    """A small model's reply reduced to its answer: citation marks ("[2]") and "The answer
    is:" dropped, and a sentence ("The capital of Greece is Athens") read by the extractive
    reader for the span of the asked type; the reply itself when the reader finds none."""
    reply = _PREAMBLE_RE.sub("", _CITATION_RE.sub(" ", reply)).strip(" .:,;")
    reply = re.sub(r"\s+", " ", reply)
    if len(reply.split()) <= 3:
        return reply
    nominee = read_context(analyse_question(question), reply)
    return nominee.text if nominee is not None and nominee.typed else reply


class TransformersGenerator:
    """A local Hugging Face causal LM (folder with config, tokenizer, weights, or a GGUF
    file in ``path`` named by ``gguf_file``), greedy decoding.

    Loaded on first use so importing this module does not import transformers. "unknown"
    (what the prompt asks for when no passage answers) is an abstention: empty text.
    """

    def __init__(
        self,
        path: str | Path,
        max_new_tokens: int = 32,
        device: str = "cpu",
        gguf_file: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.gguf_file = gguf_file
        if gguf_file is not None and not (self.path / gguf_file).is_file():
            raise ConfigError(f"no GGUF model {gguf_file} in {self.path}; give an existing file")
        if gguf_file is None and not (self.path / "config.json").is_file():
            raise ConfigError(
                f"no model at {self.path} (config.json missing); "
                "pass a local folder saved with save_pretrained"
            )
        self.max_new_tokens = max_new_tokens
        self.device = device
        self._model: Any = None
        self._tokenizer: Any = None

    def load(self) -> None:
        """Load the tokenizer and model now (else on the first answer)."""
        if self._model is not None:
            return
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise ConfigError("transformers is not installed; pip install transformers") from exc
        extra = {"gguf_file": self.gguf_file} if self.gguf_file else {}
        self._tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True, **extra)
        self._model = AutoModelForCausalLM.from_pretrained(
            self.path, local_files_only=True, **extra
        )
        self._model.to(self.device).eval()

    def generate(self, question: str, contexts: Sequence[str], weights: Weights = None) -> Answer:
        """Greedy decoding over the numbered contexts; ``weights`` are not used (see
        :meth:`OpenAICompatibleGenerator.generate`)."""
        import torch

        check_weights(contexts, weights)
        self.load()
        messages = build_messages(question, contexts)
        if getattr(self._tokenizer, "chat_template", None):
            prompt = self._tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        else:
            prompt = "\n\n".join(m["content"] for m in messages) + " "
        inputs = self._tokenizer(prompt, return_tensors="pt").to(self.device)
        with torch.no_grad():
            out = self._model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=self._tokenizer.eos_token_id,
            )
        new_tokens = out[0, inputs["input_ids"].shape[1] :]
        text = self._tokenizer.decode(new_tokens, skip_special_tokens=True)
        first = trim_reply(question, text.strip().split("\n")[0])
        name = str(self.path / self.gguf_file) if self.gguf_file else str(self.path)
        if normalize(first) in ("unknown", ""):
            return Answer(text="", meta={"model": name, "abstained": True})
        return Answer(text=first, meta={"model": name, "abstained": False})
