"""The shape of one filter circuit instance, and the derived widths both sides must share.

``filter.circom`` computes the same quantities from its template parameters (``LANE``,
``SLANE``, ``DB``...); keeping them in one Python place lets the sketch commitment, the public
hash and the witness builder agree with the circuit without repeating arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

from marketplace.errors import ZkError
from zk.field import lanes_per_element

#: Bits of the rule's numerator and denominator (``Num2Bits(16)`` in the circuit).
RULE_BITS = 16
#: Most trainer slots: ``2 * n_max + 2 * RULE_BITS`` flag bits must stay below 253.
MAX_SLOTS = 110


def bitlen(x: int) -> int:
    """Smallest ``n`` with ``2^n > x`` (circom ``bitlen`` in filter.circom)."""
    return int(x).bit_length()


@dataclass(frozen=True)
class CircuitShape:
    """``SketchFilter(n_max, dim, value_bits)``: trainer slots, sketch dims, bits per value."""

    n_max: int
    dim: int
    value_bits: int = 32

    def __post_init__(self) -> None:
        if not 1 <= self.n_max <= MAX_SLOTS:
            raise ZkError(
                f"n_max={self.n_max} is not in 1..{MAX_SLOTS}; the flags word packs 2*n_max bits "
                "and the rule in one field element"
            )
        if not 1 <= self.dim <= 128:
            raise ZkError(f"sketch dim={self.dim} is not in 1..128; use 16..64")
        if not 8 <= self.value_bits <= 64:
            raise ZkError(f"value_bits={self.value_bits} is not in 8..64; use 32")
        if self.commit_inputs > 16 or self.sum_elements + 1 > 16:
            raise ZkError(f"dim={self.dim} needs more than 16 Poseidon inputs; use dim <= 64")

    @property
    def name(self) -> str:
        return f"filter_n{self.n_max}_d{self.dim}_b{self.value_bits}"

    @property
    def lane_bits(self) -> int:
        """Commitment lane width: ``w = u + 2^B`` lies in ``[2^B, 2^(B+1))`` (every ``u`` is
        range checked); the two spare bits keep the format commitments always had."""
        return self.value_bits + 2

    @property
    def commit_inputs(self) -> int:
        """Poseidon inputs of a commitment: the salt and the packed lanes."""
        per = lanes_per_element(self.lane_bits)
        return 1 + -(-self.dim // per)

    @property
    def sum_lane_bits(self) -> int:
        """Lane width of one offset inlier sum (< ``3 * n_max * 2^B``)."""
        return self.value_bits + 2 + bitlen(self.n_max)

    @property
    def sum_elements(self) -> int:
        return -(-self.dim // lanes_per_element(self.sum_lane_bits))

    @property
    def distance_bits(self) -> int:
        """Bits of an L1 distance (``<= dim * 2^B``)."""
        return self.value_bits + bitlen(self.dim)

    @property
    def value_offset(self) -> int:
        """``2^(B-1)``: signed sketch value ``v`` enters the circuit as ``u = v + 2^(B-1)``."""
        return 1 << (self.value_bits - 1)
