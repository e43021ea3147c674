"""Build the filter circuit's input signals for one round (pure, no I/O).

The aggregator knows every trainer's sketch and salt (trainers send them with the update);
it runs the rule (``filter_rule``), folds the public values (``public_hash``) and hands the
prover the signal assignment below. ``RoundStatement`` is what goes on-chain next to the
proof and what an auditor recomputes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from marketplace.errors import ZkError
from zk.filter_rule import FilterOutcome, FilterRule, apply_rule
from zk.public_hash import (
    chain_element,
    chain_seed,
    commitments_accumulator,
    flags_word,
    fold,
    outputs_digest,
)
from zk.shape import CircuitShape
from zk.sketch import check_sketch, sketch_commitment

#: Circuit input name -> value (an int or nested lists of ints), circom's input.json shape.
CircuitInputs = dict[str, object]


@dataclass(frozen=True)
class RoundStatement:
    """The public values of a round, and the one field element the proof is about."""

    shape: CircuitShape
    project_id: int
    round_index: int
    commitments: tuple[int, ...]
    active: tuple[int, ...]
    arrival: tuple[int, ...]
    rule: FilterRule
    outcome: FilterOutcome
    accumulator: int
    outputs: int
    public_hash: int

    @property
    def mask(self) -> tuple[int, ...]:
        return self.outcome.mask


def build_round(
    shape: CircuitShape,
    *,
    project_id: int,
    round_index: int,
    sketches: Sequence[Sequence[int] | None],
    salts: Sequence[int],
    rule: FilterRule | None = None,
    commitments: Sequence[int] | None = None,
    arrival: Sequence[int] | None = None,
) -> tuple[CircuitInputs, RoundStatement]:
    """Inputs and statement for ``len(sketches) <= n_max`` trainer slots.

    ``sketches[i] is None`` marks a slot inactive (a trainer that did not commit, or whose
    sketch was not revealed or is malformed); ``commitments`` then gives what each slot
    committed (0 = did not commit). An active slot's commitment defaults to the one computed
    from its sketch and salt; passing a different value makes the witness unsatisfiable (the
    circuit checks it).
    ``arrival`` lists the committed slots in the order they committed on-chain (the order
    of the verifier's chain; default: slot order).
    """
    rule = rule or FilterRule()
    n = len(sketches)
    if n > shape.n_max or len(salts) != n:
        raise ZkError(f"{n} sketches and {len(salts)} salts for {shape.n_max} slots; match them")
    pad = shape.n_max - n
    active, signed = _slots(shape, sketches)
    salt_list = [*salts, *([0] * pad)]
    own = [
        sketch_commitment(signed[i], salt_list[i], shape.value_bits) if active[i] else 0
        for i in range(shape.n_max)
    ]
    if commitments is None:
        commits = own
    else:
        if len(commitments) != n:
            raise ZkError(f"{len(commitments)} commitments for {n} sketches; give one per slot")
        given = [*commitments, *([0] * pad)]
        commits = [given[i] or own[i] for i in range(shape.n_max)]
    check_distinct(commits, active)
    committed = [i for i in range(shape.n_max) if commits[i] != 0 or active[i]]
    order = list(arrival) if arrival is not None else committed
    if sorted(order) != committed:
        raise ZkError(
            f"arrival order {order} is not a permutation of the committed slots {committed}; "
            "read it from the verifier's CommitmentFolded events"
        )
    offsets, outcome = _apply(shape, rule, active, signed)
    accumulator = commitments_accumulator(project_id, round_index, [(i, commits[i]) for i in order])
    outputs = outputs_digest(outcome.median_distance, outcome.inlier_sums, shape)
    public_hash = fold(accumulator, flags_word(active, outcome.mask, rule.num, rule.den), outputs)
    steps = len(order)
    element = [chain_element(commits[i], i) for i in order] + [0] * (shape.n_max - steps)
    pick = [[0] * shape.n_max for _ in range(shape.n_max)]
    for t, i in enumerate(order):
        pick[t][i] = active[i]
    k = sum(active)
    inputs: CircuitInputs = {
        "publicHash": public_hash,
        "chainSeed": chain_seed(project_id, round_index),
        "element": element,
        "used": [int(t < steps) for t in range(shape.n_max)],
        "pick": pick,
        "sketch": offsets,
        "salt": salt_list,
        "commitment": commits,
        "active": active,
        "median": list(outcome.median),
        "medianDist": outcome.median_distance,
        "ruleNum": rule.num,
        "ruleDen": rule.den,
        "half": k // 2,
        "parity": k % 2,
    }
    statement = RoundStatement(
        shape,
        project_id,
        round_index,
        tuple(commits),
        tuple(active),
        tuple(order),
        rule,
        outcome,
        accumulator,
        outputs,
        public_hash,
    )
    return inputs, statement


def duplicate_commitments(
    commitments: Sequence[int], active: Sequence[int]
) -> list[tuple[int, int]]:
    """``(original, copy)`` slot pairs: an active slot whose commitment an earlier active
    slot already carries.

    The circuit refuses two active slots with one commitment: a commitment opens with the
    sketch and salt it was made from, so a trainer that copied another's commitment (and,
    once published, its opening) would be a second inlier for free.
    """
    first: dict[int, int] = {}
    pairs = []
    for i, (c, a) in enumerate(zip(commitments, active, strict=False)):
        if not a:
            continue
        if c in first:
            pairs.append((first[c], i))
        else:
            first[c] = i
    return pairs


def check_distinct(commitments: Sequence[int], active: Sequence[int]) -> None:
    """Raise naming the first active slot that repeats an earlier slot's commitment."""
    pairs = duplicate_commitments(commitments, active)
    if pairs:
        j, i = pairs[0]
        raise ZkError(
            f"trainers {j} and {i} committed the same sketch commitment; reject the copy "
            "(the later committer) and prove again"
        )


def rule_outputs(
    shape: CircuitShape, rule: FilterRule, sketches: Sequence[Sequence[int] | None]
) -> int:
    """The ``outputs`` digest a proof over these active sketches must carry (``None`` =
    inactive slot): what an auditor recomputes from the sketches published with the updates.
    """
    if len(sketches) > shape.n_max:
        raise ZkError(f"{len(sketches)} slots exceed the circuit's {shape.n_max}")
    _, outcome = _apply(shape, rule, *_slots(shape, sketches))
    return outputs_digest(outcome.median_distance, outcome.inlier_sums, shape)


def _slots(
    shape: CircuitShape, sketches: Sequence[Sequence[int] | None]
) -> tuple[list[int], list[list[int]]]:
    """``(active, signed rows)`` over all ``n_max`` slots: each given sketch checked, empty
    and padding slots zero."""
    active = [int(s is not None) for s in sketches] + [0] * (shape.n_max - len(sketches))
    signed: list[list[int]] = []
    for s in sketches:
        if s is not None:
            if len(s) != shape.dim:
                raise ZkError(f"sketch has {len(s)} dims; this circuit takes {shape.dim}")
            check_sketch(s, shape.value_bits)
        signed.append(list(s) if s is not None else [0] * shape.dim)
    signed += [[0] * shape.dim] * (shape.n_max - len(sketches))
    return active, signed


def _apply(
    shape: CircuitShape, rule: FilterRule, active: list[int], signed: list[list[int]]
) -> tuple[list[list[int]], FilterOutcome]:
    """The rule on the offset (non-negative) rows, as the circuit computes it."""
    off = shape.value_offset
    offsets = [[v + off for v in row] for row in signed]
    return offsets, apply_rule(offsets, active, rule, shape)
