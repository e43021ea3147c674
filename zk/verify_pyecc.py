"""An independent Groth16 verifier in pure Python (py_ecc), to cross-check the fast ones.

Groth16 (Groth, "On the Size of Pairing-based Non-interactive Arguments", EUROCRYPT 2016)
accepts ``(A, B, C)`` for public inputs ``x`` iff

    e(A, B) = e(alpha, beta) * e(vk_x, gamma) * e(C, delta),   vk_x = IC_0 + sum x_i IC_{i+1}

checked here as one product of four Miller loops and a single final exponentiation.
py_ecc's ``miller_loop`` does not check that points are on the curve and py_ecc never checks
the G2 subgroup (docs/architecture.md), so this module does both itself, and rejects public
inputs ``>= r`` (otherwise ``x`` and ``x + r`` would both verify: a malleability the EVM
verifier also rejects). It is slow (seconds) and meant for audits and tests.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from py_ecc import optimized_bn128 as bn

from marketplace.errors import ZkError
from zk.field import BASE_MODULUS, FIELD_MODULUS
from zk.proof import G1, G2, Groth16Proof, VerifyingKeyData

log = logging.getLogger(__name__)

PyG1 = tuple[Any, Any, Any]
PyG2 = tuple[Any, Any, Any]
#: py_ecc exponentiates recursively (the final exponentiation recurses ~2,800 deep); it
#: raises the process-wide limit to 100,000 on import, which :mod:`marketplace` undoes.
PY_ECC_RECURSION = 10_000


@contextmanager
def _py_ecc_recursion() -> Iterator[None]:
    """Raise the recursion limit for py_ecc's arithmetic only, and restore it after."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(max(before, PY_ECC_RECURSION))
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


def _coord(v: int, what: str) -> int:
    if not 0 <= v < BASE_MODULUS:
        raise ZkError(f"{what} coordinate is not reduced mod q; the proof or key is malformed")
    return v


def g1_point(p: G1, what: str) -> PyG1:
    """An affine G1 point as a py_ecc point, checked on the curve (``(0, 0)`` is infinity)."""
    x, y = _coord(p[0], what), _coord(p[1], what)
    if x == 0 and y == 0:
        return bn.Z1
    pt = (bn.FQ(x), bn.FQ(y), bn.FQ.one())
    if not bn.is_on_curve(pt, bn.b):
        raise ZkError(f"{what} is not on the BN254 G1 curve; the proof or key is malformed")
    return pt


def g2_point(p: G2, what: str) -> PyG2:
    """An affine G2 point (snarkjs ``(c0, c1)`` order), checked on the twist and in G2."""
    (x0, x1), (y0, y1) = p
    for v in (x0, x1, y0, y1):
        _coord(v, what)
    if x0 == x1 == y0 == y1 == 0:
        return bn.Z2
    pt = (bn.FQ2([x0, x1]), bn.FQ2([y0, y1]), bn.FQ2.one())
    if not bn.is_on_curve(pt, bn.b2):
        raise ZkError(f"{what} is not on the BN254 G2 twist; check the (c0, c1) order")
    if not bn.is_inf(bn.multiply(pt, FIELD_MODULUS)):
        raise ZkError(f"{what} is not in the order-r subgroup of G2; the point is malformed")
    return pt


def _miller(q: PyG2, p: PyG1) -> Any:
    """Miller loop of ``e(p, q)`` without the final exponentiation (1 if either is infinity)."""
    return bn.pairing(q, p, final_exponentiate=False)


class PyEccVerifier:
    """Verifies Groth16 proofs against one verifying key (points checked once, here)."""

    def __init__(self, vk: VerifyingKeyData) -> None:
        with _py_ecc_recursion():
            self._setup(vk)

    def _setup(self, vk: VerifyingKeyData) -> None:
        self._alpha = g1_point(vk.alpha, "vk.alpha")
        self._beta = g2_point(vk.beta, "vk.beta")
        self._gamma = g2_point(vk.gamma, "vk.gamma")
        self._delta = g2_point(vk.delta, "vk.delta")
        self._ic = [g1_point(p, f"vk.IC[{i}]") for i, p in enumerate(vk.ic)]
        # e(alpha, beta) does not depend on the proof: keep its Miller loop.
        self._alpha_beta = _miller(self._beta, self._alpha)

    def verify(self, proof: Groth16Proof, public_inputs: Sequence[int]) -> bool:
        """True iff the proof is valid; malformed points or inputs give False (logged)."""
        try:
            with _py_ecc_recursion():
                return self._verify(proof, public_inputs)
        except ZkError as exc:
            log.info("py_ecc verifier rejected the proof: %s", exc)
            return False

    def _verify(self, proof: Groth16Proof, public_inputs: Sequence[int]) -> bool:
        if len(public_inputs) != len(self._ic) - 1:
            raise ZkError(f"expected {len(self._ic) - 1} public inputs, got {len(public_inputs)}")
        vk_x = self._ic[0]
        for i, x in enumerate(public_inputs):
            if not 0 <= x < FIELD_MODULUS:
                raise ZkError(f"public input {i} is not below the field modulus r")
            vk_x = bn.add(vk_x, bn.multiply(self._ic[i + 1], x))
        a = g1_point(proof.a, "proof.A")
        b = g2_point(proof.b, "proof.B")
        c = g1_point(proof.c, "proof.C")
        acc = (
            _miller(b, bn.neg(a))
            * self._alpha_beta
            * _miller(self._gamma, vk_x)
            * _miller(self._delta, c)
        )
        return bool(bn.final_exponentiate(acc) == bn.FQ12.one())


def verify_pyecc(
    vk: VerifyingKeyData, proof: Groth16Proof | bytes, public_inputs: Sequence[int]
) -> bool:
    """One-shot convenience: build a :class:`PyEccVerifier` and verify."""
    if isinstance(proof, bytes):
        proof = Groth16Proof.from_bytes(proof)
    return PyEccVerifier(vk).verify(proof, public_inputs)
