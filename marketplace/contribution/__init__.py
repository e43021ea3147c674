"""Proof-of-contribution: how much each inlier's update helped the global model.

Per round the aggregator builds a :class:`SubsetUtility` (U(S) = validation metric of the
previous global model plus the FedAvg of S's updates), runs an estimator, clips to
payable scores, encodes them in fixed point and accumulates them per trainer
(``marketplace/rounds/scoring.py`` does this for the round pipeline):

    utility = SubsetUtility(g, updates, weights, evaluate_batch, metric="accuracy")
    result = estimate(utility, GTGConfig(), seed=round_seed)
    scores = to_fixed_point(scatter_to_all(to_payable(result.values), inlier_mask))

The default estimator is GTG-Shapley (Liu et al. 2022) with antithetic pairs, a
confidence-bound stop and a surrogate control variate (:mod:`.surrogate`); exact
Shapley, TMC-Shapley and leave-one-out are here for small
rounds, comparison and audit.
"""

from __future__ import annotations

from marketplace.contribution.accumulate import accumulate, round_scores
from marketplace.contribution.exact import MAX_EXACT_PLAYERS, exact_shapley
from marketplace.contribution.gtg import GTGConfig, gtg_shapley
from marketplace.contribution.loo import leave_one_out
from marketplace.contribution.payable import scatter_to_all, to_fixed_point, to_payable
from marketplace.contribution.result import ContributionResult
from marketplace.contribution.tmc import TMCConfig, tmc_shapley
from marketplace.contribution.utility import (
    CallableUtility,
    SubsetUtility,
    Utility,
    full_mask,
    mask_of,
    members,
)


def estimate(
    utility: Utility, config: GTGConfig | None = None, *, seed: int = 0
) -> ContributionResult:
    """Default contribution estimator of a round: GTG-Shapley with ``config``."""
    return gtg_shapley(utility, config, seed=seed)


__all__ = [
    "MAX_EXACT_PLAYERS",
    "CallableUtility",
    "ContributionResult",
    "GTGConfig",
    "SubsetUtility",
    "TMCConfig",
    "Utility",
    "accumulate",
    "estimate",
    "exact_shapley",
    "full_mask",
    "gtg_shapley",
    "leave_one_out",
    "mask_of",
    "members",
    "round_scores",
    "scatter_to_all",
    "tmc_shapley",
    "to_fixed_point",
    "to_payable",
]
