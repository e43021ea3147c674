"""Leave-one-out and Shapley attribution over contexts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drag.attribution import (
    MemoUtility,
    attribute,
    leave_one_out,
    shapley_exact,
    shapley_monte_carlo,
)
from drag.generate import ExtractiveGenerator
from marketplace.errors import AssumptionViolated


@settings(max_examples=40)
@given(weights=st.lists(st.floats(min_value=-3, max_value=3), min_size=1, max_size=6))
def test_additive_game_gives_each_player_its_weight(weights: list[float]) -> None:
    def u(s: frozenset[int]) -> float:
        return sum(weights[i] for i in s)

    assert np.allclose(shapley_exact(len(weights), u), weights)
    assert np.allclose(leave_one_out(len(weights), u), weights)


def test_shapley_efficiency_symmetry_and_loo_blind_spot() -> None:
    # "at least one of {0, 1}" : redundant players; 2 is a null player
    def u(s: frozenset[int]) -> float:
        return 1.0 if s & {0, 1} else 0.0

    phi = shapley_exact(3, u)
    assert phi == pytest.approx([0.5, 0.5, 0.0])
    assert phi.sum() == pytest.approx(u(frozenset({0, 1, 2})) - u(frozenset()))
    assert leave_one_out(3, u) == pytest.approx([0.0, 0.0, 0.0])  # LOO misses redundancy
    mc = shapley_monte_carlo(3, u, permutations=400, seed=1)
    assert mc == pytest.approx([0.5, 0.5, 0.0], abs=0.08)
    assert np.array_equal(mc, shapley_monte_carlo(3, u, permutations=400, seed=1))


def test_memoisation_and_limit() -> None:
    calls: list[frozenset[int]] = []

    def size(s: frozenset[int]) -> float:
        calls.append(s)
        return float(len(s))

    memo = MemoUtility(size)
    shapley_exact(4, memo)
    assert memo.calls == len(calls) == 16
    with pytest.raises(AssumptionViolated, match="2\\^12"):
        shapley_exact(12, memo, max_exact=10)


def test_attribution_of_an_extractive_answer() -> None:
    gen = ExtractiveGenerator(embedder=None)
    q = "What is the capital of Zorvia?"
    contexts = [
        "The capital of Zorvia is Quelton.",
        "The capital of Zorvia is Brakmor.",
        "The capital of Zorvia is Quelton.",
        "Bread is baked from flour.",
    ]
    truth = attribute(gen, q, contexts, method="shapley", target="Quelton", soft=False)
    assert truth.answer == "Quelton"
    # the two copies of one passage are one player and share its value
    assert truth.scores[0] == truth.scores[2] == pytest.approx(0.5)
    assert truth.scores[1] == pytest.approx(0.0)  # never pivotal against two copies
    assert truth.scores[3] == pytest.approx(0.0)
    assert sum(truth.scores) == pytest.approx(1.0)  # U(all) - U(empty)
    soft = attribute(gen, q, contexts, method="shapley", target="Quelton")
    assert soft.scores[0] == soft.scores[2] > 0
    assert soft.scores[1] < 0  # the polluted passage pulls away from the truth
    assert soft.method == "shapley" and soft.generator_calls == 2**3 + 1  # 3 distinct
    loo = attribute(gen, q, contexts[:2], method="loo", soft=False)
    assert loo.method == "loo" and loo.scores == (1.0, 0.0)


def test_soft_attribution_blames_a_passage_that_does_not_flip_the_answer() -> None:
    gen = ExtractiveGenerator(embedder=None)
    q = "What is the capital of Zorvia?"
    contexts = ["The capital of Zorvia is Quelton.", "The capital of Zorvia is Brakmor."]
    hard = attribute(gen, q, contexts, method="shapley", target="Quelton", soft=False)
    assert hard.scores[1] == 0.0  # Quelton wins with or without the polluted passage
    soft = attribute(gen, q, contexts, method="shapley", target=["quelton"])
    assert soft.scores[0] > 0 > soft.scores[1]
    full_share = gen.answer_score(q, contexts, "Quelton")
    assert 0.5 < full_share < 1 and sum(soft.scores) == pytest.approx(full_share)
