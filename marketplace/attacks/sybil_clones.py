"""Sybil clones: many cheap identities submit (nearly) the same poisoned update.

The threat FoolsGold was designed against (Fung, Yoon & Beschastnikh 2020, "The
Limitations of Federated Learning in Sybil Settings", RAID; arXiv 2018 "Mitigating Sybils
in Federated Learning Poisoning"). Identical updates out-vote honest ones under averaging
and mean-centred filters; tiny noise defeats exact-duplicate checks but not similarity
dampening. In the marketplace each identity also costs a stake.
"""

from __future__ import annotations

import torch
from torch import Tensor


def sybil_clones(
    poisoned: Tensor, k: int, noise_std: float = 0.0, generator: torch.Generator | None = None
) -> Tensor:
    """``[k, d]``: ``poisoned`` repeated ``k`` times, plus ``N(0, noise_std^2)`` if asked."""
    clones = poisoned.reshape(1, -1).repeat(k, 1)
    if noise_std > 0:
        noise = torch.randn(clones.shape, generator=generator, dtype=torch.float32)
        clones = clones + (noise * noise_std).to(clones.dtype)
    return clones
