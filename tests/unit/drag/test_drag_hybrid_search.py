"""Sources find candidates by cosine and by word share: a passage the embedding ranks
below k is still returned when it holds the question's rare word ("symbol Be")."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from drag.index import PassageIndex
from drag.lexical import LexicalIndex, lexical_relevance

QUESTION = "Which chemical element has the symbol Be?"
TARGET = "Beryllium is a chemical element; it has symbol Be and atomic number 4."
DISTRACTORS = [
    f"{name} is a chemical element; it has symbol {sym} and atomic number {z}."
    for name, sym, z in [("Berkelium", "Bk", 97), ("Barium", "Ba", 56), ("Boron", "B", 5)]
]


class FixedCosines:
    """An embedder whose cosine with the question is set per text: the distractors 0.5,
    the passage that answers 0.4 (as MiniLM, which ranked Beryllium 33rd)."""

    name = "fixed"
    dim = 2

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        def row(text: str) -> list[float]:
            if text == QUESTION:
                return [1.0, 0.0]
            c = 0.4 if "Beryllium" in text else 0.5
            return [c, float(np.sqrt(1 - c * c))]

        return np.asarray([row(t) for t in texts], dtype=np.float32)


@pytest.fixture()
def index(tmp_path: Path) -> PassageIndex:
    docs = tmp_path / "docs"
    docs.mkdir()
    lines = [json.dumps({"id": f"d{i}", "text": t}) for i, t in enumerate([*DISTRACTORS, TARGET])]
    (docs / "docs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    idx = PassageIndex(tmp_path / "idx", embedder=FixedCosines())
    idx.sync(docs)
    return idx


def test_hybrid_search_returns_what_the_dense_search_ranks_below_k(index) -> None:
    assert TARGET not in [h.passage.text for h in index.search(QUESTION, 2)]
    hits = index.search_hybrid(QUESTION, 2)
    assert hits[0].passage.text == TARGET
    assert hits[0].score == pytest.approx(0.4, abs=1e-6)  # the cosine, for the client's rerank
    assert [h.passage.text for h in index.search_hybrid(QUESTION, 2, lexical_weight=0.0)] == [
        h.passage.text for h in index.search(QUESTION, 2)
    ]


def test_the_posting_lists_score_as_lexical_relevance_does() -> None:
    texts = [*DISTRACTORS, TARGET, "Iron rusts."]
    top = LexicalIndex(texts).top(QUESTION, 10)
    expected = lexical_relevance(QUESTION, texts)
    assert top[0] == (3, pytest.approx(1.0))
    assert {row: pytest.approx(score) for row, score in top} == {
        row: score for row, score in enumerate(expected) if score > 0
    }
