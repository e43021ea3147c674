"""Inner Product Manipulation (IPM): send a small negative multiple of the benign mean.

Xie, Koyejo & Gupta 2020 ("Fall of Empires: Breaking Byzantine-tolerant SGD by Inner
Product Manipulation", UAI 2019 / PMLR 115). If the aggregate's inner product with the
true gradient turns negative, descent stops; ``-eps * mean`` with small ``eps`` (0.1 to
0.5) stays close enough to the benign cluster to pass distance-based filters.
"""

from __future__ import annotations

from torch import Tensor


def ipm(benign: Tensor, eps: float = 0.5) -> Tensor:
    """``-eps * mean(benign)`` over the rows of ``benign`` (``[k, d]`` -> ``[d]``)."""
    return benign.mean(dim=0) * -eps
