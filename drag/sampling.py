"""Choose which N sources to query, from their on-chain scores.

Two strategies, both seeded and pure (indices in, indices out):

- :func:`usefulness_proportional`: the Reliable-dRAG rule (Lu et al. 2025,
  arXiv:2511.07577): draw sources without replacement with probability proportional to
  their usefulness score. A floor keeps every source reachable, otherwise a source that
  once scored zero is never queried again and can never recover.
- :func:`thompson_beta`: our default. Each source's reliability is a Beta(alpha, beta)
  posterior from its positive/negative evidence (Beta reputation, Josang & Ismail 2002);
  draw one sample per source and take the N largest (Thompson sampling, Thompson 1933;
  Chapelle & Li 2011). New or rarely queried sources have wide posteriors and get explored;
  sources with much evidence are picked by their mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from drag.registry import SourceRecord
from marketplace.errors import ConfigError

Strategy = Literal["thompson", "usefulness"]


def _check_n(n: int, available: int) -> int:
    if n < 1:
        raise ConfigError(f"n={n}; query at least one source")
    return min(n, available)


def usefulness_proportional(
    usefulness: Sequence[float], n: int, seed: int, floor: float = 1e-3
) -> list[int]:
    """Indices of ``n`` distinct sources drawn with probability proportional to usefulness.

    Scores below ``floor`` (including negative ones) count as ``floor``. Sequential draws
    without replacement, renormalising after each (the usual weighted sampling without
    replacement), so the returned order is the draw order.
    """
    if floor <= 0:
        raise ConfigError(f"floor={floor}; the floor must be positive to keep sources reachable")
    n = _check_n(n, len(usefulness))
    weights = np.maximum(np.asarray(usefulness, dtype=np.float64), floor)
    if not np.all(np.isfinite(weights)):
        raise ConfigError("usefulness scores must be finite numbers")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(weights), size=n, replace=False, p=weights / weights.sum())
    return [int(i) for i in chosen]


def thompson_beta(
    positive: Sequence[float],
    negative: Sequence[float],
    n: int,
    seed: int,
    prior: tuple[float, float] = (1.0, 1.0),
) -> list[int]:
    """Indices of the ``n`` sources with the largest Beta posterior samples, best first.

    ``positive[i]``/``negative[i]`` are source i's reliability evidence; the posterior is
    ``Beta(prior[0] + positive[i], prior[1] + negative[i])``.
    """
    if len(positive) != len(negative):
        raise ConfigError("positive and negative evidence must have one entry per source")
    if prior[0] <= 0 or prior[1] <= 0:
        raise ConfigError(f"prior={prior}; Beta parameters must be positive")
    n = _check_n(n, len(positive))
    a = prior[0] + np.maximum(np.asarray(positive, dtype=np.float64), 0.0)
    b = prior[1] + np.maximum(np.asarray(negative, dtype=np.float64), 0.0)
    rng = np.random.default_rng(seed)
    draws = rng.beta(a, b)
    order = np.argsort(-draws, kind="stable")
    return [int(i) for i in order[:n]]


def choose_sources(
    sources: Sequence[SourceRecord],
    n: int,
    seed: int,
    strategy: Strategy = "thompson",
    prior: tuple[float, float] = (1.0, 1.0),
) -> list[SourceRecord]:
    """Pick ``n`` active sources by ``strategy`` ("thompson" or "usefulness")."""
    active = [s for s in sources if s.active]
    if not active:
        raise ConfigError("no active sources are registered; register a source first")
    if strategy == "thompson":
        idx = thompson_beta(
            [s.reliability_pos for s in active],
            [s.reliability_neg for s in active],
            n,
            seed,
            prior,
        )
    elif strategy == "usefulness":
        idx = usefulness_proportional([s.usefulness for s in active], n, seed)
    else:
        raise ConfigError(f"unknown sampling strategy {strategy!r}; use thompson or usefulness")
    return [active[i] for i in idx]
