"""A source node's passage index, persisted so a restart does not re-embed the corpus.

On disk (``index_dir``):

- ``embeddings.npy``: ``[n, dim]`` float32 unit vectors, one row per passage;
- ``passages.jsonl``: the passages, same order;
- ``index.faiss``: the faiss index over the rows (``IndexFlatIP``: exact cosine search;
  ``IndexHNSWFlat`` with inner product above ``hnsw_threshold`` passages, Malkov &
  Yashunin 2018, where exact search stops being cheap);
- ``manifest.json``: model name, chunking settings, and for every source file its SHA-256
  and row range, plus the SHA-256 of the two data files. Written last, atomically.

:meth:`PassageIndex.sync` compares the docs folder with the manifest: rows of unchanged
files are reused as they are, only new or changed files are chunked and embedded, rows of
deleted files are dropped. A different model or chunking setting invalidates everything.
If the data files do not match the manifest (a crash between writes), the index starts
empty rather than serve passages that do not match their vectors.

Searches of fewer than :data:`PARALLEL_SEARCH_MIN_QUERIES` queries run on one OpenMP
thread. One query against 10,000 rows is ~4 MFLOP, 0.2 ms on one core; with faiss's
default team the idle threads spin-wait after every search, which cost a source node
12-17 ms of CPU per request on this 2-core machine (2 ms with one thread) and slowed every
other source sharing the cores.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from drag.embed import Embedder, default_embedder
from drag.ingest import (
    ChunkConfig,
    Passage,
    docs_root,
    file_sha256,
    ingest_file,
    list_documents,
)
from drag.lexical import LexicalIndex, hybrid_order
from marketplace.errors import ConfigError, DragError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
EMBEDDINGS = "embeddings.npy"
PASSAGES = "passages.jsonl"
FAISS_INDEX = "index.faiss"
HNSW_M = 32
HNSW_EF_SEARCH = 128
PARALLEL_SEARCH_MIN_QUERIES = 32


@dataclass(frozen=True)
class Hit:
    """One search result: the passage, its cosine score, and its row in the index."""

    passage: Passage
    score: float
    row: int


@dataclass
class SyncReport:
    """What :meth:`PassageIndex.sync` did, file by file."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    embedded_passages: int = 0

    @property
    def modified(self) -> bool:
        return bool(self.added or self.changed or self.removed)


@dataclass(frozen=True)
class _FileEntry:
    sha256: str
    start: int
    count: int


def _sha256_file(path: Path) -> str:
    return file_sha256(path)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def build_faiss_index(vectors: np.ndarray, hnsw_threshold: int) -> Any:
    """Exact inner-product index, or HNSW when there are at least ``hnsw_threshold`` rows."""
    dim = vectors.shape[1]
    index: Any
    if len(vectors) >= hnsw_threshold:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(vectors)
    return index


@contextmanager
def omp_threads(n: int) -> Iterator[None]:
    """Run faiss with ``n`` OpenMP threads in the calling thread, then restore the setting.

    OpenMP keeps the thread count per calling thread, so this does not touch searches that
    other threads run at the same time.
    """
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class PassageIndex:
    """Passages + vectors + faiss index of one source node, kept in ``index_dir``."""

    def __init__(
        self,
        index_dir: Path | str,
        embedder: Embedder | None = None,
        chunk: ChunkConfig | None = None,
        hnsw_threshold: int = 50_000,
    ) -> None:
        self.index_dir = Path(index_dir)
        self.embedder: Embedder = embedder if embedder is not None else default_embedder()
        self.chunk = chunk or ChunkConfig()
        self.hnsw_threshold = hnsw_threshold
        self.passages: list[Passage] = []
        self.vectors = np.zeros((0, self.embedder.dim), dtype=np.float32)
        self._files: dict[str, _FileEntry] = {}
        self._faiss: Any = build_faiss_index(self.vectors, hnsw_threshold)
        self._lexical: LexicalIndex | None = None  # built on the first hybrid search
        self._load()

    def __len__(self) -> int:
        return len(self.passages)

    @property
    def files(self) -> dict[str, str]:
        """Indexed files and their SHA-256."""
        return {name: e.sha256 for name, e in self._files.items()}

    def _settings(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "model": self.embedder.name,
            "dim": self.embedder.dim,
            "chunk": asdict(self.chunk),
        }

    def _load(self) -> None:
        manifest_path = self.index_dir / MANIFEST
        if not manifest_path.is_file():
            return
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("index manifest %s unreadable (%s); rebuilding", manifest_path, exc)
            return
        if manifest.get("settings") != self._settings():
            log.info("index settings changed (model, dim or chunking); re-embedding everything")
            return
        emb_path = self.index_dir / EMBEDDINGS
        pas_path = self.index_dir / PASSAGES
        if (
            not emb_path.is_file()
            or not pas_path.is_file()
            or _sha256_file(emb_path) != manifest.get("embeddings_sha256")
            or _sha256_file(pas_path) != manifest.get("passages_sha256")
        ):
            log.warning("index data in %s does not match its manifest; rebuilding", self.index_dir)
            return
        vectors = np.load(emb_path)
        with pas_path.open(encoding="utf-8") as f:
            passages = [Passage(**json.loads(line)) for line in f if line.strip()]
        if len(passages) != len(vectors):
            log.warning("index in %s has mismatched passages/vectors; rebuilding", self.index_dir)
            return
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.passages = passages
        self._lexical = None
        self._files = {
            name: _FileEntry(**entry) for name, entry in manifest.get("files", {}).items()
        }
        self._faiss = self._read_or_build_faiss(manifest)
        log.info("loaded index of %d passages from %s", len(self.passages), self.index_dir)

    def _read_or_build_faiss(self, manifest: dict[str, Any]) -> Any:
        path = self.index_dir / FAISS_INDEX
        if path.is_file() and manifest.get("faiss_sha256") == _sha256_file(path):
            index = faiss.read_index(str(path))
            if index.ntotal == len(self.vectors) and index.d == self.embedder.dim:
                if isinstance(index, faiss.IndexHNSWFlat):
                    index.hnsw.efSearch = HNSW_EF_SEARCH
                return index
        log.info("faiss index missing or stale; rebuilding it from stored vectors")
        return build_faiss_index(self.vectors, self.hnsw_threshold)

    def sync(self, docs_dir: Path | str) -> SyncReport:
        """Bring the index in line with ``docs_dir``; embed only new or changed files."""
        docs_dir = Path(docs_dir)
        report = SyncReport()
        found = list_documents(docs_dir)
        docs_dir = docs_root(docs_dir)
        current = {p.relative_to(docs_dir).as_posix(): p for p in found}
        hashes = {name: _sha256_file(path) for name, path in current.items()}
        report.removed = sorted(set(self._files) - set(current))

        to_embed: list[Passage] = []
        segments: list[tuple[str, str, list[Passage], np.ndarray | None]] = []
        for name in sorted(current):
            old = self._files.get(name)
            if old is not None and old.sha256 == hashes[name]:
                report.unchanged.append(name)
                rows = slice(old.start, old.start + old.count)
                segments.append((name, hashes[name], self.passages[rows], self.vectors[rows]))
                continue
            (report.changed if old is not None else report.added).append(name)
            new_passages = ingest_file(current[name], docs_dir, self.chunk)
            to_embed.extend(new_passages)
            segments.append((name, hashes[name], new_passages, None))

        if not report.modified and (self.index_dir / MANIFEST).is_file():
            return report

        new_vectors = self._embed(to_embed)
        report.embedded_passages = len(to_embed)
        passages: list[Passage] = []
        blocks: list[np.ndarray] = []
        files: dict[str, _FileEntry] = {}
        cursor = 0
        for name, sha, seg_passages, seg_vectors in segments:
            if seg_vectors is None:
                seg_vectors = new_vectors[cursor : cursor + len(seg_passages)]
                cursor += len(seg_passages)
            files[name] = _FileEntry(sha256=sha, start=len(passages), count=len(seg_passages))
            passages.extend(seg_passages)
            blocks.append(seg_vectors)
        self.passages = passages
        self._lexical = None
        self.vectors = (
            np.ascontiguousarray(np.concatenate(blocks), dtype=np.float32)
            if blocks
            else np.zeros((0, self.embedder.dim), dtype=np.float32)
        )
        self._files = files
        self._faiss = build_faiss_index(self.vectors, self.hnsw_threshold)
        self.save()
        log.info(
            "index synced: %d added, %d changed, %d removed, %d passages embedded, %d total",
            len(report.added),
            len(report.changed),
            len(report.removed),
            report.embedded_passages,
            len(self.passages),
        )
        return report

    def _embed(self, passages: Sequence[Passage]) -> np.ndarray:
        if not passages:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        vectors = self.embedder.embed([p.text for p in passages])
        if vectors.shape != (len(passages), self.embedder.dim):
            raise DragError(
                f"embedder returned shape {vectors.shape}, expected "
                f"({len(passages)}, {self.embedder.dim}); check the embedding model"
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def save(self) -> None:
        """Write data files, then the faiss index, then the manifest (the commit point)."""
        self.index_dir.mkdir(parents=True, exist_ok=True)
        emb_path = self.index_dir / EMBEDDINGS
        tmp = emb_path.with_name("embeddings.tmp.npy")
        np.save(tmp, self.vectors)
        os.replace(tmp, emb_path)
        lines = "".join(json.dumps(asdict(p), ensure_ascii=False) + "\n" for p in self.passages)
        _atomic_write_bytes(self.index_dir / PASSAGES, lines.encode("utf-8"))
        faiss_path = self.index_dir / FAISS_INDEX
        faiss.write_index(self._faiss, str(faiss_path))
        manifest = {
            "settings": self._settings(),
            "files": {name: asdict(e) for name, e in sorted(self._files.items())},
            "embeddings_sha256": _sha256_file(emb_path),
            "passages_sha256": _sha256_file(self.index_dir / PASSAGES),
            "faiss_sha256": _sha256_file(faiss_path),
            "count": len(self.passages),
        }
        _atomic_write_bytes(
            self.index_dir / MANIFEST, json.dumps(manifest, indent=1).encode("utf-8")
        )

    def search_vectors(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        """Top-``k`` passages for each row of ``queries`` (unit vectors), best first."""
        if k < 1:
            raise ConfigError(f"k={k}; ask for at least one passage")
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.embedder.dim:
            raise DragError(
                f"query vectors have dim {queries.shape[1]}, the index has {self.embedder.dim}"
            )
        if not self.passages:
            return [[] for _ in range(len(queries))]
        threads = 1 if len(queries) < PARALLEL_SEARCH_MIN_QUERIES else faiss.omp_get_max_threads()
        with omp_threads(threads):
            scores, rows = self._faiss.search(queries, min(k, len(self.passages)))
        return [
            [
                Hit(passage=self.passages[int(r)], score=float(s), row=int(r))
                for s, r in zip(srow, rrow, strict=True)
                if r >= 0
            ]
            for srow, rrow in zip(scores, rows, strict=True)
        ]

    def search(self, query: str, k: int) -> list[Hit]:
        """Top-``k`` passages for a text query."""
        return self.search_vectors(self.embedder.embed([query]), k)[0]

    def search_hybrid(
        self,
        query: str,
        k: int,
        vector: np.ndarray | None = None,
        lexical_weight: float = 0.5,
    ) -> list[Hit]:
        """Top-``k`` passages by ``cosine + lexical_weight * lexical relevance``
        (:func:`drag.lexical.hybrid_order`, the client's rerank formula), among the
        dense top-k and the lexical top-k (:class:`drag.lexical.LexicalIndex`).

        ``vector`` is the query's embedding (embedded here when None). Hits keep their
        cosine as ``score``: the client fuses the lexical share itself. With
        ``lexical_weight == 0`` this is :meth:`search_vectors`.
        """
        if vector is None:
            vector = self.embedder.embed([query])
        query_vec = np.asarray(vector, dtype=np.float32).reshape(-1)
        dense = self.search_vectors(query_vec, k)[0]
        if lexical_weight == 0.0 or not self.passages:
            return dense
        if self._lexical is None:
            self._lexical = LexicalIndex([p.text for p in self.passages])
        lexical_rows = [r for r, _ in self._lexical.top(query, k)]
        rows = list(dict.fromkeys([h.row for h in dense] + lexical_rows))
        cosines = self.vectors[rows] @ query_vec
        texts = [self.passages[r].text for r in rows]
        fused = hybrid_order(query, texts, [float(c) for c in cosines], lexical_weight)
        order = sorted(range(len(rows)), key=lambda i: -fused[i])[:k]
        return [
            Hit(passage=self.passages[rows[i]], score=float(cosines[i]), row=rows[i]) for i in order
        ]


def open_index(
    index_dir: Path | str,
    docs_dir: Path | str | None = None,
    embedder: Embedder | None = None,
    chunk: ChunkConfig | None = None,
) -> tuple[PassageIndex, SyncReport | None]:
    """Open the index in ``index_dir`` and, if ``docs_dir`` is given, sync it first."""
    index = PassageIndex(index_dir, embedder=embedder, chunk=chunk)
    report = index.sync(docs_dir) if docs_dir is not None else None
    return index, report
