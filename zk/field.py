"""The BN254 scalar field that circom signals, Poseidon and Groth16 public inputs live in.

Why a module of its own: every other module of ``zk`` encodes integers into this field
(sketch lanes, packed bit vectors, signed sums) and the encoding must be one function, so the
prover, the pure-Python reference and an auditor agree bit for bit. Negative values are
field elements ``p - |v|`` (docs/architecture.md, "Zero-knowledge: facts measured").
"""

from __future__ import annotations

from collections.abc import Sequence

from marketplace.errors import ZkError

#: Order of the BN254 (alt_bn128) scalar field: circom's prime ``p``, Groth16's ``r``.
FIELD_MODULUS = 21888242871839275222246405745257275088548364400416034343698204186575808495617

#: Order of the BN254 base field (coordinates of G1/G2 points).
BASE_MODULUS = 21888242871839275222246405745257275088696311157297823662689037894645226208583


def to_field(value: int) -> int:
    """Encode a signed integer as a field element (``-v`` becomes ``p - v``)."""
    if not -FIELD_MODULUS // 2 < value < FIELD_MODULUS // 2:
        raise ZkError(f"integer {value} does not fit the BN254 field; keep |v| below p/2")
    return value % FIELD_MODULUS


def from_field(element: int) -> int:
    """Decode a field element to a signed integer: elements above ``p/2`` are negative."""
    element %= FIELD_MODULUS
    return element - FIELD_MODULUS if element > FIELD_MODULUS // 2 else element


def check_field_element(value: int, name: str) -> int:
    """Return ``value`` if it is a canonical field element (``0 <= value < p``), else raise."""
    if not 0 <= value < FIELD_MODULUS:
        raise ZkError(f"{name}={value} is not a BN254 field element; use 0 <= value < p")
    return value


def pack_lanes(values: Sequence[int], lane_bits: int) -> list[int]:
    """Pack non-negative ``lane_bits``-bit integers, as many per field element as fit.

    Lane ``j`` of an element holds ``values[k * per + j]`` at bit offset ``j * lane_bits``
    (little-endian lanes), ``per = 252 // lane_bits``; the last element may be partly empty.
    The packing is injective because every lane is range-bounded, which is what lets a
    hash over packed elements commit to the values (circuits do the same with linear
    combinations, at no constraint cost).
    """
    per = lanes_per_element(lane_bits)
    bound = 1 << lane_bits
    packed: list[int] = []
    for start in range(0, len(values), per):
        acc = 0
        for j, v in enumerate(values[start : start + per]):
            if not 0 <= v < bound:
                raise ZkError(f"lane value {v} is outside [0, 2^{lane_bits}); clamp it first")
            acc |= v << (j * lane_bits)
        packed.append(acc)
    return packed


def lanes_per_element(lane_bits: int) -> int:
    """How many ``lane_bits``-bit lanes one field element holds (252 usable bits)."""
    if not 1 <= lane_bits <= 252:
        raise ZkError(f"lane width {lane_bits} bits is not in 1..252")
    return 252 // lane_bits


def pack_bits(bits: Sequence[int]) -> int:
    """Pack a 0/1 vector into one integer, bit ``i`` = ``bits[i]`` (at most 252 bits)."""
    if len(bits) > 252:
        raise ZkError(f"{len(bits)} bits do not fit one field element; use at most 252")
    acc = 0
    for i, b in enumerate(bits):
        if b not in (0, 1):
            raise ZkError(f"bit {i} is {b}, not 0 or 1")
        acc |= b << i
    return acc
