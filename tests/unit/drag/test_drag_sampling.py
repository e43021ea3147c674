"""Source sampling: seeded, distinct, and biased towards better scores."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drag.registry import SourceRecord
from drag.sampling import choose_sources, thompson_beta, usefulness_proportional
from marketplace.errors import ConfigError


def test_seeded_determinism() -> None:
    u = [0.1, 0.5, 2.0, 0.0, 1.0]
    assert usefulness_proportional(u, 3, seed=9) == usefulness_proportional(u, 3, seed=9)
    pos, neg = [1, 5, 0, 9], [3, 1, 0, 2]
    assert thompson_beta(pos, neg, 2, seed=4) == thompson_beta(pos, neg, 2, seed=4)
    draws = {tuple(usefulness_proportional(u, 3, seed=s)) for s in range(20)}
    assert len(draws) > 1


def test_higher_usefulness_is_sampled_more_often() -> None:
    u = [1.0, 4.0, 0.0]
    counts = Counter(usefulness_proportional(u, 1, seed=s)[0] for s in range(2000))
    assert counts[1] > 3 * counts[0] > 0
    assert counts[2] < 30  # floor keeps it reachable but rare


def test_thompson_prefers_reliable_and_explores_unknown() -> None:
    pos, neg = [40.0, 2.0, 0.0], [2.0, 40.0, 0.0]
    firsts = Counter(thompson_beta(pos, neg, 1, seed=s)[0] for s in range(1000))
    assert firsts[0] > 850
    assert firsts[2] > 5  # the unknown source is explored
    assert firsts[1] < firsts[2]


@given(
    scores=st.lists(st.floats(min_value=-5, max_value=50), min_size=1, max_size=12),
    n=st.integers(min_value=1, max_value=15),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_always_distinct_valid_indices(scores: list[float], n: int, seed: int) -> None:
    for idx in (
        usefulness_proportional(scores, n, seed),
        thompson_beta([max(s, 0) for s in scores], [1.0] * len(scores), n, seed),
    ):
        assert len(idx) == min(n, len(scores)) == len(set(idx))
        assert all(0 <= i < len(scores) for i in idx)


def test_choose_sources_skips_inactive_and_validates() -> None:
    sources = [
        SourceRecord(i, "0x" + "00" * 20, f"http://s{i}", usefulness=1.0, active=i != 1)
        for i in range(4)
    ]
    for strategy in ("thompson", "usefulness"):
        chosen = choose_sources(sources, 10, seed=1, strategy=strategy)
        assert sorted(s.source_id for s in chosen) == [0, 2, 3]
    with pytest.raises(ConfigError, match="strategy"):
        choose_sources(sources, 2, seed=1, strategy="round-robin")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no active"):
        choose_sources([], 2, seed=1)
    with pytest.raises(ConfigError):
        thompson_beta([1], [1], 0, seed=1)
