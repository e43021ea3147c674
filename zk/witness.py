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
from zk.public_hash import fold_public_values
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
    rule: FilterRule
    outcome: FilterOutcome
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
) -> tuple[CircuitInputs, RoundStatement]:
    """Inputs and statement for ``len(sketches) <= n_max`` trainer slots.

    ``sketches[i] is None`` marks a slot inactive (a trainer that committed but whose sketch
    was not revealed or is malformed); ``commitments`` then gives what it committed (default
    0 = empty slot). Active slots' commitments are computed from sketch and salt; passing a
    different value makes the witness unsatisfiable (the circuit checks it).
    """
    rule = rule or FilterRule()
    n = len(sketches)
    if n > shape.n_max or len(salts) != n:
        raise ZkError(f"{n} sketches and {len(salts)} salts for {shape.n_max} slots; match them")
    active = [int(s is not None) for s in sketches] + [0] * (shape.n_max - n)
    signed: list[list[int]] = []
    for s in sketches:
        if s is not None:
            if len(s) != shape.dim:
                raise ZkError(f"sketch has {len(s)} dims; this circuit takes {shape.dim}")
            check_sketch(s, shape.value_bits)
        signed.append(list(s) if s is not None else [0] * shape.dim)
    signed += [[0] * shape.dim] * (shape.n_max - n)
    salt_list = [*salts, *([0] * (shape.n_max - n))]
    if commitments is None:
        commits = [
            sketch_commitment(signed[i], salt_list[i], shape.value_bits) if active[i] else 0
            for i in range(shape.n_max)
        ]
    else:
        if len(commitments) != n:
            raise ZkError(f"{len(commitments)} commitments for {n} sketches; give one per slot")
        commits = [*commitments, *([0] * (shape.n_max - n))]
    off = shape.value_offset
    offsets = [[v + off for v in row] for row in signed]
    outcome = apply_rule(offsets, active, rule, shape)
    public_hash = fold_public_values(
        project_id=project_id,
        round_index=round_index,
        commitments=commits,
        active=active,
        mask=outcome.mask,
        rule_num=rule.num,
        rule_den=rule.den,
        median_distance=outcome.median_distance,
        inlier_sums=outcome.inlier_sums,
        value_bits=shape.value_bits,
    )
    k = sum(active)
    inputs: CircuitInputs = {
        "publicHash": public_hash,
        "projectId": project_id,
        "round": round_index,
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
        shape, project_id, round_index, tuple(commits), tuple(active), rule, outcome, public_hash
    )
    return inputs, statement
