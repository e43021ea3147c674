"""Rank passages from several sources by relevance and source reliability.

Step 4 of the dRAG query: ``score = (1 - alpha) * relevance + alpha * reliability``
(the reliability-aware reranking of Reliable-dRAG, Lu et al. 2025, arXiv:2511.07577).
``relevance`` is the source's cosine score; ``reliability`` is the source's posterior
mean reliability in [0, 1]. Sources score relevance with the same model but each over its
own corpus, so raw cosines are comparable; ``normalize="minmax"`` rescales relevance over
the candidate set to [0, 1] when the two terms should weigh on the same scale.
With ``question`` and ``lexical_weight > 0``, relevance is fused with the share of the
question's words each passage contains (:mod:`drag.lexical`), which recovers passages the
embedding ranks low for an exact token ("symbol Be").
With ``dedupe=True`` identical texts from several sources are merged (keeping the
best-scored copy and the list of sources that returned it). It is off by default: the same
fact confirmed by several independent sources is evidence a generator may weigh.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from drag.lexical import hybrid_order
from drag.retrieve import RetrievedPassage
from marketplace.errors import ConfigError


@dataclass(frozen=True)
class RankedPassage:
    """A candidate passage with the terms of its score."""

    passage: RetrievedPassage
    relevance: float
    reliability: float
    score: float
    also_from: tuple[int, ...] = ()

    @property
    def text(self) -> str:
        return self.passage.text

    @property
    def source_id(self) -> int:
        return self.passage.source_id

    @property
    def vote_weight(self) -> float:
        """How much this passage's answer counts in the generator's vote:
        :func:`vote_weight` of its source's reliability."""
        return vote_weight(self.reliability)


#: Smallest vote weight: a source judged no better than chance (reliability <= 0.5) still
#: speaks when nobody else does, and at equal reliability every source votes alike.
MIN_VOTE_WEIGHT = 0.1
#: Reliability is capped below 1 so that one source's weight stays finite.
MAX_VOTE_RELIABILITY = 0.999


def vote_weight(reliability: float) -> float:
    """The log-odds ``log(p / (1 - p))`` of a source's reliability ``p``, at least
    :data:`MIN_VOTE_WEIGHT`: the weight of its vote in the optimal weighted-majority rule
    for independent voters that are right with probability ``p`` (Nitzan & Paroush 1982).

    Two copies of a wrong answer from sources at 0.65 (weight 0.62 each) lose to one copy
    from a source at 0.95 (2.94): sources that collude on one wrong answer must together
    be more credible than the reliable source they contradict. With K possible answers
    and wrong answers spread evenly the optimal weight is ``log((K - 1) p / (1 - p))``,
    closer to equal votes; the plain log-odds is the K = 2 case, the one colluding sources
    create, so it is the safe choice against them.
    """
    if not 0.0 <= reliability <= 1.0 or math.isnan(reliability):
        raise ConfigError(f"reliability={reliability}; a reliability is a probability in [0, 1]")
    p = min(reliability, MAX_VOTE_RELIABILITY)
    if p <= 0.5:
        return MIN_VOTE_WEIGHT
    return max(math.log(p / (1.0 - p)), MIN_VOTE_WEIGHT)


def rerank_score(relevance: float, reliability: float, alpha: float) -> float:
    """``(1 - alpha) * relevance + alpha * reliability``."""
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha={alpha}; the reliability weight must be in [0, 1]")
    return (1.0 - alpha) * relevance + alpha * reliability


def rerank(
    passages: Sequence[RetrievedPassage],
    reliability: Mapping[int, float],
    alpha: float,
    top_n: int | None = None,
    normalize: Literal["none", "minmax"] = "none",
    dedupe: bool = False,
    question: str | None = None,
    lexical_weight: float = 0.0,
) -> list[RankedPassage]:
    """Passages sorted by :func:`rerank_score`, best first (ties keep input order).

    ``reliability`` maps source id to a value in [0, 1]; an unknown source counts as 0.5
    (the mean of the uniform prior).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha={alpha}; the reliability weight must be in [0, 1]")
    if not passages:
        return []
    scores = [p.score for p in passages]
    if question is not None and lexical_weight > 0:
        scores = hybrid_order(question, [p.text for p in passages], scores, lexical_weight)
    rel = np.asarray(scores, dtype=np.float64)
    if normalize == "minmax":
        span = rel.max() - rel.min()
        rel = (rel - rel.min()) / span if span > 0 else np.ones_like(rel)
    elif normalize != "none":
        raise ConfigError(f"unknown normalization {normalize!r}; use none or minmax")
    ranked = [
        RankedPassage(
            passage=p,
            relevance=float(r),
            reliability=float(reliability.get(p.source_id, 0.5)),
            score=rerank_score(float(r), float(reliability.get(p.source_id, 0.5)), alpha),
        )
        for p, r in zip(passages, rel, strict=True)
    ]
    order = sorted(range(len(ranked)), key=lambda i: -ranked[i].score)
    out: list[RankedPassage] = []
    by_hash: dict[bytes, int] = {}
    for i in order:
        item = ranked[i]
        if dedupe and item.passage.passage_hash in by_hash:
            j = by_hash[item.passage.passage_hash]
            kept = out[j]
            out[j] = RankedPassage(
                kept.passage,
                kept.relevance,
                kept.reliability,
                kept.score,
                kept.also_from + (item.source_id,),
            )
            continue
        by_hash[item.passage.passage_hash] = len(out)
        out.append(item)
    return out[:top_n] if top_n is not None else out


def select_contexts(ranked: Sequence[RankedPassage], top_n: int) -> list[RankedPassage]:
    """The best ``top_n`` distinct passages of ``ranked`` with every copy of each, best first.

    Sources often hold the same document, so the best passages come in copies, one per
    source. Cutting the ranking at ``top_n`` copies let one passage fill the window three
    times: the generator then read fewer distinct passages than a single index gives it
    (a document missed, its answer lost), and a passage that ranked first (even a wrong one)
    got three votes where a better one ranked fourth got one. Counting distinct texts
    against ``top_n`` and keeping all copies of each keeps what copies are for: a fact
    confirmed by several sources still votes once per source, and one corrupted copy still
    faces the clean copies of the others.
    """
    if top_n < 1:
        raise ConfigError(f"top_n={top_n}; give the generator at least one passage")
    keep: set[str] = set()
    for item in ranked:
        if item.text not in keep:
            if len(keep) == top_n:
                continue
            keep.add(item.text)
    return [item for item in ranked if item.text in keep]
