"""The one result type every contribution estimator returns.

Keeping a single shape (values, evaluation count, free-form details) lets the aggregator
swap estimators by configuration and lets an auditor compare their costs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor


@dataclass(frozen=True)
class ContributionResult:
    """Per-player contribution values of one round.

    Attributes:
        values: float64 tensor ``[n]``, one value per player (inlier) in utility order.
            Values may be negative; turn them into payable scores with
            :func:`marketplace.contribution.payable.to_payable`.
        evaluations: utility evaluations this estimator caused (cache misses only).
        details: estimator-specific facts (permutations used, stop reason, ...), JSON-friendly.
    """

    values: Tensor
    evaluations: int
    details: dict[str, Any] = field(default_factory=dict)
