"""FedAvg: the sample-weighted mean of all updates (McMahan et al. 2017, "Communication-
Efficient Learning of Deep Networks from Decentralized Data", Algorithm 1).

The baseline every robust rule is measured against: optimal with honest clients, broken
by a single Byzantine one (its breakdown point is 0).
"""

from __future__ import annotations

import torch
from torch import Tensor

from marketplace.robust.result import FilterResult
from marketplace.robust.stats import normalized, weighted_mean
from marketplace.robust.validate import check_updates, check_weights

RULE = "fedavg"


def fedavg(updates: Tensor, weights: Tensor | None = None) -> FilterResult:
    """Weighted mean of all ``n`` updates; ``weights`` are sample counts (None = equal).

    Assumes every update is honest and the weights sum to a positive number. Keeps every
    update; ``scores`` are the normalised weights.
    """
    check_updates(updates, RULE)
    n = updates.shape[0]
    w = check_weights(weights, n, RULE)
    mask = torch.ones(n, dtype=torch.bool)
    agg = weighted_mean(updates, w, mask)
    share = normalized(w, mask)
    return FilterResult(inlier_mask=mask, aggregate=agg, scores=share, weights=share)
