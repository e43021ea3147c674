"""Lexical relevance: how many of the question's words a passage contains.

Dense retrieval (MiniLM cosine) finds passages about the right topic but misses exact
tokens: "Which chemical element has the symbol Be?" ranks Berkelium and Strontium above
Beryllium (recall@5 96%, @20 99% on the elements corpus). Fusing the cosine with the
share of the question's words found in the passage (names matched with their case, so
the symbol "Be" does not match the verb "be") is the classic hybrid of sparse and dense
retrieval (e.g. Karpukhin et al. 2020 combine BM25 with DPR); here it reorders the
candidates the sources returned, so it costs no index change and no model call.
"""

from __future__ import annotations

from collections.abc import Sequence

from drag.reader import STOPWORDS, analyse_question, stem, tokens


def lexical_relevance(question: str, passages: Sequence[str]) -> list[float]:
    """Per passage, the weighted share of the question's words it contains, in [0, 1]:
    the question's names weigh 1 together (matched case-sensitively), other words 2 each."""
    info = analyse_question(question)
    surface = {t for t in tokens(question)[1:] if t[:1].isupper()}
    names = {n for n in info.names if any(stem(t) == n for t in surface)}
    words = info.content - names
    n_names = max(len(names), 1)
    total = 2.0 * len(words) + (1.0 if names else 0.0)
    if total == 0:
        return [0.0] * len(passages)
    out = []
    for text in passages:
        toks = tokens(text)
        stems = {stem(t) for t in toks if t.lower() not in STOPWORDS or t[:1].isupper()}
        cased = {stem(t) for t in toks if t[:1].isupper()}
        got = 2.0 * len(words & stems) + len(names & cased) / n_names
        out.append(got / total)
    return out


def hybrid_order(
    question: str, texts: Sequence[str], relevance: Sequence[float], weight: float
) -> list[float]:
    """``relevance + weight * lexical`` per passage (the fused relevance)."""
    if weight == 0.0:
        return list(relevance)
    lex = lexical_relevance(question, texts)
    return [float(r) + weight * x for r, x in zip(relevance, lex, strict=True)]
