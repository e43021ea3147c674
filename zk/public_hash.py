"""The one public input of the filter proof, and why it costs the same for every round size.

Groth16 verification on the EVM costs ~7k gas per public input (docs/architecture.md), so the
circuit has exactly one, ``publicHash``, and the verifier contract recomputes it from values
it holds. A contract Poseidon(2) costs ~15.7k gas, so the contract may hash only a constant
number of times per round: the per-trainer work is paid at commit time instead, by each
trainer, and the round's verification folds three field elements whatever ``n`` and ``d``.
All hashes are circomlib ``Poseidon`` (``P2`` = two inputs). Definition:

1. **commitments chain**, built by ``FilterRoundVerifier.onCommitment`` as trainers commit,
   in *arrival* order (the contract cannot sort without paying per trainer)::

       acc = seed = project_id + round * 2^128
       for each commitment c of trainer slot i, in commit order: acc = P2(acc, c + i)

   Adding the slot index binds each commitment to its trainer, so the prover (which takes
   the arrival order as a private witness) cannot swap sketches between trainers. The seed
   makes the chain, and so any proof over it, specific to one project and round.
2. ``flags = sum_i active[i] 2^i + sum_i mask[i] 2^(n_max+i) + num 2^(2 n_max)
   + den 2^(2 n_max + 16)``: the contract knows every one of these bits (active = committed
   and not rejected; the rule is immutable in the verifier), so it packs them for free.
3. ``outputs = Poseidon(median_distance, packed inlier sums)``: the offset inlier sums
   (``filter_rule``) in lanes of ``B + 2 + bitlen(n_max)`` bits, ``252 // lane`` per element.
   These are results of the rule, so the contract takes the digest as given; anyone holding
   the round report checks the values against it.
4. ``publicHash = P2(P2(acc, flags), outputs)``.

``project_id`` must be below 2^128 and ``round`` below 2^64 (counters always are).
"""

from __future__ import annotations

from collections.abc import Sequence

from marketplace.errors import ZkError
from zk.field import FIELD_MODULUS, check_field_element, pack_bits, pack_lanes
from zk.poseidon import poseidon
from zk.shape import RULE_BITS, CircuitShape


def chain_seed(project_id: int, round_index: int) -> int:
    """Step 1's starting value: the project and round, packed in one field element."""
    if not 0 <= project_id < 1 << 128:
        raise ZkError(f"project_id={project_id} does not fit 128 bits; the chain seed packs it")
    if not 0 <= round_index < 1 << 64:
        raise ZkError(f"round={round_index} does not fit 64 bits; the chain seed packs it")
    return project_id + (round_index << 128)


def chain_element(commitment: int, slot: int) -> int:
    """What step 1 folds for trainer ``slot``'s commitment: ``c + slot`` in the field."""
    check_field_element(commitment, f"commitment of slot {slot}")
    if commitment == 0:
        raise ZkError(f"slot {slot} has commitment 0; a sketch commitment is a Poseidon hash")
    return (commitment + slot) % FIELD_MODULUS


def commitments_accumulator(
    project_id: int, round_index: int, arrivals: Sequence[tuple[int, int]]
) -> int:
    """Step 1 over ``arrivals`` = (slot, commitment) pairs in commit order."""
    acc = chain_seed(project_id, round_index)
    for slot, c in arrivals:
        acc = poseidon([acc, chain_element(c, slot)])
    return acc


def flags_word(active: Sequence[int], mask: Sequence[int], rule_num: int, rule_den: int) -> int:
    """Step 2: active bits, then mask bits, then the rule, in one field element."""
    if len(active) != len(mask):
        raise ZkError("active and mask vectors differ in length; both must have n_max entries")
    for i, (a, m) in enumerate(zip(active, mask, strict=True)):
        if m and not a:
            raise ZkError(f"slot {i} is an inlier but not active; the mask implies active")
    for name, v in (("rule_num", rule_num), ("rule_den", rule_den)):
        if not 0 <= v < (1 << RULE_BITS):
            raise ZkError(f"{name}={v} is not a 16-bit value")
    n = len(active)
    word = pack_bits(list(active)) | (pack_bits(list(mask)) << n)
    word |= (rule_num << (2 * n)) | (rule_den << (2 * n + RULE_BITS))
    return check_field_element(word, "flags word")


def outputs_digest(median_distance: int, inlier_sums: Sequence[int], shape: CircuitShape) -> int:
    """Step 3: one Poseidon over the median distance and the packed offset inlier sums."""
    if len(inlier_sums) != shape.dim:
        raise ZkError(f"expected {shape.dim} inlier sums, got {len(inlier_sums)}")
    if not 0 <= median_distance < 1 << shape.distance_bits:
        raise ZkError(f"median distance {median_distance} exceeds {shape.distance_bits} bits")
    return poseidon([median_distance, *pack_lanes(list(inlier_sums), shape.sum_lane_bits)])


def fold(accumulator: int, flags: int, outputs: int) -> int:
    """Step 4: ``publicHash`` from the three values; what the contract computes."""
    inner = poseidon([check_field_element(accumulator, "accumulator"), flags])
    return poseidon([inner, check_field_element(outputs, "outputs digest")])
