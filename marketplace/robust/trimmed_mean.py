"""Coordinate-wise trimmed mean (Yin et al. 2018, "Byzantine-Robust Distributed Learning:
Towards Optimal Statistical Rates", ICML).

In every coordinate the ``floor(beta * n)`` largest and smallest values are dropped and
the rest averaged; it tolerates up to a ``beta`` fraction of Byzantine updates while
averaging more honest values than the median does. Weights are ignored for the same
reason as in :mod:`marketplace.robust.median`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from marketplace.errors import AssumptionViolated
from marketplace.robust.result import FilterResult
from marketplace.robust.validate import check_updates, check_weights

RULE = "trimmed_mean"


def trimmed_mean(
    updates: Tensor, weights: Tensor | None = None, *, beta: float = 0.1
) -> FilterResult:
    """Per-coordinate mean after trimming ``k = floor(beta * n)`` values from each end.

    Assumes ``0 <= beta < 0.5`` and that ``beta`` is at least the Byzantine fraction.
    The mask is all True (trimming is per coordinate, not per update); ``scores`` are the
    fraction of coordinates in which each update was trimmed, so an update that is
    extreme everywhere scores near 1.

    Raises:
        AssumptionViolated: ``beta`` outside ``[0, 0.5)`` or nothing left to average.
    """
    check_updates(updates, RULE)
    n, d = updates.shape
    check_weights(weights, n, RULE)
    if not (math.isfinite(beta) and 0.0 <= beta < 0.5):
        raise AssumptionViolated(
            f"trimmed mean needs 0 <= beta < 0.5 (Yin et al. 2018); got beta={beta}: "
            "choose beta at least the attacker fraction and below one half"
        )
    k = int(math.floor(beta * n))
    mask = torch.ones(n, dtype=torch.bool)
    if k == 0:
        return FilterResult(
            inlier_mask=mask,
            aggregate=updates.mean(dim=0),
            scores=torch.zeros(n, dtype=torch.float64),
        )
    ordered, order = updates.sort(dim=0, stable=True)
    agg = ordered[k : n - k].mean(dim=0)
    trimmed = torch.cat([order[:k], order[n - k :]]).flatten()
    counts = torch.bincount(trimmed, minlength=n).to(torch.float64)
    return FilterResult(inlier_mask=mask, aggregate=agg, scores=counts / d)
