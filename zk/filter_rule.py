"""The declared inlier rule on committed sketches: the reference the circuit constrains.

Pure integer arithmetic, identical to ``circuits/filter.circom``, so the aggregator, the
witness builder and an auditor replaying a round get the same mask as the proof.

Rule (over the active slots, ``k >= 1`` of them; sketch values in offset form ``u``):

1. reference point ``m[j]`` = lower median of ``u[i][j]`` (``sorted(...)[(k-1)//2]``, the
   convention of ``torch.median``), a coordinate-wise median as in Yin et al., "Byzantine-
   Robust Distributed Learning: Towards Optimal Statistical Rates", ICML 2018;
2. ``dist[i] = sum_j |u[i][j] - m[j]|`` (L1; the circuit gets ``|.|`` for one constraint
   from the comparison bits it needs for the median anyway);
3. ``medianDist`` = lower median of the active distances;
4. ``mask[i] = active[i] and den * dist[i] <= num * medianDist``: an update is an inlier
   when it is at most ``num/den`` times as far from the median as the median trainer;
5. ``inlier_sums[j] = sum_i mask[i] * (u[i][j] + 2^B)`` (offset so it is never negative;
   the signed sum is ``inlier_sums[j] - K * 3 * 2^(B-1)`` for ``K`` inliers).

Assumption (stated as in Flower's strategies): the median is robust while fewer than half
of the active trainers are Byzantine; with a majority of attackers the rule still holds
as stated but no longer protects the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from marketplace.errors import AssumptionViolated, ZkError
from zk.shape import RULE_BITS, CircuitShape


@dataclass(frozen=True)
class FilterRule:
    """``inlier iff den * dist <= num * median distance`` (default: within 2x)."""

    num: int = 2
    den: int = 1

    def __post_init__(self) -> None:
        for name, v in (("num", self.num), ("den", self.den)):
            if not 0 <= v < (1 << RULE_BITS):
                raise ZkError(f"rule {name}={v} is not in 0..65535; scale the ratio down")
        if self.den == 0:
            raise ZkError("rule den=0 makes every active trainer an inlier; use den >= 1")


@dataclass(frozen=True)
class FilterOutcome:
    """Everything the rule computes for one round (offset-form integers)."""

    median: tuple[int, ...]
    distances: tuple[int, ...]
    median_distance: int
    mask: tuple[int, ...]
    inlier_sums: tuple[int, ...]

    @property
    def n_inliers(self) -> int:
        return sum(self.mask)

    def signed_sums(self, value_bits: int) -> list[int]:
        """Inlier sums of the signed sketch values (undoing the ``3 * 2^(B-1)`` offset)."""
        off = 3 << (value_bits - 1)
        return [s - self.n_inliers * off for s in self.inlier_sums]


def lower_median(values: Sequence[int]) -> int:
    """``sorted(values)[(k-1)//2]``: the unique value the circuit's counting pins down."""
    if not values:
        raise AssumptionViolated("median of no values; at least one trainer must be active")
    return sorted(values)[(len(values) - 1) // 2]


def check_offsets(
    offsets: Sequence[Sequence[int]], live: Sequence[int], shape: CircuitShape
) -> None:
    """Raise unless every live row has ``dim`` values in ``[0, 2^B)`` (the circuit's
    ``Num2Bits(B)`` on every value accepts exactly these)."""
    bound = 1 << shape.value_bits
    for i in live:
        if len(offsets[i]) != shape.dim or not all(0 <= u < bound for u in offsets[i]):
            raise ZkError(f"slot {i} is not a {shape.dim}-dim sketch in offset form [0, 2^B)")


def apply_rule(
    offsets: Sequence[Sequence[int]],
    active: Sequence[int],
    rule: FilterRule,
    shape: CircuitShape,
) -> FilterOutcome:
    """Run the rule on ``n_max`` offset sketches ``u`` (inactive slots are ignored)."""
    if len(offsets) != shape.n_max or len(active) != shape.n_max:
        raise ZkError(f"expected {shape.n_max} slots, got {len(offsets)}; pad to n_max")
    live = [i for i, a in enumerate(active) if a]
    if not live:
        raise AssumptionViolated("no active trainer in the round; the median needs k >= 1")
    check_offsets(offsets, live, shape)
    median = tuple(lower_median([offsets[i][j] for i in live]) for j in range(shape.dim))
    distances = tuple(
        sum(abs(u - m) for u, m in zip(offsets[i], median, strict=True)) if active[i] else 0
        for i in range(shape.n_max)
    )
    median_distance = lower_median([distances[i] for i in live])
    mask = tuple(
        int(bool(active[i]) and rule.den * distances[i] <= rule.num * median_distance)
        for i in range(shape.n_max)
    )
    lift = 1 << shape.value_bits
    sums = tuple(
        sum(offsets[i][j] + lift for i in range(shape.n_max) if mask[i]) for j in range(shape.dim)
    )
    return FilterOutcome(median, distances, median_distance, mask, sums)
