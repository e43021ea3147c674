"""3-sigma-Krum outlier removal, as used by the 2023 proof-of-contribution marketplace
built on FedML (its ``ThreeSigmaKrumDefense``), after Krum (Blanchard et al. 2017).

1. Krum-style score of every update: sum of squared distances to its ``h`` nearest
   neighbours, ``h = ceil(n/2) - 1``.
2. Reference point: the mean of the ``h`` updates with the best (lowest) scores, i.e. the
   densest half, which an attacking minority cannot occupy.
3. Each update's Euclidean distance to that reference; updates farther than
   ``mean + k * std`` of those distances are dropped (``k = 1`` in the marketplace; the
   classic "3 sigma" is ``k = 3``). The standard deviation is the sample one (n - 1).

With ``k = 1`` the rule also drops honest updates in the upper tail of the spread: it
trades some honest signal for a simple, provable rule.
"""

from __future__ import annotations

import math

from torch import Tensor

from marketplace.errors import AssumptionViolated
from marketplace.robust.krum import krum_scores
from marketplace.robust.result import FilterResult
from marketplace.robust.stats import normalized, row_norms, weighted_mean
from marketplace.robust.validate import check_updates, check_weights

RULE = "3-sigma-Krum"


def sigma_krum(updates: Tensor, weights: Tensor | None = None, *, k: float = 1.0) -> FilterResult:
    """Drop updates beyond ``mean + k * std`` of their distance to the Krum reference, then
    take the weighted mean of the rest.

    Assumes ``n >= 3`` (so the reference has ``ceil(n/2) - 1 >= 1`` updates), an honest
    majority, and ``k >= 0``. ``scores`` are distances to the reference.

    Raises:
        AssumptionViolated: ``n < 3`` or ``k`` negative or not finite.
    """
    check_updates(updates, RULE)
    n = updates.shape[0]
    w = check_weights(weights, n, RULE)
    if n < 3:
        raise AssumptionViolated(
            f"{RULE} needs n >= 3 so that ceil(n/2) - 1 >= 1 updates form the reference "
            f"(proof-of-contribution marketplace, 2023); got n={n}: add trainers"
        )
    if not (math.isfinite(k) and k >= 0):
        raise AssumptionViolated(f"{RULE} needs a finite k >= 0; got k={k}: use k=1 or k=3")
    h = math.ceil(n / 2) - 1
    krum = krum_scores(updates, h)
    best = krum.sort(stable=True).indices[:h]
    reference = updates[best].mean(dim=0)
    dist = row_norms(updates - reference)
    bound = float(dist.mean()) + k * float(dist.std())
    mask = dist <= bound
    reason = {
        i: f"distance {float(dist[i]):.4g} to the Krum reference > mean + {k:g} sigma = {bound:.4g}"
        for i in range(n)
        if not mask[i]
    }
    return FilterResult(
        inlier_mask=mask,
        aggregate=weighted_mean(updates, w, mask),
        scores=dist,
        reason=reason,
        weights=normalized(w, mask),
    )
