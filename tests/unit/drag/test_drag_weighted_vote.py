"""Votes weighted by source reliability: a reliable source is not outvoted by doubtful
ones, even when they collude; attribution replays the same weights."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drag.attribution import attribute
from drag.client import ClientConfig, DragClient, Retrieval
from drag.generate import Answer, ExtractiveGenerator
from drag.receipts import ReceiptDomain, passage_hash
from drag.registry import SourceRecord, StaticDirectory
from drag.rerank import MIN_VOTE_WEIGHT, rerank, select_contexts, vote_weight
from drag.retrieve import FanOutResult, RetrievedPassage
from marketplace.errors import ConfigError

Q = "What is the capital of Peru?"
RIGHT = "Peru is a country in South America. Its capital is Lima."
WRONG = "Peru is a country in South America. Its capital is Cusco."


def test_vote_weight_is_the_log_odds_of_reliability() -> None:
    assert vote_weight(0.9) == pytest.approx(math.log(9))
    assert vote_weight(0.5) == vote_weight(0.2) == MIN_VOTE_WEIGHT  # no better than chance
    assert math.isfinite(vote_weight(1.0))
    # two colluding copies at 0.65 weigh less than one copy at 0.95
    assert 2 * vote_weight(0.65) < vote_weight(0.95)
    with pytest.raises(ConfigError, match="probability"):
        vote_weight(1.5)


@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_vote_weight_is_positive_and_monotone(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert 0 < vote_weight(lo) <= vote_weight(hi)


def test_one_reliable_copy_beats_two_doubtful_copies_that_agree_on_a_wrong_answer() -> None:
    gen = ExtractiveGenerator()
    contexts = [WRONG, WRONG, RIGHT]  # two colluding sources first, the reliable one last
    assert gen.generate(Q, contexts).text == "Cusco"  # equal votes: the majority wins
    weights = [vote_weight(0.6), vote_weight(0.65), vote_weight(0.97)]
    answer = gen.generate(Q, contexts, weights)
    assert answer.text == "Lima" and answer.support == (2,)
    # at equal reliability the weights change nothing: agreement still decides
    same = [vote_weight(0.8)] * 3
    assert gen.generate(Q, contexts, same).text == "Cusco"
    assert gen.answer_score(Q, contexts, "Lima", weights) > 0.5
    with pytest.raises(ConfigError, match="one per context"):
        gen.generate(Q, contexts, [1.0])
    with pytest.raises(ConfigError, match="positive"):
        gen.generate(Q, contexts, [1.0, 0.0, 1.0])


def test_attribution_replays_the_weights_the_answer_was_made_with() -> None:
    gen = ExtractiveGenerator()
    contexts = [WRONG, RIGHT]
    weights = [vote_weight(0.55), vote_weight(0.97)]
    attr = attribute(gen, Q, contexts, target="Lima", weights=weights)
    assert attr.answer == "Lima"  # what the weighted generator answered
    assert attr.scores[1] > 0 > attr.scores[0]
    assert attribute(gen, Q, contexts, target="Lima").answer == "Cusco"  # unweighted: rank wins


class Recording:
    """A generator that remembers the weights it was given."""

    def __init__(self) -> None:
        self.weights: Sequence[float] | None = None

    def generate(
        self, question: str, contexts: Sequence[str], weights: Sequence[float] | None = None
    ) -> Answer:
        self.weights = weights
        return Answer("x")


def _passage(text: str, source: int) -> RetrievedPassage:
    return RetrievedPassage(text, 0.5, passage_hash(text), "d", "d:0", source)


@pytest.mark.parametrize("weighted", [True, False])
def test_the_client_passes_each_passage_its_sources_vote_weight(weighted: bool) -> None:
    sources = [SourceRecord(i, "0x" + "11" * 20, "http://127.0.0.1:9") for i in (1, 2)]
    directory = StaticDirectory(ReceiptDomain(31337, "0x" + "cc" * 20), sources)
    gen = Recording()
    config = ClientConfig(embed_query=False, weighted_vote=weighted)
    client = DragClient(directory, gen, config)
    reliability = {1: 0.95, 2: 0.6}
    ranked = select_contexts(rerank([_passage(WRONG, 2), _passage(RIGHT, 1)], reliability, 0.3), 5)
    result = client.answer(Retrieval(Q, sources, FanOutResult(b"\x00" * 32), ranked))
    expected = [vote_weight(reliability[r.source_id]) for r in ranked]
    assert gen.weights == (expected if weighted else None)
    assert result.weights == gen.weights
