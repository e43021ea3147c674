"""Leave-one-out contributions: phi_i = U(all) - U(all without i).

The cheapest rule (n + 1 evaluations) and the one the proof-of-contribution marketplace
(2023) offers next to Shapley. It under-pays redundant players: two trainers with the
same data each get ~0 because the other covers for them, which Shapley does not do.
"""

from __future__ import annotations

import torch

from marketplace.contribution.result import ContributionResult
from marketplace.contribution.utility import Utility, full_mask


def leave_one_out(utility: Utility) -> ContributionResult:
    """Leave-one-out value of every player of ``utility`` (n + 1 evaluations)."""
    n = utility.n
    start = utility.evaluations
    full = full_mask(n)
    vals = utility.values([full] + [full & ~(1 << i) for i in range(n)])
    v_all = vals[0]
    phi = torch.tensor([v_all - v for v in vals[1:]], dtype=torch.float64)
    return ContributionResult(
        values=phi,
        evaluations=utility.evaluations - start,
        details={"method": "loo", "v_all": v_all},
    )
