"""Reranking by (1 - alpha) * relevance + alpha * reliability."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drag.receipts import passage_hash
from drag.rerank import rerank, rerank_score, select_contexts
from drag.retrieve import RetrievedPassage
from marketplace.errors import ConfigError


def _p(text: str, score: float, source: int) -> RetrievedPassage:
    return RetrievedPassage(text, score, passage_hash(text), "d", "d:0", source)


@given(
    rel=st.floats(min_value=-1, max_value=1),
    reli=st.floats(min_value=0, max_value=1),
    alpha=st.floats(min_value=0, max_value=1),
)
def test_formula(rel: float, reli: float, alpha: float) -> None:
    assert rerank_score(rel, reli, alpha) == pytest.approx((1 - alpha) * rel + alpha * reli)


def test_alpha_trades_relevance_for_reliability() -> None:
    passages = [_p("relevant but unreliable", 0.9, 1), _p("less relevant, reliable", 0.6, 2)]
    reliability = {1: 0.1, 2: 0.95}
    assert [r.source_id for r in rerank(passages, reliability, alpha=0.0)] == [1, 2]
    ranked = rerank(passages, reliability, alpha=0.5)
    assert [r.source_id for r in ranked] == [2, 1]
    assert ranked[0].score == pytest.approx(0.5 * 0.6 + 0.5 * 0.95)
    assert ranked[1].reliability == 0.1 and ranked[1].relevance == 0.9


def test_minmax_dedupe_topn_and_unknown_sources() -> None:
    passages = [_p("a", 0.2, 1), _p("b", 0.8, 2), _p("a", 0.5, 3), _p("c", 0.4, 9)]
    ranked = rerank(passages, {1: 1.0, 2: 1.0, 3: 1.0}, 0.0, normalize="minmax", dedupe=True)
    assert [r.text for r in ranked] == ["b", "a", "c"]
    assert ranked[0].relevance == 1.0
    assert ranked[1].source_id == 3 and ranked[1].also_from == (1,)
    assert rerank(passages, {}, 1.0)[0].reliability == 0.5
    assert len(rerank(passages, {}, 0.3, top_n=2)) == 2
    assert rerank([], {}, 0.3) == []
    with pytest.raises(ConfigError, match="alpha"):
        rerank(passages, {}, 1.5)


def test_select_contexts_counts_distinct_passages_and_keeps_every_copy() -> None:
    # three sources hold document A; a wrong passage W ranks first in all three, the
    # right one R after it: a cut at 3 copies would read W three times and never R
    ranked = rerank(
        [_p("W", 0.9, 1), _p("W", 0.9, 2), _p("W", 0.9, 3), _p("R", 0.8, 1),
         _p("R", 0.8, 2), _p("R", 0.8, 3), _p("X", 0.1, 1)],
        {1: 0.9, 2: 0.8, 3: 0.7}, alpha=0.3,
    )  # fmt: skip
    picked = select_contexts(ranked, top_n=2)
    assert [(r.text, r.source_id) for r in picked] == [
        ("W", 1), ("W", 2), ("W", 3), ("R", 1), ("R", 2), ("R", 3)
    ]  # fmt: skip
    assert [r.text for r in select_contexts(ranked, top_n=3)][-1] == "X"
    with pytest.raises(ConfigError, match="top_n=0"):
        select_contexts(ranked, top_n=0)
