"""Solidity verifier for the filter proof, exported from the verifying key.

groth16py's emitter writes the canonical snarkjs-style contract (a template substitution
of the audited Reitwiessner/OKIMS verifier), general over any BN254 key::

    function verifyProof(uint256[2] a, uint256[2][2] b, uint256[2] c, uint256[1] input)
        public view returns (bool)

Calldata: ``a = [A.x, A.y]``, ``b = [[B.x.c1, B.x.c0], [B.y.c1, B.y.c0]]`` (Ethereum Fp2 order,
swapped from snarkjs JSON), ``c = [C.x, C.y]``, ``input = [publicHash]``; see
:meth:`zk.proof.Groth16Proof.solidity_args`. It reverts on coordinates ``>= q`` or an input
``>= r`` and returns ``false`` for a failed pairing; call it with explicit gas
(docs/architecture.md: a precompile out of gas also returns ``false``).
"""

from __future__ import annotations

from pathlib import Path

#: solc version the repository pins (package.json: solc 0.8.28).
SOLIDITY_PRAGMA = "^0.8.28"


def solidity_verifier(vk_json: str, contract_name: str = "FilterVerifier") -> str:
    """Verifier contract source for a snarkjs-format verifying key (JSON text)."""
    import groth16py

    vk = groth16py.VerifyingKey.from_snarkjs(vk_json)
    source = vk.to_solidity(pragma=SOLIDITY_PRAGMA, contract_name=contract_name, style="snarkjs")
    return str(source)


def write_solidity_verifier(
    vk_json: str, path: Path, contract_name: str = "FilterVerifier"
) -> Path:
    """Write the verifier source to ``path`` (for the contracts build) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(solidity_verifier(vk_json, contract_name))
    return path
