"""Answer a question from ranked contexts: three interchangeable generator backends.

- :class:`ExtractiveGenerator` (default, offline, deterministic): picks the answer span
  from the contexts. Every context nominates its sentence most similar to the question
  (MiniLM cosine, or word overlap without an embedder, averaged over the sentence alone
  and the sentence with its predecessor); for QA over short facts the
  nominee is reduced to the words the question does not already contain ("The capital of
  Zorvia is Quelton." answers "What is the capital of Zorvia?" with "Quelton"). Nominees
  within ``margin`` of the best similarity vote with weight ``similarity * 0.9**rank``:
  agreement between sources decides, the reranker's order breaks ties, and removing a
  context can change the answer, which is what leave-one-out and Shapley measure.
- :class:`OpenAICompatibleGenerator`: any ``/v1/chat/completions`` server (vLLM, Ollama,
  llama.cpp server, ...).
- :class:`TransformersGenerator`: a local causal LM folder, loaded lazily.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import httpx
import numpy as np

from drag.embed import Embedder, default_embedder
from marketplace.errors import ConfigError, DragError

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "Answer the question using only the numbered context passages. Reply with the shortest "
    "correct answer (a name, number or short phrase), with no explanation. If the passages "
    "disagree, prefer the answer most passages support."
)

_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+")
_WORD_RE = re.compile(r"[\w][\w'-]*", re.UNICODE)
_STOPWORDS = frozenset(
    """a an the of in on at to for from by with and or is are was were be been what which who
    whom whose when where why how does do did it its this that these those as into than then
    there their his her he she they them name named called""".split()
)


@dataclass(frozen=True)
class Answer:
    """A generated answer; ``support`` lists the context indices it was drawn from."""

    text: str
    support: tuple[int, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


class Generator(Protocol):
    """Anything that answers ``question`` from ``contexts`` (given best first)."""

    def generate(self, question: str, contexts: Sequence[str]) -> Answer: ...


@runtime_checkable
class ScoringGenerator(Protocol):
    """A generator that can also say how strongly ``contexts`` support ``answer`` (0..1)."""

    def generate(self, question: str, contexts: Sequence[str]) -> Answer: ...

    def answer_score(self, question: str, contexts: Sequence[str], answer: str) -> float: ...


def normalize_answer(text: str) -> str:
    """Lower-case, strip punctuation, articles and extra spaces (SQuAD-style, Rajpurkar 2016)."""
    words = [w for w in _WORD_RE.findall(text.lower()) if w not in {"a", "an", "the"}]
    return " ".join(words)


def answer_matches(prediction: str, answers: Sequence[str]) -> bool:
    """Exact match after :func:`normalize_answer` with any accepted answer."""
    pred = normalize_answer(prediction)
    return bool(pred) and any(pred == normalize_answer(a) for a in answers)


def split_sentences(text: str) -> list[str]:
    """Split on sentence-final punctuation followed by whitespace."""
    return [s.strip() for s in _SENTENCE_RE.split(text) if s.strip()]


def build_messages(question: str, contexts: Sequence[str]) -> list[dict[str, str]]:
    """Chat messages shared by the LLM backends."""
    numbered = "\n".join(f"[{i + 1}] {c}" for i, c in enumerate(contexts))
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Context:\n{numbered}\n\nQuestion: {question}\nAnswer:"},
    ]


def short_span(sentence: str, question: str, max_words: int = 4) -> str | None:
    """The words of ``sentence`` that answer ``question``, or None if there is no short span.

    Takes maximal runs of words absent from the question (stopwords may join a run but not
    start or end it); prefers runs with a capitalised word, then the longest.
    """
    qwords = {w.lower() for w in _WORD_RE.findall(question)}
    tokens = _WORD_RE.findall(sentence)
    runs: list[list[str]] = []
    current: list[str] = []
    for tok in tokens:
        low = tok.lower()
        if low in qwords:
            runs.append(current)
            current = []
        elif low in _STOPWORDS:
            if current:
                current.append(tok)
        else:
            current.append(tok)
    runs.append(current)
    cleaned = []
    for run in runs:
        while run and run[-1].lower() in _STOPWORDS:
            run = run[:-1]
        if run:
            cleaned.append(run)
    if not cleaned:
        return None
    best = max(cleaned, key=lambda r: (any(t[:1].isupper() for t in r), len(r)))
    if len(best) > max_words:
        return None
    return " ".join(best)


class ExtractiveGenerator:
    """Offline answer extraction by sentence similarity and weighted voting (see module doc)."""

    def __init__(
        self,
        embedder: Embedder | None | Literal["default"] = "default",
        answer_style: Literal["auto", "sentence", "span"] = "auto",
        margin: float = 0.15,
        max_span_words: int = 4,
        rank_discount: float = 0.9,
    ) -> None:
        self.embedder: Embedder | None = (
            default_embedder() if embedder == "default" else embedder  # type: ignore[assignment]
        )
        if answer_style not in ("auto", "sentence", "span"):
            raise ConfigError(f"answer_style={answer_style!r}; use auto, sentence or span")
        self.answer_style = answer_style
        if not 0.0 < rank_discount <= 1.0:
            raise ConfigError(f"rank_discount={rank_discount}; use a value in (0, 1]")
        self.margin = margin
        self.rank_discount = rank_discount
        self.max_span_words = max_span_words
        self._cache: dict[str, np.ndarray] = {}

    def _vectors(self, texts: Sequence[str]) -> np.ndarray:
        assert self.embedder is not None
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            if len(self._cache) > 50_000:
                self._cache.clear()
            for text, vec in zip(missing, self.embedder.embed(missing), strict=True):
                self._cache[text] = vec
        return np.stack([self._cache[t] for t in texts])

    def _similarities(self, question: str, sentences: Sequence[str]) -> np.ndarray:
        if self.embedder is not None:
            vecs = self._vectors([question, *sentences])
            return vecs[1:] @ vecs[0]
        q = {w.lower() for w in _WORD_RE.findall(question)} - _STOPWORDS
        sims = []
        for s in sentences:
            w = {x.lower() for x in _WORD_RE.findall(s)} - _STOPWORDS
            sims.append(len(q & w) / len(q | w) if q | w else 0.0)
        return np.asarray(sims, dtype=np.float64)

    def _candidate(self, sentence: str, question: str) -> str:
        if self.answer_style == "sentence":
            return sentence
        limit = self.max_span_words if self.answer_style == "auto" else len(sentence)
        span = short_span(sentence, question, limit)
        if span is not None:
            return span
        return sentence

    def _votes(
        self, question: str, contexts: Sequence[str]
    ) -> tuple[dict[str, float], dict[str, str], dict[str, list[int]]]:
        """Vote weight, surface form and supporting contexts per normalised candidate."""
        votes: dict[str, float] = {}
        surface: dict[str, str] = {}
        support: dict[str, list[int]] = {}
        sentences: list[tuple[int, str]] = []
        windows: list[str] = []
        for ci, ctx in enumerate(contexts):
            prev = ""
            for sentence in split_sentences(ctx):
                sentences.append((ci, sentence))
                windows.append(f"{prev} {sentence}" if prev else sentence)
                prev = sentence
        if not sentences:
            return votes, surface, support
        # a sentence is judged alone and with its predecessor, which resolves "Its currency
        # is the Dramel." after "Zorvia is an island." without a coreference model
        sims = self._similarities(question, [s for _, s in sentences] + windows)
        sims = 0.5 * (sims[: len(sentences)] + sims[len(sentences) :])
        best_per_ctx: dict[int, tuple[float, str]] = {}
        for (ci, sentence), sim in zip(sentences, sims, strict=True):
            if ci not in best_per_ctx or sim > best_per_ctx[ci][0]:
                best_per_ctx[ci] = (float(sim), sentence)
        top = max(sim for sim, _ in best_per_ctx.values())
        for ci in sorted(best_per_ctx):
            sim, sentence = best_per_ctx[ci]
            if sim < top - self.margin:
                continue
            cand = self._candidate(sentence, question)
            key = normalize_answer(cand) or cand
            votes[key] = votes.get(key, 0.0) + max(sim, 1e-6) * self.rank_discount**ci
            surface.setdefault(key, cand)
            support.setdefault(key, []).append(ci)
        return votes, surface, support

    def generate(self, question: str, contexts: Sequence[str]) -> Answer:
        """The best-supported answer span; empty text when there are no contexts."""
        votes, surface, support = self._votes(question, contexts)
        if not votes:
            return Answer(text="", support=())
        winner = max(votes, key=lambda k: (votes[k], -support[k][0]))
        return Answer(
            text=surface[winner],
            support=tuple(support[winner]),
            meta={"votes": {surface[k]: v for k, v in votes.items()}},
        )

    def answer_score(self, question: str, contexts: Sequence[str], answer: str) -> float:
        """The share of the vote ``answer`` gets from ``contexts``, in [0, 1].

        A graded utility for attribution: a passage that argues for another answer lowers
        the share even when it does not flip the winner.
        """
        votes, _, _ = self._votes(question, contexts)
        total = sum(votes.values())
        key = normalize_answer(answer) or answer
        return votes.get(key, 0.0) / total if total > 0 else 0.0


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

    def generate(self, question: str, contexts: Sequence[str]) -> Answer:
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


class TransformersGenerator:
    """A local Hugging Face causal LM (folder with config, tokenizer, weights), greedy decoding.

    Loaded on first use so importing this module does not import transformers.
    """

    def __init__(self, path: str | Path, max_new_tokens: int = 32, device: str = "cpu") -> None:
        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise ConfigError(
                f"no model at {self.path} (config.json missing); "
                "pass a local folder saved with save_pretrained"
            )
        self.max_new_tokens = max_new_tokens
        self.device = device
        self._model: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        if self._model is not None:
            return
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise ConfigError("transformers is not installed; pip install transformers") from exc
        self._tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self._model = AutoModelForCausalLM.from_pretrained(self.path, local_files_only=True)
        self._model.to(self.device).eval()

    def generate(self, question: str, contexts: Sequence[str]) -> Answer:
        import torch

        self._load()
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
        return Answer(text=text.strip().split("\n")[0].strip(), meta={"model": str(self.path)})
