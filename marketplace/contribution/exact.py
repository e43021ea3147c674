"""Exact Shapley values by enumerating every coalition (Shapley 1953).

phi_i = sum over S not containing i of |S|! (n - |S| - 1)! / n! * (U(S ∪ {i}) - U(S)).
It needs U on all 2^n coalitions, so it is the reference for small rounds and for
checking the estimators, and is refused above :data:`MAX_EXACT_PLAYERS`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from marketplace.contribution.result import ContributionResult
from marketplace.contribution.utility import Utility
from marketplace.errors import AssumptionViolated

#: 2^12 = 4096 model evaluations is the most we accept for one round.
MAX_EXACT_PLAYERS = 12


def exact_shapley(utility: Utility) -> ContributionResult:
    """Exact Shapley values of all ``utility.n`` players (2^n utility evaluations)."""
    n = utility.n
    if n > MAX_EXACT_PLAYERS:
        raise AssumptionViolated(
            f"exact Shapley needs n <= {MAX_EXACT_PLAYERS} players (2^n evaluations), got "
            f"n={n}; use the GTG-Shapley estimator (marketplace.contribution.estimate)"
        )
    start = utility.evaluations
    size = 1 << n
    idx = np.arange(size, dtype=np.int64)
    v = np.asarray(utility.values(idx.tolist()), dtype=np.float64)
    pop = np.zeros(size, dtype=np.int64)
    for i in range(n):
        pop += (idx >> i) & 1
    weight = np.array(
        [math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)]
    )
    phi = np.empty(n, dtype=np.float64)
    for i in range(n):
        without = idx[((idx >> i) & 1) == 0]
        phi[i] = float(np.sum(weight[pop[without]] * (v[without | (1 << i)] - v[without])))
    return ContributionResult(
        values=torch.from_numpy(phi),
        evaluations=utility.evaluations - start,
        details={"method": "exact", "v_empty": float(v[0]), "v_all": float(v[-1])},
    )
