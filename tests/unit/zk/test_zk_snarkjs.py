"""The snarkjs reference backend (slow: powers of tau 2^14 take ~6 minutes, once)."""

from __future__ import annotations

import random

import pytest

from zk.field import FIELD_MODULUS
from zk.prover import SnarkjsProver
from zk.shape import CircuitShape
from zk.verify_pyecc import PyEccVerifier
from zk.witness import build_round


@pytest.mark.slow
def test_snarkjs_proof_verifies_in_snarkjs_and_pyecc() -> None:
    shape = CircuitShape(10, 16)
    rng = random.Random(1)
    sketches = [[rng.randint(-1000, 1000) for _ in range(16)] for _ in range(7)]
    salts = [rng.randrange(FIELD_MODULUS) for _ in sketches]
    inputs, st = build_round(shape, project_id=3, round_index=1, sketches=sketches, salts=salts)
    prover = SnarkjsProver(shape)
    proof = prover.prove(inputs)
    assert prover.verify(proof, [st.public_hash])
    assert not prover.verify(proof, [st.public_hash + 1])
    verifier = PyEccVerifier(prover.verifying_key())
    assert verifier.verify(proof, [st.public_hash])
    assert not verifier.verify(proof, [(st.public_hash + 1) % FIELD_MODULUS])
