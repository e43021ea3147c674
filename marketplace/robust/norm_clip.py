"""Norm clipping: scale every update down to at most a bound (the median norm by default).

Clipping bounds what any single update can move the aggregate, whatever its direction,
without excluding anyone (Sun et al. 2019, "Can You Really Backdoor Federated
Learning?"; the median-norm bound follows their adaptive choice). Honest updates of
unusual size keep their direction, so non-IID clients lose little.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from marketplace.errors import AssumptionViolated
from marketplace.robust.result import FilterResult
from marketplace.robust.stats import median_of, normalized, row_norms, weighted_mean
from marketplace.robust.validate import check_updates, check_weights

RULE = "norm clipping"


def clip_to_norm(updates: Tensor, bound: float) -> Tensor:
    """Each row scaled by ``min(1, bound / ||row||)``; zero rows stay zero."""
    norms = row_norms(updates)
    factor = torch.clamp(bound / norms.clamp(min=torch.finfo(torch.float64).tiny), max=1.0)
    return updates * factor.to(updates.dtype).unsqueeze(1)


def norm_clip(
    updates: Tensor, weights: Tensor | None = None, *, bound: float | None = None
) -> FilterResult:
    """Weighted mean of the updates after clipping each to ``bound`` (default: median norm).

    Assumes the bound is positive: with ``bound=None`` that means fewer than half of the
    updates are zero. Keeps every update; ``scores`` are the original norms.

    Raises:
        AssumptionViolated: the bound is not a positive finite number.
    """
    check_updates(updates, RULE)
    n = updates.shape[0]
    w = check_weights(weights, n, RULE)
    norms = row_norms(updates)
    limit = median_of(norms) if bound is None else float(bound)
    if not (math.isfinite(limit) and limit > 0):
        raise AssumptionViolated(
            f"{RULE} needs a positive finite bound; got {limit:g}"
            + (" (median norm: half the updates are zero)" if bound is None else "")
            + ": pass bound= explicitly"
        )
    mask = torch.ones(n, dtype=torch.bool)
    clipped = clip_to_norm(updates, limit)
    return FilterResult(
        inlier_mask=mask,
        aggregate=weighted_mean(clipped, w, mask),
        scores=norms,
        weights=normalized(w, mask),
    )
