"""Shared by the parser fuzz suite (tests/fuzz): budgets, case counters, the test pair.

Each target gets a default test with a small fixed budget (:data:`DEFAULT_EXAMPLES`, so
the whole default fuzz run stays under a minute on two shared cores) and a long twin
marked ``slow`` (:data:`LONG_EXAMPLES`). A target's check calls the parser and lets only
the parser's documented refusal through: any other exception type, or a crash, fails the
test. Every case run is counted per target; ``tests/fuzz/conftest.py`` prints the counts at
the end of the session (and writes them as JSON to ``$LEDGERLEARN_FUZZ_COUNTS`` if set).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

DEFAULT_EXAMPLES = int(os.environ.get("LEDGERLEARN_FUZZ_EXAMPLES", "120"))
LONG_EXAMPLES = int(os.environ.get("LEDGERLEARN_FUZZ_LONG_EXAMPLES", "20000"))
COUNTS: Counter[str] = Counter()

_SETTINGS: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


def fuzz_pair(
    target: str, strategy: st.SearchStrategy[Any], check: Callable[[Any], None]
) -> tuple[Callable[..., None], Callable[..., None]]:
    """(default test, long test marked slow) running ``check`` on ``strategy``'s values."""

    def run(value: Any) -> None:
        COUNTS[target] += 1
        check(value)

    def run_long(value: Any) -> None:
        run(value)

    # the default run is reproducible in CI (as the HTTP suite's); the slow run explores
    default = settings(max_examples=DEFAULT_EXAMPLES, derandomize=True, database=None, **_SETTINGS)(
        given(strategy)(run)
    )
    long = settings(max_examples=LONG_EXAMPLES, **_SETTINGS)(given(strategy)(run_long))
    long.pytestmark = [pytest.mark.slow.mark]  # type: ignore[attr-defined]
    return default, long


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Arbitrary JSON values (finite numbers, any text)."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(10**30), 10**30)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def mutated(base: bytes) -> st.SearchStrategy[bytes]:
    """``base`` with a few bytes overwritten, cut short, or extended."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        data = bytearray(base)
        for _ in range(draw(st.integers(1, 4))):
            if not data:
                break
            pos = draw(st.integers(0, len(data) - 1))
            data[pos] = draw(st.integers(0, 255))
        cut = draw(st.integers(0, len(data)))
        tail = draw(st.binary(max_size=16))
        return bytes(data[:cut]) + tail if draw(st.booleans()) else bytes(data)

    return build()
