"""The filter circuit end to end on the smallest instantiation (n_max=10, d=16).

A valid round proves and verifies (groth16py and the independent py_ecc verifier); every
way of cheating the brief lists makes the witness unsatisfiable. Keys are set up once per
session in a temporary LEDGERLEARN_HOME (about 15 s on 2 cores).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import pytest

from marketplace.errors import ZkError
from zk.field import FIELD_MODULUS
from zk.proof import Groth16Proof
from zk.prover import Groth16pyProver
from zk.public_hash import commitments_accumulator, flags_word, fold, outputs_digest
from zk.shape import CircuitShape
from zk.verify_pyecc import PyEccVerifier
from zk.witness import RoundStatement, build_round

SHAPE = CircuitShape(10, 16)


@pytest.fixture(scope="session")
def prover(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Groth16pyProver]:
    old = os.environ.get("LEDGERLEARN_HOME")
    os.environ["LEDGERLEARN_HOME"] = str(tmp_path_factory.mktemp("llhome"))
    try:
        yield Groth16pyProver(SHAPE)
    finally:
        if old is None:
            os.environ.pop("LEDGERLEARN_HOME", None)
        else:
            os.environ["LEDGERLEARN_HOME"] = old


def _round(seed: int = 0) -> tuple[dict[str, object], RoundStatement]:
    rng = random.Random(seed)
    sketches = [[rng.randint(-50_000, 50_000) for _ in range(SHAPE.dim)] for _ in range(8)]
    sketches[0] = [v * 40 for v in sketches[0]]  # a boosted update: must be masked out
    salts = [rng.randrange(FIELD_MODULUS) for _ in sketches]
    return build_round(SHAPE, project_id=11, round_index=4, sketches=sketches, salts=salts)


@pytest.fixture(scope="module")
def valid(prover: Groth16pyProver) -> tuple[Groth16Proof, RoundStatement]:
    inputs, statement = _round()
    return prover.prove(inputs), statement


def _refold(statement: RoundStatement, **changes: object) -> int:
    """The public hash with some values replaced (what a cheating prover would claim)."""
    values: dict[str, object] = dict(
        accumulator=statement.accumulator,
        active=statement.active,
        mask=statement.mask,
        median_distance=statement.outcome.median_distance,
        inlier_sums=statement.outcome.inlier_sums,
    )
    values.update(changes)
    flags = flags_word(
        values["active"],  # type: ignore[arg-type]
        values["mask"],  # type: ignore[arg-type]
        statement.rule.num,
        statement.rule.den,
    )
    outputs = outputs_digest(
        values["median_distance"],  # type: ignore[arg-type]
        values["inlier_sums"],  # type: ignore[arg-type]
        SHAPE,
    )
    return fold(values["accumulator"], flags, outputs)  # type: ignore[arg-type]


def test_valid_round_proves_and_verifies(
    prover: Groth16pyProver, valid: tuple[Groth16Proof, RoundStatement]
) -> None:
    proof, statement = valid
    assert statement.mask[0] == 0 and sum(statement.mask) >= 6  # outlier out, honest in
    assert prover.info.n_constraints is not None and prover.info.n_constraints > 1000
    assert prover.verify(proof, [statement.public_hash])
    assert not prover.verify(proof, [statement.public_hash + 1])


def test_pyecc_accepts_valid_and_rejects_tampering(
    prover: Groth16pyProver, valid: tuple[Groth16Proof, RoundStatement]
) -> None:
    proof, statement = valid
    verifier = PyEccVerifier(prover.verifying_key())
    assert verifier.verify(proof, [statement.public_hash])
    assert Groth16Proof.from_bytes(proof.to_bytes()) == proof
    tampered = Groth16Proof(proof.c, proof.b, proof.a)  # valid points, wrong proof
    assert not verifier.verify(tampered, [statement.public_hash])
    off_curve = Groth16Proof((proof.a[0], proof.a[1] + 1), proof.b, proof.c)
    assert not verifier.verify(off_curve, [statement.public_hash])
    # x and x + r are the same field element: the verifier must refuse the unreduced one
    assert not verifier.verify(proof, [statement.public_hash + FIELD_MODULUS])
    assert not prover.verify(proof, [statement.public_hash + FIELD_MODULUS])


def test_groth16py_proof_verifies_in_snarkjs(
    prover: Groth16pyProver, valid: tuple[Groth16Proof, RoundStatement]
) -> None:
    """The reference verifier accepts the default prover's proofs (same key, snarkjs JSON)."""
    from zk.prover import snarkjs_verify

    proof, statement = valid
    vk_json = (prover.info.keys_dir / "verification_key.json").read_text()
    assert snarkjs_verify(vk_json, proof, [statement.public_hash])
    assert not snarkjs_verify(vk_json, proof, [statement.public_hash + 1])


def _fails(prover: Groth16pyProver, inputs: dict[str, object]) -> None:
    with pytest.raises(ZkError, match="witness"):
        prover.prove(inputs)


def test_flipped_mask_bit_fails(prover: Groth16pyProver) -> None:
    inputs, st = _round()
    for slot in (0, 3):  # readmit the outlier / drop an honest trainer
        mask = list(st.mask)
        mask[slot] ^= 1
        _fails(prover, {**inputs, "publicHash": _refold(st, mask=mask)})


def test_wrong_median_fails(prover: Groth16pyProver) -> None:
    inputs, _ = _round()
    median = list(inputs["median"])  # type: ignore[call-overload]
    median[2] += 1
    _fails(prover, {**inputs, "median": median})
    _fails(prover, {**inputs, "medianDist": int(inputs["medianDist"]) + 1})  # type: ignore[call-overload]


def test_commitment_not_matching_sketch_fails(prover: Groth16pyProver) -> None:
    inputs, st = _round()
    commitments = list(st.commitments)
    commitments[5] = (commitments[5] + 1) % FIELD_MODULUS
    arrivals = [(i, commitments[i]) for i in st.arrival]
    forged_chain = commitments_accumulator(st.project_id, st.round_index, arrivals)
    element = [(commitments[i] + i) % FIELD_MODULUS for i in st.arrival]
    forged = {
        **inputs,
        "commitment": commitments,
        "element": element + [0] * (SHAPE.n_max - len(element)),
        "publicHash": _refold(st, accumulator=forged_chain),
    }
    _fails(prover, forged)
    sketch = [list(r) for r in inputs["sketch"]]  # type: ignore[attr-defined]
    sketch[5][0] += 1  # altered sketch under the honest commitment
    _fails(prover, {**inputs, "sketch": sketch})


def test_swapping_two_trainers_sketches_fails(prover: Groth16pyProver) -> None:
    """The arrival order is private, but it cannot move a commitment to another slot."""
    inputs, st = _round()
    pick = [list(row) for row in inputs["pick"]]  # type: ignore[attr-defined]
    t1, t2 = st.arrival.index(1), st.arrival.index(2)
    pick[t1][1], pick[t1][2], pick[t2][1], pick[t2][2] = 0, 1, 1, 0
    commitment = list(st.commitments)
    commitment[1], commitment[2] = commitment[2], commitment[1]
    sketch = [list(r) for r in inputs["sketch"]]  # type: ignore[attr-defined]
    sketch[1], sketch[2] = sketch[2], sketch[1]
    salt = list(inputs["salt"])  # type: ignore[call-overload]
    salt[1], salt[2] = salt[2], salt[1]
    _fails(
        prover, {**inputs, "pick": pick, "commitment": commitment, "sketch": sketch, "salt": salt}
    )


def test_leaving_out_a_committed_trainer_fails(prover: Groth16pyProver) -> None:
    """An unused chain step cannot carry an active slot, and every active slot is picked."""
    inputs, st = _round()
    pick = [list(row) for row in inputs["pick"]]  # type: ignore[attr-defined]
    last = len(st.arrival) - 1
    pick[last] = [0] * SHAPE.n_max  # the last arrival's slot is no longer picked
    _fails(prover, {**inputs, "pick": pick})
    used = list(inputs["used"])  # type: ignore[call-overload]
    used[last] = 0  # stop the chain one step early
    _fails(prover, {**inputs, "used": used})


def test_public_hash_of_another_round_or_project_fails(prover: Groth16pyProver) -> None:
    inputs, st = _round()
    other = commitments_accumulator(
        st.project_id, st.round_index + 1, [(i, st.commitments[i]) for i in st.arrival]
    )
    _fails(prover, {**inputs, "publicHash": _refold(st, accumulator=other)})
    _fails(prover, {**inputs, "chainSeed": int(inputs["chainSeed"]) + 1})  # type: ignore[call-overload]


def test_solidity_verifier_export(
    prover: Groth16pyProver, valid: tuple[Groth16Proof, RoundStatement]
) -> None:
    source = prover.solidity_verifier("FilterVerifier")
    assert "contract FilterVerifier" in source
    assert "uint256[1] memory input" in source
    proof, _ = valid
    a, b, c = proof.solidity_args()
    assert b[0] == [proof.b[0][1], proof.b[0][0]]  # Ethereum Fp2 order (c1, c0)
    assert proof.words() == [*a, *b[0], *b[1], *c]


def test_odd_count_with_an_excluded_committed_trainer(prover: Groth16pyProver) -> None:
    rng = random.Random(7)
    sketches: list[list[int] | None] = [
        [rng.randint(-9_000, 9_000) for _ in range(SHAPE.dim)] for _ in range(10)
    ]
    sketches[4] = None  # committed, then excluded (e.g. never revealed its sketch)
    salts = [rng.randrange(FIELD_MODULUS) for _ in sketches]
    inputs, st = build_round(SHAPE, project_id=2, round_index=9, sketches=sketches, salts=salts)
    assert sum(st.active) == 9 and st.mask[4] == 0
    assert prover.verify(prover.prove(inputs), [st.public_hash])
    # committed, then rejected: its commitment stays in the chain, in its arrival position
    inputs2, st2 = build_round(
        SHAPE,
        project_id=2,
        round_index=9,
        sketches=sketches,
        salts=salts,
        commitments=[12345 if s is None else 0 for s in sketches],
        arrival=[9, 4, 0, 1, 2, 3, 5, 6, 7, 8],
    )
    assert st2.commitments[4] == 12345 and st2.public_hash != st.public_hash
    assert st2.mask == st.mask and st2.arrival[:2] == (9, 4)
    assert prover.verify(prover.prove(inputs2), [st2.public_hash])
    with pytest.raises(ZkError, match="permutation"):
        build_round(SHAPE, project_id=2, round_index=9, sketches=sketches, salts=salts, arrival=[0])


def test_out_of_range_value_fails(prover: Groth16pyProver, monkeypatch: pytest.MonkeyPatch) -> None:
    """A committed value of 2^32 + 5 (offset form) is refused by the circuit, as by the
    Python reference: before every value had its own Num2Bits(B), only the window around
    the median was checked and this round proved."""
    import zk.filter_rule
    import zk.sketch
    import zk.witness

    rng = random.Random(3)
    sketches = [[rng.randint(-50_000, 50_000) for _ in range(SHAPE.dim)] for _ in range(6)]
    wide = (1 << 32) + 5 - SHAPE.value_offset  # u = v + 2^31 = 2^32 + 5
    sketches[2][7] = wide
    salts = [rng.randrange(FIELD_MODULUS) for _ in sketches]
    with pytest.raises(Exception, match="outside"):
        build_round(SHAPE, project_id=1, round_index=1, sketches=sketches, salts=salts)
    # a prover that skips the reference's check gets a consistent witness for that value
    monkeypatch.setattr(zk.witness, "check_sketch", lambda *_: None)
    monkeypatch.setattr(zk.sketch, "check_sketch", lambda *_: None)
    monkeypatch.setattr(zk.filter_rule, "check_offsets", lambda *_: None)
    inputs, _ = build_round(SHAPE, project_id=1, round_index=1, sketches=sketches, salts=salts)
    assert inputs["sketch"][2][7] == (1 << 32) + 5  # type: ignore[index]
    _fails(prover, inputs)


def test_two_active_slots_with_one_commitment_fail(
    prover: Groth16pyProver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copycat that commits another trainer's commitment (same sketch, same salt) is not
    a second inlier: the reference and the circuit both refuse the round."""
    import zk.witness

    rng = random.Random(5)
    sketches = [[rng.randint(-9_000, 9_000) for _ in range(SHAPE.dim)] for _ in range(5)]
    salts = [rng.randrange(FIELD_MODULUS) for _ in sketches]
    sketches.append(list(sketches[1]))
    salts.append(salts[1])
    with pytest.raises(ZkError, match="trainers 1 and 5 committed the same"):
        build_round(SHAPE, project_id=1, round_index=2, sketches=sketches, salts=salts)
    monkeypatch.setattr(zk.witness, "check_distinct", lambda *_: None)
    inputs, st = build_round(SHAPE, project_id=1, round_index=2, sketches=sketches, salts=salts)
    assert st.commitments[1] == st.commitments[5] and st.active[5] == 1
    _fails(prover, inputs)
    # rejecting the copy (its commitment stays in the chain) proves
    sketches[5] = None
    inputs, st = build_round(
        SHAPE,
        project_id=1,
        round_index=2,
        sketches=sketches,
        salts=salts,
        commitments=[0, 0, 0, 0, 0, st.commitments[1]],
    )
    assert prover.verify(prover.prove(inputs), [st.public_hash])


def test_chain_seed_other_than_the_contracts_only_skips_inactive_steps(
    prover: Groth16pyProver,
) -> None:
    """chainSeed is private: a prover may start the chain at an intermediate accumulator,
    but then every step before it is left out, which is only possible for slots that are
    not active (docs/zk.md). Starting after an active slot's step fails."""
    from zk.poseidon import poseidon
    from zk.public_hash import chain_element, chain_seed

    inputs, st = _round()
    first = st.arrival[0]  # an active slot
    seed = poseidon(
        [chain_seed(st.project_id, st.round_index), chain_element(st.commitments[first], first)]
    )
    element = list(inputs["element"])[1:] + [0]  # type: ignore[call-overload]
    used = list(inputs["used"])[1:] + [0]  # type: ignore[call-overload]
    pick = [list(r) for r in inputs["pick"]][1:] + [[0] * SHAPE.n_max]  # type: ignore[attr-defined]
    skipped = {**inputs, "chainSeed": seed, "element": element, "used": used, "pick": pick}
    _fails(prover, skipped)  # slot `first` is no longer picked
