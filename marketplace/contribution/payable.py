"""From estimated contributions to payable, on-chain scores.

The rule for negative contributions (chosen here, and the one the contract relies on):
**clip at zero per round**, before accumulating.

* Payouts cannot be negative: the contract pays a share of the reward in proportion to
  cumulative uint scores, so a negative score has nowhere to go.
* Carrying negatives across rounds would let one bad round erase pay already earned
  (an honest trainer with an unlucky, noisy round would lose past work), and it would
  make a trainer's standing depend on estimator noise around 0, which is largest exactly
  for players with little effect.
* Harmful updates are the robust filter's job (3-sigma-Krum and friends drop them before
  contribution); a slightly negative inlier earns nothing that round, which already is
  the penalty. Stakes, not scores, are what can be slashed.

The alternative (signed cumulative scores clipped only at payout) rewards consistency
over luck but lets a trainer bank credit early and coast; we do not use it.

Outliers get zero: the caller estimates contributions over inliers only and spreads them
back over all trainers with :func:`scatter_to_all`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from marketplace.errors import ConfigError

#: Default fixed-point scale: 6 decimals, enough for accuracy differences of 1e-6.
DEFAULT_SCALE = 1_000_000
_UINT256_MAX = (1 << 256) - 1


def to_payable(values: Tensor) -> Tensor:
    """Per-round payable scores: the values clipped at 0 (see the module docstring)."""
    v = torch.as_tensor(values, dtype=torch.float64)
    if not bool(torch.isfinite(v).all()):
        raise ConfigError("contribution values must be finite; re-run the estimator")
    return v.clamp_min(0.0)


def to_fixed_point(values: Tensor | Sequence[float], scale: float = DEFAULT_SCALE) -> list[int]:
    """Non-negative values as uint fixed-point integers ``round(v * scale)`` (half up).

    Refuses negative values (pass them through :func:`to_payable` first) so a negative
    can never wrap around to a huge uint on chain.
    """
    if not (math.isfinite(scale) and scale > 0):
        raise ConfigError(f"fixed-point scale must be positive and finite, got {scale}")
    out: list[int] = []
    for v in torch.as_tensor(values, dtype=torch.float64).reshape(-1).tolist():
        if not math.isfinite(v):
            raise ConfigError("contribution values must be finite; re-run the estimator")
        if v < 0:
            raise ConfigError(f"score {v} is negative; pass contributions through to_payable")
        fixed = math.floor(v * scale + 0.5)
        if fixed > _UINT256_MAX:
            raise ConfigError(f"score {v} overflows uint256 at scale {scale}; lower the scale")
        out.append(fixed)
    return out


def scatter_to_all(values: Tensor, inlier_mask: Tensor | Sequence[bool]) -> Tensor:
    """Inlier values placed into a vector over all trainers; outliers get 0."""
    mask = torch.as_tensor(inlier_mask, dtype=torch.bool).reshape(-1)
    v = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    inliers = int(mask.sum())
    if inliers != v.shape[0]:
        raise ConfigError(
            f"inlier mask marks {inliers} trainers but got {v.shape[0]} values; "
            "estimate contributions over exactly the inliers"
        )
    out = torch.zeros(mask.shape[0], dtype=torch.float64)
    out[mask] = v
    return out
