"""Krum and Multi-Krum (Blanchard et al. 2017, "Machine Learning with Adversaries:
Byzantine Tolerant Gradient Descent", NeurIPS).

Each update is scored by the sum of squared distances to its ``n - f - 2`` nearest
neighbours; honest updates sit in a dense cluster and score low, while a Byzantine one
must stay close to many honest ones to score low, which bounds its harm. Krum keeps the
single best update; Multi-Krum averages the ``m`` best.
"""

from __future__ import annotations

import torch
from torch import Tensor

from marketplace.errors import AssumptionViolated
from marketplace.robust.result import FilterResult
from marketplace.robust.stats import normalized, pairwise_sq_distances, weighted_mean
from marketplace.robust.validate import check_updates, check_weights


def krum_scores(updates: Tensor, neighbours: int) -> Tensor:
    """``float64[n]``: each row's sum of squared distances to its ``neighbours`` nearest
    other rows (one :func:`torch.cdist`, one sort; no loop over pairs)."""
    sq = pairwise_sq_distances(updates)
    n = sq.shape[0]
    sq = sq + torch.diag(torch.full((n,), float("inf"), dtype=sq.dtype))
    nearest = sq.sort(dim=1).values[:, :neighbours]
    return nearest.sum(dim=1)


def _check_f(n: int, f: int, rule: str) -> None:
    if f < 0 or n < 2 * f + 3:
        raise AssumptionViolated(
            f"{rule} needs n >= 2f + 3 (Blanchard et al. 2017); got n={n}, f={f}: "
            "lower f or add trainers"
        )


def multi_krum(
    updates: Tensor, weights: Tensor | None = None, *, f: int, m: int | None = None
) -> FilterResult:
    """Weighted mean of the ``m`` updates with the lowest Krum scores (default ``n - f``).

    Assumes at most ``f`` Byzantine updates and ``n >= 2f + 3``. Ties are broken by
    index (a stable sort), so the result is deterministic. ``scores`` are Krum scores.

    Raises:
        AssumptionViolated: ``n < 2f + 3`` or ``m`` outside ``[1, n]``.
    """
    rule = "Multi-Krum" if m != 1 else "Krum"
    check_updates(updates, rule)
    n = updates.shape[0]
    w = check_weights(weights, n, rule)
    _check_f(n, f, rule)
    m = n - f if m is None else m
    if not 1 <= m <= n:
        raise AssumptionViolated(
            f"{rule} needs 1 <= m <= n (Blanchard et al. 2017); got m={m}, n={n}: "
            "choose m in range (default n - f)"
        )
    scores = krum_scores(updates, n - f - 2)
    order = scores.sort(stable=True).indices
    chosen = order[:m]
    mask = torch.zeros(n, dtype=torch.bool)
    mask[chosen] = True
    if m == 1:
        w = torch.ones_like(w)
    rank = {int(i): r for r, i in enumerate(order.tolist())}
    reason = {
        i: f"Krum score {float(scores[i]):.4g} ranks {rank[i] + 1} of {n}; only the best {m} kept"
        for i in range(n)
        if not mask[i]
    }
    return FilterResult(
        inlier_mask=mask,
        aggregate=weighted_mean(updates, w, mask),
        scores=scores,
        reason=reason,
        weights=normalized(w, mask),
    )


def krum(updates: Tensor, weights: Tensor | None = None, *, f: int) -> FilterResult:
    """The single update with the lowest Krum score (Multi-Krum with ``m = 1``).

    Assumes at most ``f`` Byzantine updates and ``n >= 2f + 3``.

    Raises:
        AssumptionViolated: ``n < 2f + 3``.
    """
    return multi_krum(updates, weights, f=f, m=1)
