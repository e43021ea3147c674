"""The one return type of every robust aggregation rule.

A rule answers two questions an aggregator and an auditor both need: *who* was kept
(``inlier_mask``, with a human reason for every exclusion) and *what* the round's update
is (``aggregate``). ``scores`` is the per-update statistic the rule decided on, so a
replay (``ledgerlearn audit``) and a zero-knowledge proof of the filter can check the
decision from the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor


@dataclass(frozen=True)
class FilterResult:
    """Outcome of one robust aggregation rule over ``n`` updates of dimension ``d``.

    Attributes:
        inlier_mask: ``bool[n]``; True for updates that took part in the aggregate.
        aggregate: ``[d]`` aggregated update, in the dtype of the input updates.
        scores: ``float[n]``; the statistic the rule used (distance, Krum score, ...).
        reason: index -> one-line reason, for every excluded update.
        weights: ``float[n]`` effective weights of the aggregate (sum 1, zero for
            excluded updates) where the aggregate is a weighted mean; None for
            coordinate-wise rules (median, trimmed mean) where no such weights exist.
        state: state to pass to the next round (FoolsGold history, previous aggregate);
            None for stateless rules.
    """

    inlier_mask: Tensor
    aggregate: Tensor
    scores: Tensor
    reason: dict[int, str] = field(default_factory=dict)
    weights: Tensor | None = None
    state: Any = None

    @property
    def n_inliers(self) -> int:
        """Number of updates kept."""
        return int(self.inlier_mask.sum().item())

    @property
    def excluded(self) -> list[int]:
        """Indices of excluded updates, ascending."""
        return [int(i) for i in (~self.inlier_mask).nonzero().flatten().tolist()]
