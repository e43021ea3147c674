"""The one public input of the filter proof: a Poseidon fold of the round's public values.

Groth16 verification on the EVM costs ~7k gas per public input (ARCHITECTURE.md), so the
circuit has exactly one, ``publicHash``, and the contract recomputes it from values it
holds. The fold uses only circomlib ``Poseidon(2)`` (``P2``, width t = 3), so a contract needs
one Poseidon implementation. Definition (all values are BN254 field elements):

1. commitment accumulator, over the ``n_max`` slots in order, skipping empty slots
   (commitment 0)::

       acc = 0
       for c in commitments: acc = acc if c == 0 else P2(acc, c)

   A contract can update ``acc`` as each trainer commits (one P2 per commitment), and
   unused padding slots cost nothing. An active slot never has commitment 0.
2. ``flags = sum_i active[i] * 2^i + sum_i mask[i] * 2^(n_max + i)``
3. ``rule = num + den * 2^16 + median_distance * 2^32``
4. ``sums = Poseidon(packed inlier sums)``: the offset inlier sums (``filter_rule``) in lanes of
   ``B + 2 + bitlen(n_max)`` bits, ``252 // lane`` per element (one wide Poseidon, so
   computed off-chain; a contract stores the digest, anyone can check it against the sums)
5. ``h = acc; for e in (project_id, round, flags, rule, sums): h = P2(h, e)``; ``publicHash = h``

``project_id`` and ``round`` must be below the field modulus (uint256 ids that are small
counters always are).
"""

from __future__ import annotations

from collections.abc import Sequence

from marketplace.errors import ZkError
from zk.field import check_field_element, pack_bits, pack_lanes
from zk.poseidon import poseidon
from zk.shape import RULE_BITS, CircuitShape


def commitments_accumulator(commitments: Sequence[int]) -> int:
    """Step 1: the P2 chain over the non-zero commitments, in slot order."""
    acc = 0
    for i, c in enumerate(commitments):
        check_field_element(c, f"commitments[{i}]")
        if c != 0:
            acc = poseidon([acc, c])
    return acc


def flags_word(active: Sequence[int], mask: Sequence[int]) -> int:
    """Step 2: active bits, then mask bits, in one field element."""
    if len(active) != len(mask):
        raise ZkError("active and mask vectors differ in length; both must have n_max entries")
    for i, (a, m) in enumerate(zip(active, mask, strict=True)):
        if m and not a:
            raise ZkError(f"slot {i} is an inlier but not active; the mask implies active")
    return pack_bits(list(active)) | (pack_bits(list(mask)) << len(active))


def rule_word(rule_num: int, rule_den: int, median_distance: int) -> int:
    """Step 3: the rule's ratio and the median distance it was applied to."""
    for name, v in (("rule_num", rule_num), ("rule_den", rule_den)):
        if not 0 <= v < (1 << RULE_BITS):
            raise ZkError(f"{name}={v} is not a 16-bit value")
    if median_distance < 0:
        raise ZkError("median_distance is negative; it is a sum of absolute values")
    return check_field_element(
        rule_num + (rule_den << RULE_BITS) + (median_distance << (2 * RULE_BITS)), "rule word"
    )


def sums_digest(inlier_sums: Sequence[int], shape: CircuitShape) -> int:
    """Step 4: one Poseidon over the packed offset inlier sums."""
    if len(inlier_sums) != shape.dim:
        raise ZkError(f"expected {shape.dim} inlier sums, got {len(inlier_sums)}")
    return poseidon(pack_lanes(list(inlier_sums), shape.sum_lane_bits))


def fold_public_values(
    *,
    project_id: int,
    round_index: int,
    commitments: Sequence[int],
    active: Sequence[int],
    mask: Sequence[int],
    rule_num: int,
    rule_den: int,
    median_distance: int,
    inlier_sums: Sequence[int],
    value_bits: int = 32,
) -> int:
    """``publicHash`` of a round (steps 1-5 above); ``len(commitments)`` is ``n_max``."""
    shape = CircuitShape(len(commitments), len(inlier_sums), value_bits)
    if len(active) != shape.n_max:
        raise ZkError(f"active has {len(active)} entries; expected n_max = {shape.n_max}")
    return fold_with_sums_digest(
        project_id=project_id,
        round_index=round_index,
        commitments=commitments,
        active=active,
        mask=mask,
        rule_num=rule_num,
        rule_den=rule_den,
        median_distance=median_distance,
        sums=sums_digest(inlier_sums, shape),
    )


def fold_with_sums_digest(
    *,
    project_id: int,
    round_index: int,
    commitments: Sequence[int],
    active: Sequence[int],
    mask: Sequence[int],
    rule_num: int,
    rule_den: int,
    median_distance: int,
    sums: int,
) -> int:
    """``publicHash`` given step 4's digest instead of the sums: what a verifier that never
    sees the sums (the contract, ``zk.onchain``) recomputes from chain data."""
    if len(active) != len(commitments):
        raise ZkError(f"active has {len(active)} entries for {len(commitments)} commitments")
    h = commitments_accumulator(commitments)
    header = (
        check_field_element(project_id, "project_id"),
        check_field_element(round_index, "round_index"),
        flags_word(active, mask),
        rule_word(rule_num, rule_den, median_distance),
        check_field_element(sums, "sums digest"),
    )
    for e in header:
        h = poseidon([h, e])
    return h
