"""Server-side hyper-parameters, updated from each round's own statistics.

Two knobs, both public in the round report so an auditor replays them exactly:

* **Server step size** ``server_lr``: the new global model is
  ``g + server_lr * aggregate`` (the server learning rate of Reddi et al. 2021,
  "Adaptive Federated Optimization"; ``1.0`` is plain FedAvg). It follows the "bold
  driver" rule (Battiti 1989, "Accelerated backpropagation learning: two optimization
  methods"): when the step lowered the validation loss the next step grows by ``grow``
  (up to ``max_lr``), when it raised the loss it shrinks by ``shrink`` (down to
  ``min_lr``). Without validation data the step size stays as it is.
* **Clipping bound** ``clip_bound``: the median L2 norm of this round's inlier updates
  (Sun et al. 2019, "Can You Really Backdoor Federated Learning?", clip to a norm a
  typical honest update has). Next round every accepted update is clipped to
  ``clip_factor * clip_bound`` *before* the robust rule sees it: a loose guard that
  bounds boosted (scaled) updates under rules that have no norm test of their own
  (FedAvg, FoolsGold). The default ``clip_factor`` (10) is above the default filter's
  boost ratio (4), so that filter still names and excludes boosted updates itself.
  The median of inliers is what honest trainers send when fewer than half are
  attackers; it drifts with the model as updates shrink near convergence.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, model_validator


class HyperConfig(BaseModel):
    """Constants of the update rules (part of the project's round configuration)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    initial_lr: float = Field(default=1.0, gt=0)
    min_lr: float = Field(default=0.1, gt=0)
    max_lr: float = Field(default=1.0, gt=0)
    grow: float = Field(default=1.25, ge=1)
    shrink: float = Field(default=0.5, gt=0, le=1)
    clip_factor: float = Field(default=10.0, gt=1)

    @model_validator(mode="after")
    def _ordered(self) -> HyperConfig:
        if not self.min_lr <= self.initial_lr <= self.max_lr:
            raise ValueError("need min_lr <= initial_lr <= max_lr")
        return self


class ServerHyper(BaseModel):
    """Hyper-parameters in force for one round."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    server_lr: float = Field(gt=0)
    clip_bound: float | None = Field(default=None, gt=0)

    @classmethod
    def initial(cls, config: HyperConfig) -> ServerHyper:
        """Round 1: the initial step size and no clipping bound yet."""
        return cls(server_lr=config.initial_lr, clip_bound=None)

    def update_clip_limit(self, config: HyperConfig) -> float | None:
        """Norm every accepted update is clipped to this round (None: no clipping)."""
        return None if self.clip_bound is None else config.clip_factor * self.clip_bound


def next_hyper(
    current: ServerHyper,
    config: HyperConfig,
    *,
    inlier_median_norm: float | None,
    loss_before: float | None,
    loss_after: float | None,
) -> ServerHyper:
    """Hyper-parameters for the next round from this round's statistics.

    ``inlier_median_norm`` is None (or not positive) when no update was kept: the bound
    then stays as it was. Loss values are the validation loss of the global model before
    and after this round's step (None without validation data).
    """
    lr = current.server_lr
    if (
        loss_before is not None
        and loss_after is not None
        and math.isfinite(loss_before)
        and math.isfinite(loss_after)
    ):
        lr = lr * config.grow if loss_after <= loss_before else lr * config.shrink
        lr = min(config.max_lr, max(config.min_lr, lr))
    bound = current.clip_bound
    if inlier_median_norm is not None and math.isfinite(inlier_median_norm):
        if inlier_median_norm > 0:
            bound = float(inlier_median_norm)
    return ServerHyper(server_lr=float(lr), clip_bound=bound)
