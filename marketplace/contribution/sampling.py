"""Permutation sampling shared by the Monte Carlo Shapley estimators (TMC, GTG).

The Shapley value of player i is its expected marginal contribution U(P ∪ {i}) - U(P)
over the prefix P that precedes i in a uniformly random permutation (Shapley 1953).
:func:`permutation_marginals` walks a block of permutations *in lock step*: step j adds
the j-th player of every still-active permutation, and all those coalitions go to the
utility in one :meth:`~marketplace.contribution.utility.Utility.values` call. A
permutation's own truncation decision depends only on its own prefix values, so the
result is identical to walking the permutations one by one; batching only changes how
many evaluator calls it takes (n per block instead of up to n per permutation).
"""

from __future__ import annotations

import math

import numpy as np

from marketplace.contribution.utility import Utility


def permutation_marginals(
    utility: Utility,
    perms: np.ndarray,
    v_empty: float,
    v_all: float,
    threshold: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Marginal contributions along each permutation, with within-permutation truncation.

    Before adding the player at position j, if ``|v_all - U(prefix)| <= threshold`` the
    remaining players of that permutation get marginal 0 and nothing more is evaluated:
    once a prefix performs like the full coalition, later players can add almost nothing
    (Ghorbani & Zou 2019, "Data Shapley", truncation; GTG-Shapley's within-round
    truncation, Liu et al. 2022). ``threshold=None`` disables truncation.

    Args:
        utility: memoised utility over ``n`` players.
        perms: ``[P, n]`` integer array, each row a permutation of ``0..n-1``.
        v_empty: U(empty set).
        v_all: U(all players).
        threshold: truncation tolerance in utility units, or None.

    Returns:
        ``(marginals[P, n], truncated_at[P])``: ``marginals[p, i]`` is player i's marginal in
        permutation p; ``truncated_at[p]`` is the first position skipped (n when none).
    """
    count, n = perms.shape
    marginals = np.zeros((count, n), dtype=np.float64)
    truncated_at = np.full(count, n, dtype=np.int64)
    prefix = [0] * count
    prev = [v_empty] * count
    active = list(range(count))
    for j in range(n):
        stepping: list[int] = []
        for p in active:
            if threshold is not None and abs(v_all - prev[p]) <= threshold:
                truncated_at[p] = j
            else:
                stepping.append(p)
        if not stepping:
            break
        masks = [prefix[p] | (1 << int(perms[p, j])) for p in stepping]
        vals = utility.values(masks)
        for p, mask, v in zip(stepping, masks, vals, strict=True):
            marginals[p, perms[p, j]] = v - prev[p]
            prefix[p] = mask
            prev[p] = v
        active = stepping
    return marginals, truncated_at


def running_means(samples: np.ndarray) -> np.ndarray:
    """Row k is the mean of ``samples[: k + 1]`` (the estimate after k + 1 samples)."""
    counts = np.arange(1, samples.shape[0] + 1, dtype=np.float64)[:, None]
    return np.cumsum(samples, axis=0) / counts


def window_disagreement(estimates: np.ndarray, window: int) -> float:
    """How far the last ``window`` running estimates are from the latest one.

    ``max_k ||E_k - E_last||_1 / ||E_last||_1`` over the last ``window`` rows. GTG-Shapley
    stops when this is below 5% for the last 10 estimates; FedML's implementation compares
    each player relative to itself, which never settles for a player whose value is ~0 (a
    free-rider), so we normalise by the whole vector instead. Returns ``inf`` while fewer
    than ``window`` estimates exist.
    """
    if estimates.shape[0] < window:
        return math.inf
    last = estimates[-1]
    tail = estimates[-window:]
    diff = float(np.abs(tail - last).sum(axis=1).max())
    norm = float(np.abs(last).sum())
    if norm == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return diff / norm


def max_half_width(units: np.ndarray, z: float) -> float:
    """Largest per-player normal confidence half-width ``z * sd / sqrt(K)`` of the mean.

    ``units`` are ``[K, n]`` independent samples (single permutations, or antithetic pair
    averages, which are independent of each other even though a pair's halves are not).
    """
    k = units.shape[0]
    if k < 2:
        return math.inf
    sd = units.std(axis=0, ddof=1)
    return float(z * sd.max() / math.sqrt(k))
