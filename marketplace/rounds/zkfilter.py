"""The provable filter: in a project with a round verifier, the sketch rule *is* the filter.

A Groth16 proof can only be about the committed sketches, so a verifiable round keeps
exactly the trainers the circuit's rule keeps (:func:`zk.filter_rule.apply_rule`: the
coordinate-wise lower median of the active sketches as reference point, L1 distances,
inlier iff ``den * dist <= num * median distance``; Yin et al., ICML 2018). Running the
project's full-update robust rule as well and committing its mask would commit a mask the
proof does not cover, and intersecting the two would make the on-chain mask differ from the
proved one; so in zk mode the robust rule on full updates is not used. The aggregate is the
mean of the (norm-clipped) inliers weighted by their claimed sample counts, each capped at
``max_weight_ratio`` x the inliers' median count, as in :mod:`marketplace.robust.default`.

Assumption (as the rule states it): the median is a safe reference while fewer than half of
the active trainers are Byzantine. Pure: tensors and integers in, a
:class:`~marketplace.robust.result.FilterResult` out, so the aggregator and an auditor's
replay (which recomputes the sketches from the updates) get the same mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from marketplace.errors import AssumptionViolated, ConfigError
from marketplace.robust.result import FilterResult
from marketplace.robust.stats import median_of, normalized, weighted_mean
from zk.filter_rule import FilterRule, apply_rule
from zk.shape import MAX_SLOTS, CircuitShape
from zk.sketch import SketchSpec

RULE = "zk_sketch_median"


class ZkFilterConfig(BaseModel):
    """The sketch and the rule of a verifiable project (read from its verifier on-chain)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dim: int = Field(ge=1, le=128)
    value_bits: int = Field(default=32, ge=8, le=64)
    frac_bits: int = Field(default=16, ge=0)
    seed: int = Field(ge=0)
    rule_num: int = Field(default=2, ge=0, lt=1 << 16)
    rule_den: int = Field(default=1, ge=1, lt=1 << 16)
    max_weight_ratio: float = Field(default=10.0, ge=1.0)

    def sketch_spec(self) -> SketchSpec:
        return SketchSpec(self.dim, self.frac_bits, self.value_bits, self.seed)

    def rule(self) -> FilterRule:
        return FilterRule(self.rule_num, self.rule_den)


def zk_filter(
    updates: Tensor,
    weights: Tensor | None,
    sketches: Sequence[Sequence[int]],
    config: ZkFilterConfig,
) -> FilterResult:
    """Keep the rows whose sketch passes the rule; average the kept rows.

    ``sketches[j]`` is the committed sketch of ``updates[j]`` (signed integers); every row
    is active. ``scores`` are each row's distance over the median distance.
    """
    n = updates.shape[0]
    if n == 0:
        raise AssumptionViolated("the sketch rule needs at least one accepted update")
    if len(sketches) != n:
        raise ConfigError(f"{len(sketches)} sketches for {n} updates; give one per update")
    if n > MAX_SLOTS:
        raise ConfigError(f"{n} trainers exceed what one filter circuit can prove ({MAX_SLOTS})")
    shape = CircuitShape(n, config.dim, config.value_bits)
    off = shape.value_offset
    outcome = apply_rule([[v + off for v in s] for s in sketches], [1] * n, config.rule(), shape)
    mask = torch.tensor([bool(m) for m in outcome.mask], dtype=torch.bool)
    if not bool(mask.any()):
        raise AssumptionViolated(
            f"rule {config.rule_num}/{config.rule_den} keeps nobody; use num >= den"
        )
    w = torch.ones(n, dtype=torch.float64) if weights is None else weights.to(torch.float64)
    cap = config.max_weight_ratio * median_of(w[mask])
    capped = torch.minimum(w, torch.tensor(cap, dtype=torch.float64))
    md = outcome.median_distance
    ratio = [d / md if md > 0 else (0.0 if d == 0 else float("inf")) for d in outcome.distances]
    reason = {
        j: (
            f"sketch distance {outcome.distances[j]} > {config.rule_num}/{config.rule_den} x "
            f"median distance {md} (provable sketch-median rule)"
        )
        for j in range(n)
        if not outcome.mask[j]
    }
    return FilterResult(
        inlier_mask=mask,
        aggregate=weighted_mean(updates, capped, mask),
        scores=torch.tensor(ratio, dtype=torch.float64),
        reason=reason,
        weights=normalized(capped, mask),
    )
