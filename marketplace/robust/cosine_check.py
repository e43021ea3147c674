"""Cross-round direction check: flag updates that point against the previous aggregate.

Consecutive global updates of an honest federation are positively correlated (the loss
landscape changes slowly between rounds), while sign-flipping and inner-product
manipulation attacks (Xie et al. 2020, "Fall of Empires") aim to make the aggregate's
inner product with the true direction negative. An update whose cosine with the previous
round's aggregate falls below ``min_cosine`` is flagged. Near convergence honest updates
decorrelate, so the threshold is slightly negative by default rather than zero.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from marketplace.errors import AssumptionViolated
from marketplace.robust.result import FilterResult
from marketplace.robust.stats import normalized, row_norms, weighted_mean
from marketplace.robust.validate import check_updates, check_weights

RULE = "cosine check"


def cosines_to(updates: Tensor, direction: Tensor) -> Tensor:
    """``float64[n]`` cosine of each row with ``direction`` (0 for zero rows)."""
    ref = direction.to(updates.dtype)
    dots = (updates @ ref).to(torch.float64)
    scale = row_norms(updates) * float(torch.linalg.vector_norm(ref))
    return dots / scale.clamp(min=torch.finfo(torch.float64).tiny)


def cosine_check(
    updates: Tensor,
    weights: Tensor | None = None,
    *,
    previous_aggregate: Tensor | None,
    min_cosine: float = -0.1,
) -> FilterResult:
    """Keep updates whose cosine with ``previous_aggregate`` is at least ``min_cosine``;
    aggregate them by weighted mean.

    With no previous aggregate yet (the first round, or after a round that kept nobody)
    there is nothing to check against: every update is kept and averaged, and that
    aggregate becomes the reference. (Refusing instead kept nobody in round 1, so the
    state never formed and no round ever kept anyone: nobody was paid.)
    ``-1 <= min_cosine <= 1``. ``scores`` are the cosines (1 when unchecked); ``state``
    is this round's aggregate, the reference for the next round.

    Raises:
        AssumptionViolated: a malformed previous aggregate, bad threshold, or nothing kept.
    """
    check_updates(updates, RULE)
    n, d = updates.shape
    w = check_weights(weights, n, RULE)
    prev = None if previous_aggregate is None else torch.as_tensor(previous_aggregate)
    if prev is None or (prev.shape == (d,) and not bool(prev.any())):
        keep = torch.ones(n, dtype=torch.bool)
        first = weighted_mean(updates, w, keep)
        return FilterResult(
            inlier_mask=keep,
            aggregate=first,
            scores=torch.ones(n, dtype=torch.float64),
            reason={},
            weights=normalized(w, keep),
            state=first,
        )
    if prev.shape != (d,) or not bool(torch.isfinite(prev).all()):
        got = f"shape {tuple(prev.shape)}"
        raise AssumptionViolated(
            f"{RULE} needs the previous round's nonzero finite aggregate of shape [{d}]; "
            f"got {got}: skip the check on the first round"
        )
    if not (math.isfinite(min_cosine) and -1.0 <= min_cosine <= 1.0):
        raise AssumptionViolated(f"{RULE} needs -1 <= min_cosine <= 1; got {min_cosine}: use -0.1")
    cos = cosines_to(updates, prev)
    mask = cos >= min_cosine
    reason = {
        i: f"cosine {float(cos[i]):.3f} with the previous aggregate < {min_cosine:g} "
        "(points against the federation's direction)"
        for i in range(n)
        if not mask[i]
    }
    agg = weighted_mean(updates, w, mask)
    return FilterResult(
        inlier_mask=mask,
        aggregate=agg,
        scores=cos,
        reason=reason,
        weights=normalized(w, mask),
        state=agg,
    )
