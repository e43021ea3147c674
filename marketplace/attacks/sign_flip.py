"""Sign flipping: submit the honest update reversed and scaled.

Studied as a Byzantine baseline by Li et al. 2019 ("RSA: Byzantine-Robust Stochastic
Aggregation Methods for Distributed Learning from Heterogeneous Datasets", AAAI) and
Karimireddy et al. 2021 ("Learning from History for Byzantine Robust Optimization").
"""

from __future__ import annotations

from torch import Tensor


def sign_flip(update: Tensor, scale: float = 1.0) -> Tensor:
    """``-scale * update`` (``[d]`` or ``[k, d]``); a new tensor, the input is untouched."""
    return update * -scale
