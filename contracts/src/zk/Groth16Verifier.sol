// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Groth16Verifier
/// @notice Groth16 (Groth, "On the Size of Pairing-based Non-interactive Arguments",
///         EUROCRYPT 2016) on BN254 for circuits with ONE public input, the verifying key
///         given at deployment and kept in immutables: one compiled artifact serves every
///         key, so nothing is compiled when a circuit is set up.
/// @dev Accepts iff e(-A, B) e(alpha, beta) e(vk_x, gamma) e(C, delta) = 1 with
///      vk_x = IC0 + input * IC1, one EIP-197 pairing call over four pairs. G2 points use
///      the EVM's Fp2 word order (c1, c0), swapped from snarkjs JSON. Coordinates >= q and
///      an input >= r return false (otherwise x and x + r would both verify). Precompiles
///      are called with explicit gas; too little gas for the pairing reverts rather than
///      returning a false `false` (ARCHITECTURE.md: a precompile out of gas returns false).
contract Groth16Verifier {
    uint256 internal constant R =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;
    uint256 internal constant Q =
        21888242871839275222246405745257275088696311157297823662689037894645226208583;
    /// @dev EIP-1108 prices: ecAdd 150, ecMul 6000, pairing 45000 + 34000 per pair.
    uint256 internal constant EC_ADD_GAS = 150;
    uint256 internal constant EC_MUL_GAS = 6000;
    uint256 internal constant PAIRING_GAS = 45000 + 4 * 34000;

    uint256 internal immutable ALPHA_X;
    uint256 internal immutable ALPHA_Y;
    uint256 internal immutable BETA_X1;
    uint256 internal immutable BETA_X0;
    uint256 internal immutable BETA_Y1;
    uint256 internal immutable BETA_Y0;
    uint256 internal immutable GAMMA_X1;
    uint256 internal immutable GAMMA_X0;
    uint256 internal immutable GAMMA_Y1;
    uint256 internal immutable GAMMA_Y0;
    uint256 internal immutable DELTA_X1;
    uint256 internal immutable DELTA_X0;
    uint256 internal immutable DELTA_Y1;
    uint256 internal immutable DELTA_Y0;
    uint256 internal immutable IC0_X;
    uint256 internal immutable IC0_Y;
    uint256 internal immutable IC1_X;
    uint256 internal immutable IC1_Y;

    error NotEnoughGasForPairing(uint256 needed, uint256 left);
    error PrecompileFailed(uint256 precompile);

    /// @param alpha vk alpha (G1)
    /// @param beta vk beta (G2, [[x.c1, x.c0], [y.c1, y.c0]])
    /// @param gamma vk gamma (G2, same order)
    /// @param delta vk delta (G2, same order)
    /// @param ic vk IC[0], IC[1] (G1): the circuit has exactly one public input
    constructor(
        uint256[2] memory alpha,
        uint256[2][2] memory beta,
        uint256[2][2] memory gamma,
        uint256[2][2] memory delta,
        uint256[2][2] memory ic
    ) {
        (ALPHA_X, ALPHA_Y) = (alpha[0], alpha[1]);
        (BETA_X1, BETA_X0, BETA_Y1, BETA_Y0) = (beta[0][0], beta[0][1], beta[1][0], beta[1][1]);
        (GAMMA_X1, GAMMA_X0, GAMMA_Y1, GAMMA_Y0) =
            (gamma[0][0], gamma[0][1], gamma[1][0], gamma[1][1]);
        (DELTA_X1, DELTA_X0, DELTA_Y1, DELTA_Y0) =
            (delta[0][0], delta[0][1], delta[1][0], delta[1][1]);
        (IC0_X, IC0_Y, IC1_X, IC1_Y) = (ic[0][0], ic[0][1], ic[1][0], ic[1][1]);
    }

    /// @notice The verifying key, in constructor-argument order (for audits: `zk verify`).
    function verifyingKey() external view returns (uint256[18] memory k) {
        k = [
            ALPHA_X,
            ALPHA_Y,
            BETA_X1,
            BETA_X0,
            BETA_Y1,
            BETA_Y0,
            GAMMA_X1,
            GAMMA_X0,
            GAMMA_Y1,
            GAMMA_Y0,
            DELTA_X1,
            DELTA_X0,
            DELTA_Y1,
            DELTA_Y0,
            IC0_X,
            IC0_Y,
            IC1_X,
            IC1_Y
        ];
    }

    /// @notice snarkjs-compatible entry point: true iff the proof is valid for `input`.
    function verifyProof(
        uint256[2] calldata a,
        uint256[2][2] calldata b,
        uint256[2] calldata c,
        uint256[1] calldata input
    ) external view returns (bool) {
        return verify([a[0], a[1], b[0][0], b[0][1], b[1][0], b[1][1], c[0], c[1]], input[0]);
    }

    /// @notice The same check with the proof as 8 words: A.x A.y B.x.c1 B.x.c0 B.y.c1 B.y.c0
    ///         C.x C.y (the 256-byte Ethereum layout of `zk/proof.py`).
    function verify(uint256[8] memory p, uint256 input) public view returns (bool) {
        if (input >= R) return false;
        for (uint256 i = 0; i < 8; ++i) {
            if (p[i] >= Q) return false;
        }
        if (gasleft() < PAIRING_GAS + EC_MUL_GAS + EC_ADD_GAS + 5000) {
            revert NotEnoughGasForPairing(PAIRING_GAS + EC_MUL_GAS + EC_ADD_GAS + 5000, gasleft());
        }
        uint256[24] memory w;
        // vk_x = IC0 + input * IC1
        uint256[3] memory mulIn = [IC1_X, IC1_Y, input];
        uint256[2] memory prod;
        bool ok;
        assembly ("memory-safe") {
            ok := staticcall(EC_MUL_GAS, 0x07, mulIn, 0x60, prod, 0x40)
        }
        if (!ok) revert PrecompileFailed(7);
        uint256[4] memory addIn = [IC0_X, IC0_Y, prod[0], prod[1]];
        assembly ("memory-safe") {
            ok := staticcall(EC_ADD_GAS, 0x06, addIn, 0x80, prod, 0x40)
        }
        if (!ok) revert PrecompileFailed(6);
        // (-A, B)
        w[0] = p[0];
        w[1] = p[1] == 0 ? 0 : Q - p[1];
        (w[2], w[3], w[4], w[5]) = (p[2], p[3], p[4], p[5]);
        // (alpha, beta)
        (w[6], w[7]) = (ALPHA_X, ALPHA_Y);
        (w[8], w[9], w[10], w[11]) = (BETA_X1, BETA_X0, BETA_Y1, BETA_Y0);
        // (vk_x, gamma)
        (w[12], w[13]) = (prod[0], prod[1]);
        (w[14], w[15], w[16], w[17]) = (GAMMA_X1, GAMMA_X0, GAMMA_Y1, GAMMA_Y0);
        // (C, delta)
        (w[18], w[19]) = (p[6], p[7]);
        (w[20], w[21], w[22], w[23]) = (DELTA_X1, DELTA_X0, DELTA_Y1, DELTA_Y0);
        uint256[1] memory out;
        assembly ("memory-safe") {
            ok := staticcall(PAIRING_GAS, 0x08, w, 0x300, out, 0x20)
        }
        // A failed call here means a point off the curve or outside G2's subgroup: the gas
        // was checked above, so it is an invalid proof, not an out-of-gas.
        return ok && out[0] == 1;
    }
}
