"""Gaussian (random) Byzantine update: the honest update is replaced by pure noise.

The "Gaussian attack" of Blanchard et al. 2017 ("Machine Learning with Adversaries:
Byzantine Tolerant Gradient Descent", NeurIPS) and Xie et al. 2018 ("Generalized
Byzantine-tolerant SGD"): each attacker sends ``N(0, sigma^2 I)``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def gaussian_noise(update: Tensor, sigma: float, generator: torch.Generator) -> Tensor:
    """A tensor shaped like ``update`` with i.i.d. ``N(0, sigma^2)`` entries (update unused)."""
    noise = torch.randn(update.shape, generator=generator, dtype=torch.float32)
    return (noise * sigma).to(update.dtype)
