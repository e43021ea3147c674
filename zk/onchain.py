"""The filter proof in the form the chain takes it: payload encoding, the prover, keys.

``FilterRoundVerifier`` (``contracts/src/zk``) is the project's ``IRoundVerifier``. As each
trainer reveals, the market calls its ``onCommitment``, which folds the commitment into the
round's Poseidon chain (:func:`zk.public_hash.commitments_accumulator`, arrival order, one
``CommitmentFolded`` event each). ``commitRound`` then hands it the committed, inlier and
rejected masks and ``proof`` = ``abi.encode(uint256[8] groth16, uint256 outputs)``
(:class:`RoundProofPayload`); it folds the public input with two Poseidon hashes, whatever
the number of trainers, and checks the Groth16 proof (key in ``Groth16Verifier``'s
immutables).

Slot ``i`` of the circuit is trainer index ``i``; a circuit with ``n_max`` slots serves
projects of at most ``n_max`` trainers (the market reads the verifier's ``maxTrainers`` at
project creation and refuses registrations beyond it).

This module is pure (``zk`` is a library that never talks to a chain): deploying the
verifier stack, reading it back, the pre-stake checks and the off-chain re-verification of
a committed round are in :mod:`marketplace.chain.verifier`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode

from marketplace.errors import ZkError
from zk.build import build_dir
from zk.filter_rule import FilterRule
from zk.proof import Groth16Proof, VerifyingKeyData
from zk.shape import CircuitShape
from zk.witness import RoundStatement, build_round

PAYLOAD_TYPES = ("uint256[8]", "uint256")


# --------------------------------------------------------------------------- encoding


@dataclass(frozen=True)
class RoundProofPayload:
    """What ``FilterRoundVerifier`` decodes from ``RoundResult.proof``."""

    proof: Groth16Proof
    outputs: int

    def to_bytes(self) -> bytes:
        return bytes(abi_encode(PAYLOAD_TYPES, (self.proof.words(), self.outputs)))

    @classmethod
    def from_bytes(cls, data: bytes) -> RoundProofPayload:
        try:
            words, outputs = abi_decode(PAYLOAD_TYPES, data)
        except Exception as exc:  # eth_abi raises several decoding error types
            raise ZkError(f"round proof bytes do not decode ({exc}); re-encode them") from exc
        blob = b"".join(int(w).to_bytes(32, "big") for w in words)
        return cls(Groth16Proof.from_bytes(blob), int(outputs))


@dataclass(frozen=True)
class RoundProof:
    """A proved round: the Groth16 proof and the public statement it is about."""

    proof: Groth16Proof
    statement: RoundStatement

    def inlier_mask(self, trainer_count: int) -> list[bool]:
        """The proved mask over the project's trainer indices (for ``commit_round``)."""
        _check_count(self.statement.shape, trainer_count)
        return [bool(m) for m in self.statement.mask[:trainer_count]]

    def rejected_mask(self, committed: Sequence[bool]) -> list[bool]:
        """Trainers revealed (``committed`` here: the market's revealed mask) but not active
        in the proof: they must be reported rejected in the same ``commitRound`` (the
        contract derives active = revealed and not rejected)."""
        _check_count(self.statement.shape, len(committed))
        return [bool(c) and not self.statement.active[i] for i, c in enumerate(committed)]

    def to_bytes(self) -> bytes:
        """The ``proof`` argument of ``commitRound``."""
        return RoundProofPayload(self.proof, self.statement.outputs).to_bytes()


def _check_count(shape: CircuitShape, trainer_count: int) -> None:
    if trainer_count > shape.n_max:
        raise ZkError(
            f"{trainer_count} trainers exceed the circuit's {shape.n_max} slots; "
            "deploy a verifier for a larger shape"
        )


# --------------------------------------------------------------------------- proving


def keys_folder(shape: CircuitShape, keys_dir: Path | None = None) -> Path:
    """Where the groth16py keys of ``shape`` live (``ledgerlearn zk setup`` makes them)."""
    return keys_dir if keys_dir is not None else build_dir(shape) / "groth16py"


class RoundProver:
    """Proves rounds of one circuit shape with cached groth16py keys (set up on first use)."""

    def __init__(self, shape: CircuitShape, keys_dir: Path | None = None) -> None:
        from zk.prover import Groth16pyProver

        self.shape = shape
        self.backend = Groth16pyProver(shape, keys_folder(shape, keys_dir))

    def prove_round(
        self,
        project_id: int,
        round_index: int,
        sketches: Sequence[Sequence[int] | None],
        salts: Sequence[int],
        rule: FilterRule | None = None,
        onchain_commitments: Sequence[int | None] | None = None,
        arrival: Sequence[int] | None = None,
    ) -> RoundProof:
        """Prove the rule's mask for trainer slots ``0..len(sketches)-1``.

        ``sketches[i]`` is trainer ``i``'s signed sketch, or ``None`` when it did not commit
        or is rejected. ``rule`` must be the deployed verifier's. ``onchain_commitments``
        (read from the market; None = did not commit) are needed when a committed trainer is
        rejected, since its commitment is still in the chain; a trainer whose sketch and salt
        do not open its commitment is reported here, by index, so the aggregator can reject
        it instead of failing. ``arrival`` is the commit order, read from the verifier's
        events (``marketplace.chain.verifier.arrival_order``).
        """
        rule = rule or FilterRule()
        commitments = None
        if onchain_commitments is not None:
            check_openings(self.shape, sketches, salts, onchain_commitments)
            commitments = [c or 0 for c in onchain_commitments]
        inputs, statement = build_round(
            self.shape,
            project_id=project_id,
            round_index=round_index,
            sketches=sketches,
            salts=salts,
            rule=rule,
            commitments=commitments,
            arrival=arrival,
        )
        return RoundProof(self.backend.prove(inputs), statement)

    def verifying_key(self) -> VerifyingKeyData:
        return self.backend.verifying_key()


def check_openings(
    shape: CircuitShape,
    sketches: Sequence[Sequence[int] | None],
    salts: Sequence[int],
    commitments: Sequence[int | None],
) -> None:
    """Raise naming the first active trainer whose (sketch, salt) misses its commitment."""
    from zk.sketch import sketch_commitment

    for i, (s, salt) in enumerate(zip(sketches, salts, strict=True)):
        if s is None:
            continue
        onchain = commitments[i] if i < len(commitments) else None
        if onchain is None or sketch_commitment(s, salt, shape.value_bits) != onchain:
            raise ZkError(
                f"trainer {i}'s sketch and salt do not open its on-chain commitment; "
                "reject that trainer (sketch None) and prove again"
            )


# --------------------------------------------------------------------------- deployment


def load_verifying_key(shape: CircuitShape, keys_dir: Path | None = None) -> VerifyingKeyData:
    """The cached verifying key of ``shape`` (snarkjs JSON format, any backend's folder)."""
    path = keys_folder(shape, keys_dir) / "verification_key.json"
    if not path.is_file():
        raise ZkError(
            f"no verifying key for {shape.name} at {path.parent}; run "
            f"`ledgerlearn zk setup --shape {shape.n_max}x{shape.dim}` first"
        )
    vk = VerifyingKeyData.from_snarkjs(path.read_text())
    if vk.n_public != 1:
        raise ZkError(f"the key has {vk.n_public} public inputs; the filter circuit has one")
    return vk


def groth16_constructor_args(vk: VerifyingKeyData) -> tuple[Any, ...]:
    """``Groth16Verifier`` constructor arguments (G2 in the EVM's (c1, c0) word order)."""

    def g2(p: tuple[tuple[int, int], tuple[int, int]]) -> list[list[int]]:
        (x0, x1), (y0, y1) = p
        return [[x1, x0], [y1, y0]]

    if vk.n_public != 1:
        raise ZkError(f"Groth16Verifier takes one public input; this key has {vk.n_public}")
    return (
        list(vk.alpha),
        g2(vk.beta),
        g2(vk.gamma),
        g2(vk.delta),
        [list(vk.ic[0]), list(vk.ic[1])],
    )


def vk_from_words(words: Sequence[int]) -> VerifyingKeyData:
    """Inverse of the contract's ``verifyingKey()`` (18 words, constructor order)."""
    w = [int(x) for x in words]
    if len(w) != 18:
        raise ZkError(f"a one-input verifying key has 18 words, got {len(w)}")

    def g2(k: int) -> tuple[tuple[int, int], tuple[int, int]]:
        return ((w[k + 1], w[k]), (w[k + 3], w[k + 2]))

    return VerifyingKeyData((w[0], w[1]), g2(2), g2(6), g2(10), ((w[14], w[15]), (w[16], w[17])))


@dataclass(frozen=True)
class VerifierConfig:
    """What a deployed ``FilterRoundVerifier`` fixes, read back from the chain."""

    address: str
    groth16: str
    shape: CircuitShape
    rule: FilterRule
    vk: VerifyingKeyData
