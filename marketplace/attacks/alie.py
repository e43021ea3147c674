"""A Little Is Enough (ALIE): a small, coordinated shift hidden inside the benign spread.

Baruch, Baruch & Goldberg 2019 ("A Little Is Enough: Circumventing Defenses For
Distributed Learning", NeurIPS). With ``n`` clients of which ``m`` are attackers, the
attackers need ``s = floor(n/2 + 1) - m`` benign clients to look farther from the mean
than they do; the normal quantile ``z = Phi^-1((n - s) / n)`` gives that distance in
standard deviations. Every attacker sends ``mu - z * sigma`` per coordinate, where ``mu``
and ``sigma`` are the mean and standard deviation of the benign updates the attackers can
see. The paper assumes a minority of attackers (``s >= 1``).
"""

from __future__ import annotations

import math
from statistics import NormalDist

from torch import Tensor

from marketplace.errors import AssumptionViolated


def alie_z(num_clients: int, num_attackers: int) -> float:
    """The paper's ``z_max`` for ``n`` clients and ``m`` attackers."""
    s = math.floor(num_clients / 2 + 1) - num_attackers
    if num_attackers < 1 or s < 1:
        raise AssumptionViolated(
            f"ALIE needs 1 <= attackers and a benign majority (floor(n/2+1) - m >= 1); got "
            f"n={num_clients}, m={num_attackers}; lower the attacker fraction"
        )
    return NormalDist().inv_cdf((num_clients - s) / num_clients)


def alie(benign: Tensor, z: float) -> Tensor:
    """``mean - z * std`` over the rows of ``benign`` (``[k, d]`` -> ``[d]``).

    ``std`` is the unbiased sample deviation; with one visible update it is zero.
    """
    mean = benign.mean(dim=0)
    if benign.shape[0] < 2:
        return mean.clone()
    return mean - z * benign.std(dim=0)
