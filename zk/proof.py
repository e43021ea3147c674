"""Groth16 proofs and verifying keys as plain integers, and their wire encodings.

One representation (coordinates in snarkjs order: an Fp2 element is ``(c0, c1)``) and
explicit conversions to each encoding, because getting the G2 word order wrong is the
classic way to a proof that verifies off-chain and fails on-chain (docs/architecture.md):

* snarkjs ``proof.json`` / ``verification_key.json``: G2 as ``[[c0, c1], [c0, c1], [1, 0]]``;
* Ethereum (Solidity ``verifyProof`` arguments, the 256-byte groth16py proof blob, the
  EIP-197 pairing precompile): G2 as ``(c1, c0)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from marketplace.errors import ZkError

G1 = tuple[int, int]
Fp2 = tuple[int, int]
G2 = tuple[Fp2, Fp2]


def _g1(raw: Sequence[Any]) -> G1:
    return (int(raw[0]), int(raw[1]))


def _g2(raw: Sequence[Sequence[Any]]) -> G2:
    return ((int(raw[0][0]), int(raw[0][1])), (int(raw[1][0]), int(raw[1][1])))


@dataclass(frozen=True)
class Groth16Proof:
    """``(A, B, C)`` with ``A, C`` in G1 and ``B`` in G2 (affine, snarkjs Fp2 order)."""

    a: G1
    b: G2
    c: G1

    @classmethod
    def from_bytes(cls, blob: bytes) -> Groth16Proof:
        """Parse the 256-byte Ethereum layout ``a.x a.y b.x.c1 b.x.c0 b.y.c1 b.y.c0 c.x c.y``."""
        if len(blob) != 256:
            raise ZkError(f"a Groth16 proof blob has 256 bytes, got {len(blob)}")
        w = [int.from_bytes(blob[i : i + 32], "big") for i in range(0, 256, 32)]
        return cls((w[0], w[1]), ((w[3], w[2]), (w[5], w[4])), (w[6], w[7]))

    def to_bytes(self) -> bytes:
        """The 256-byte Ethereum layout (inverse of :meth:`from_bytes`)."""
        return b"".join(v.to_bytes(32, "big") for v in self.words())

    def words(self) -> list[int]:
        """The 8 uint256 words of the Ethereum layout."""
        (x0, x1), (y0, y1) = self.b
        return [self.a[0], self.a[1], x1, x0, y1, y0, self.c[0], self.c[1]]

    def solidity_args(self) -> tuple[list[int], list[list[int]], list[int]]:
        """``(a, b, c)`` for ``verifyProof(uint[2] a, uint[2][2] b, uint[2] c, uint[1] input)``."""
        (x0, x1), (y0, y1) = self.b
        return [self.a[0], self.a[1]], [[x1, x0], [y1, y0]], [self.c[0], self.c[1]]

    @classmethod
    def from_snarkjs(cls, proof: dict[str, Any] | str) -> Groth16Proof:
        """Parse a snarkjs ``proof.json`` (dict or JSON text)."""
        d = json.loads(proof) if isinstance(proof, str) else proof
        return cls(_g1(d["pi_a"]), _g2(d["pi_b"]), _g1(d["pi_c"]))

    def to_snarkjs(self) -> dict[str, Any]:
        """A snarkjs ``proof.json`` dict (decimal strings, projective ``z = 1``)."""
        (x0, x1), (y0, y1) = self.b
        return {
            "pi_a": [str(self.a[0]), str(self.a[1]), "1"],
            "pi_b": [[str(x0), str(x1)], [str(y0), str(y1)], ["1", "0"]],
            "pi_c": [str(self.c[0]), str(self.c[1]), "1"],
            "protocol": "groth16",
            "curve": "bn128",
        }


@dataclass(frozen=True)
class VerifyingKeyData:
    """A Groth16 verifying key: ``alpha`` (G1), ``beta, gamma, delta`` (G2), ``ic`` (G1s)."""

    alpha: G1
    beta: G2
    gamma: G2
    delta: G2
    ic: tuple[G1, ...]

    @property
    def n_public(self) -> int:
        return len(self.ic) - 1

    @classmethod
    def from_snarkjs(cls, vk: dict[str, Any] | str) -> VerifyingKeyData:
        """Parse a snarkjs ``verification_key.json`` (groth16py's ``to_json`` writes one)."""
        d = json.loads(vk) if isinstance(vk, str) else vk
        if d.get("protocol", "groth16") != "groth16" or d.get("curve", "bn128") != "bn128":
            raise ZkError(
                "verifying key is not a Groth16 BN254 key; export it with snarkjs/groth16py"
            )
        return cls(
            _g1(d["vk_alpha_1"]),
            _g2(d["vk_beta_2"]),
            _g2(d["vk_gamma_2"]),
            _g2(d["vk_delta_2"]),
            tuple(_g1(p) for p in d["IC"]),
        )
