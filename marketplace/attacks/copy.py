"""Copying: earn a share by resubmitting another trainer's work instead of training.

The "lazy" or plagiarising client of Lin, Du & Liu 2019 ("Free-riders in Federated
Learning: Attacks and Defenses") and of the copying attacks on contribution-based
incentives (issue 13). Two forms:

* ``copy``: a victim's update plus ``N(0, noise_std^2)`` jitter, so that no
  exact-duplicate check fires. Under commit-then-reveal a copier cannot read any update
  of the round before committing its own, so the most recent update it can legitimately
  copy is its victim's *previous-round* one (revealed and published when that round
  closed); this function is given those. In round 1 there is nothing to copy: the
  registry hands it zeros, so the copier sends the jitter alone (a disguised free rider).
* ``copycat``: the victim's exact blob (the same CID). The earliest committer keeps it
  (:func:`marketplace.rounds.pipeline.run_round`'s duplicate check, fed the commit order).

Victims are drawn at random among the honest trainers, anew each round.
"""

from __future__ import annotations

import torch
from torch import Tensor


def pick_victims(honest_mask: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """``count`` victim indices drawn uniformly (with replacement) among ``honest_mask``."""
    pool = honest_mask.nonzero().flatten()
    if pool.numel() == 0:
        raise ValueError("copying needs at least one honest trainer to copy from")
    return pool[torch.randint(pool.numel(), (count,), generator=generator)]


def copy_updates(
    source: Tensor, victims: Tensor, noise_std: float, generator: torch.Generator
) -> Tensor:
    """``[len(victims), d]``: the victims' rows of ``source`` plus ``N(0, noise_std^2)``."""
    base = source[victims].to(torch.float32)
    if noise_std <= 0:
        return base.clone()
    noise = torch.randn(base.shape, generator=generator, dtype=torch.float32)
    return base + noise * noise_std
