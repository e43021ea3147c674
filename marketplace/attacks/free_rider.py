"""Free riding: claim a reward without training, by sending nothing or disguised noise.

Lin, Du & Liu 2019 ("Free-riders in Federated Learning: Attacks and Defenses") and Fraboni,
Vidal & Lorenzi 2021 ("Free-rider Attacks on Model Aggregation in Federated Learning",
AISTATS). A zero update is the plain free rider; small Gaussian noise is the disguised
one. Contribution scoring, not robust filtering, is the defence: it should pay ~0.
"""

from __future__ import annotations

import torch
from torch import Tensor


def free_rider(
    update: Tensor, noise_std: float = 0.0, generator: torch.Generator | None = None
) -> Tensor:
    """Zeros shaped like ``update``, or ``N(0, noise_std^2)`` noise when ``noise_std > 0``."""
    if noise_std <= 0:
        return torch.zeros_like(update)
    noise = torch.randn(update.shape, generator=generator, dtype=torch.float32)
    return (noise * noise_std).to(update.dtype)
