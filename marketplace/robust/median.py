"""Coordinate-wise median (Yin et al. 2018, "Byzantine-Robust Distributed Learning:
Towards Optimal Statistical Rates", ICML).

Each coordinate of the aggregate is the median of that coordinate over the ``n``
updates, so fewer than half Byzantine updates cannot drag any coordinate outside the
range of the honest values. Weights are deliberately ignored: they are self-reported,
and a weighted median would let one attacker claiming a huge sample count pick the
result.
"""

from __future__ import annotations

import torch
from torch import Tensor

from marketplace.errors import AssumptionViolated
from marketplace.robust.result import FilterResult
from marketplace.robust.stats import coordinate_median, row_norms
from marketplace.robust.validate import check_updates, check_weights

RULE = "median"


def median(updates: Tensor, weights: Tensor | None = None, *, f: int = 0) -> FilterResult:
    """Coordinate-wise median of ``n`` updates, tolerating ``f`` Byzantine ones.

    Assumes ``n >= 2f + 1`` (an honest majority in every coordinate). Every update takes
    part (the median is not a selection), so the mask is all True; ``scores`` are each
    update's Euclidean distance to the median, for inspection.

    Raises:
        AssumptionViolated: ``f < 0`` or ``n < 2f + 1``.
    """
    check_updates(updates, RULE)
    n = updates.shape[0]
    check_weights(weights, n, RULE)
    if f < 0 or n < 2 * f + 1:
        raise AssumptionViolated(
            f"coordinate-wise median needs n >= 2f + 1 (Yin et al. 2018); got n={n}, f={f}: "
            "lower f or add trainers"
        )
    agg = coordinate_median(updates)
    scores = row_norms(updates - agg)
    mask = torch.ones(n, dtype=torch.bool)
    return FilterResult(inlier_mask=mask, aggregate=agg, scores=scores)
