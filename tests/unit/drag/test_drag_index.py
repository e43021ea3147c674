"""The persisted passage index: restart without re-embedding, incremental sync, search."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from drag.corpus import generate_facts, split_over_sources
from drag.embed import EMBED_DIM, MiniLMEmbedder
from drag.index import EMBEDDINGS, PassageIndex
from drag.ingest import ChunkConfig


class CountingEmbedder:
    """The real MiniLM embedder, counting how many texts it is asked to embed."""

    def __init__(self) -> None:
        self.inner = MiniLMEmbedder()
        self.name = self.inner.name
        self.dim = self.inner.dim
        self.calls = 0
        self.texts = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts += len(texts)
        return self.inner.embed(texts)


@pytest.fixture(scope="module")
def facts():
    return generate_facts(40, seed=11)


@pytest.fixture()
def docs(tmp_path: Path, facts) -> Path:
    folder = tmp_path / "docs"
    split_over_sources(facts, [0.0], seed=0)[0].write(folder)
    (folder / "notes.txt").write_text("Quelton harbour opens at dawn.", encoding="utf-8")
    return folder


def test_embeddings_are_unit_norm_384d() -> None:
    vecs = MiniLMEmbedder().embed(["a cat", "a dog", "stock markets fell"])
    assert vecs.shape == (3, EMBED_DIM) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]


def test_restart_does_not_re_embed_and_only_changes_are_embedded(
    tmp_path: Path, docs: Path
) -> None:
    emb = CountingEmbedder()
    index = PassageIndex(tmp_path / "idx", embedder=emb)
    first = index.sync(docs)
    assert first.added == ["docs.jsonl", "notes.txt"] and first.embedded_passages == 41
    assert emb.texts == 41 and len(index) == 41

    restarted_emb = CountingEmbedder()
    restarted = PassageIndex(tmp_path / "idx", embedder=restarted_emb)
    assert len(restarted) == 41
    report = restarted.sync(docs)
    assert not report.modified and report.unchanged == ["docs.jsonl", "notes.txt"]
    assert restarted_emb.calls == 0
    assert np.array_equal(restarted.vectors, index.vectors)

    (docs / "notes.txt").write_text("Quelton harbour opens at dusk. Boats leave.", encoding="utf-8")
    (docs / "extra.md").write_text("Brand new document about tides.", encoding="utf-8")
    report = restarted.sync(docs)
    assert report.changed == ["notes.txt"] and report.added == ["extra.md"]
    assert report.embedded_passages == 2 and restarted_emb.texts == 2
    (docs / "extra.md").unlink()
    report = restarted.sync(docs)
    assert report.removed == ["extra.md"] and restarted_emb.texts == 2 and len(restarted) == 41
    hits = restarted.search("When does Quelton harbour open?", 1)
    assert hits[0].passage.text.startswith("Quelton harbour opens at dusk")


def test_changed_chunking_or_corrupt_data_rebuilds(tmp_path: Path, docs: Path) -> None:
    emb = CountingEmbedder()
    PassageIndex(tmp_path / "idx", embedder=emb).sync(docs)
    (tmp_path / "idx" / EMBEDDINGS).write_bytes(b"garbage")
    emb2 = CountingEmbedder()
    rebuilt = PassageIndex(tmp_path / "idx", embedder=emb2)
    assert len(rebuilt) == 0
    assert rebuilt.sync(docs).embedded_passages == 41
    other = PassageIndex(tmp_path / "idx", embedder=emb2, chunk=ChunkConfig(60, 10))
    assert len(other) == 0


def test_retrieval_finds_the_fact_for_each_question(tmp_path: Path, docs: Path, facts) -> None:
    index = PassageIndex(tmp_path / "idx")
    index.sync(docs)
    hnsw = PassageIndex(tmp_path / "idx_hnsw", hnsw_threshold=1)
    hnsw.sync(docs)
    queries = index.embedder.embed([f.question for f in facts])
    flat_hits = index.search_vectors(queries, 3)
    hnsw_hits = hnsw.search_vectors(queries, 3)
    top1 = [hits[0].passage.text == f.text for hits, f in zip(flat_hits, facts, strict=True)]
    top3 = [
        any(h.passage.text == f.text for h in hits)
        for hits, f in zip(flat_hits, facts, strict=True)
    ]
    assert sum(top1) >= 0.9 * len(facts) and all(top3)
    assert [h[0].row for h in hnsw_hits] == [h[0].row for h in flat_hits]
    assert flat_hits[0][0].score >= flat_hits[0][1].score
    assert len(index.search("anything", 500)) == 41


def test_small_searches_run_on_one_thread_and_match_batched_ones(
    tmp_path: Path, docs: Path, facts
) -> None:
    """A query or two is searched single-threaded (OpenMP spin-waiting cost more than the
    search, see drag.index); results equal the multi-threaded batch search, and neither the
    faiss nor the torch thread setting of the caller is changed afterwards."""
    import faiss
    import torch

    index = PassageIndex(tmp_path / "idx")
    index.sync(docs)
    questions = [f.question for f in facts] * 8
    faiss_before, torch_before = faiss.omp_get_max_threads(), torch.get_num_threads()
    vectors = index.embedder.embed(questions[:1])
    assert torch.get_num_threads() == torch_before
    batch = index.search_vectors(index.embedder.embed(questions), 3)
    assert len(questions) >= 32  # the batch takes the multi-threaded path
    single = index.search_vectors(vectors, 3)[0]
    assert faiss.omp_get_max_threads() == faiss_before
    assert [h.row for h in single] == [h.row for h in batch[0]]
