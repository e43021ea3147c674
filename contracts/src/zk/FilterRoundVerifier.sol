// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IRoundVerifier} from "../IRoundVerifier.sol";
import {Groth16Verifier} from "./Groth16Verifier.sol";
import {PoseidonT3} from "./PoseidonT3.sol";

/// @title FilterRoundVerifier
/// @notice Checks the Groth16 proof that a round's inlier mask follows a fixed robust-filter
///         rule over the trainers' committed sketches (`zk/circuits/filter.circom`: inlier
///         iff den * L1(sketch - coordinate-wise median) <= num * median distance).
/// @dev The rule, the circuit's slot count and the key are fixed at deployment, so the
///      aggregator cannot choose them. The one public input is computed exactly as
///      `zk/public_hash.py` specifies, with a constant number of hashes per round:
///        acc        = Poseidon chain over (commitment + slot), folded in `onCommitment`
///                     as trainers reveal (each pays for its own), seeded with project and round
///        flags      = active | mask << nMax | ruleNum << 2 nMax | ruleDen << (2 nMax + 16),
///                     active = revealed and not rejected (both from the market: a trainer is
///                     revealed when it opened its commitment in time; a rejection is public
///                     and disputable there)
///        publicHash = P2(P2(acc, flags), outputs)
///      `proof` = abi.encode(uint256[8] groth16, uint256 outputs), where outputs is the
///      Poseidon digest of the rule's results (median distance, inlier sketch sums) that the
///      round report publishes.
contract FilterRoundVerifier is IRoundVerifier {
    uint256 internal constant R =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;
    uint256 internal constant RULE_BITS = 16;
    /// @dev 2 * nMax mask bits plus the 32 rule bits must stay below the field's 253 bits.
    uint256 internal constant MAX_SLOTS = 110;
    uint256 internal constant PROOF_BYTES = 9 * 32;

    /// @notice The market whose rounds this verifier checks.
    address public immutable market;
    /// @notice The Groth16 verifier holding the circuit's verifying key.
    Groth16Verifier public immutable groth16;
    /// @notice The Poseidon(2) contract the chain and the public-hash fold use.
    PoseidonT3 public immutable poseidon;
    /// @notice Trainer slots of the circuit (trainer indices 0 .. nMax-1).
    uint256 public immutable nMax;
    /// @notice Sketch dimensions of the circuit.
    uint256 public immutable dim;
    /// @notice Bits per sketch value of the circuit.
    uint256 public immutable valueBits;
    /// @notice The rule: inlier iff ruleDen * dist <= ruleNum * median distance.
    uint256 public immutable ruleNum;
    uint256 public immutable ruleDen;

    /// @dev projectId => round => commitments chain (0 until the first commitment).
    mapping(uint256 => mapping(uint256 => uint256)) private _chain;

    /// @notice Trainer `index`'s commitment was folded; `accumulator` is the chain after it.
    ///         The events' order is the arrival order the prover needs.
    event CommitmentFolded(
        uint256 indexed projectId, uint256 indexed round, uint256 index, uint256 accumulator
    );

    error InvalidShape();
    error InvalidRule();
    error NotMarket(address caller);
    error SlotOutOfRange(uint256 index, uint256 nMax);
    error CommitmentNotInField(bytes32 commitment);
    error IdsTooLarge(uint256 projectId, uint256 round);

    constructor(
        address market_,
        address groth16_,
        address poseidon_,
        uint256 nMax_,
        uint256 dim_,
        uint256 valueBits_,
        uint256 ruleNum_,
        uint256 ruleDen_
    ) {
        if (nMax_ == 0 || nMax_ > MAX_SLOTS || dim_ == 0 || dim_ > 128) revert InvalidShape();
        if (valueBits_ < 8 || valueBits_ > 64) revert InvalidShape();
        if (ruleDen_ == 0 || ruleDen_ >= 1 << RULE_BITS || ruleNum_ >= 1 << RULE_BITS) {
            revert InvalidRule();
        }
        market = market_;
        groth16 = Groth16Verifier(groth16_);
        poseidon = PoseidonT3(poseidon_);
        nMax = nMax_;
        dim = dim_;
        valueBits = valueBits_;
        ruleNum = ruleNum_;
        ruleDen = ruleDen_;
    }

    /// @inheritdoc IRoundVerifier
    /// @dev Reverts for a trainer beyond the circuit's slots or a commitment that is not a
    ///      non-zero field element: such a round could never be proved, so the trainer learns
    ///      it now instead of the round failing later.
    function onCommitment(uint256 projectId, uint256 round, uint256 index, bytes32 sketchCommitment)
        external
    {
        if (msg.sender != market) revert NotMarket(msg.sender);
        if (index >= nMax) revert SlotOutOfRange(index, nMax);
        uint256 c = uint256(sketchCommitment);
        if (c == 0 || c >= R) revert CommitmentNotInField(sketchCommitment);
        uint256 acc = _chain[projectId][round];
        if (acc == 0) acc = _seed(projectId, round);
        acc = poseidon.hash(acc, addmod(c, index, R));
        _chain[projectId][round] = acc;
        emit CommitmentFolded(projectId, round, index, acc);
    }

    /// @inheritdoc IRoundVerifier
    function maxTrainers() external view returns (uint256) {
        return nMax;
    }

    /// @notice The round's commitments chain (the seed while nobody has committed).
    function accumulator(uint256 projectId, uint256 round) external view returns (uint256) {
        uint256 acc = _chain[projectId][round];
        return acc == 0 ? _seed(projectId, round) : acc;
    }

    /// @inheritdoc IRoundVerifier
    function verifyRound(
        uint256 projectId,
        uint256 round,
        uint256[] calldata revealedMask,
        uint256[] calldata inlierMask,
        uint256[] calldata rejectedMask,
        bytes calldata proof
    ) external view returns (bool ok) {
        if (proof.length != PROOF_BYTES) return false;
        (uint256[8] memory p, uint256 outputs) = abi.decode(proof, (uint256[8], uint256));
        (bool fits, uint256 h) =
            publicHash(projectId, round, revealedMask, inlierMask, rejectedMask, outputs);
        if (!fits) return false;
        return groth16.verify(p, h);
    }

    /// @notice The proof's public input for a round (`zk/public_hash.py` computes the same).
    /// @return fits false when the round cannot be expressed by this circuit (nobody
    ///         revealed, a trainer index >= nMax, an inlier that is not active, an outputs
    ///         digest that is not a field element)
    function publicHash(
        uint256 projectId,
        uint256 round,
        uint256[] calldata revealedMask,
        uint256[] calldata inlierMask,
        uint256[] calldata rejectedMask,
        uint256 outputs
    ) public view returns (bool fits, uint256 h) {
        uint256 acc = _chain[projectId][round];
        if (acc == 0 || outputs >= R) return (false, 0);
        uint256 n = nMax;
        uint256 revealed = _word0(revealedMask);
        uint256 mask = _word0(inlierMask);
        uint256 rejected = _word0(rejectedMask);
        if ((revealed | mask | rejected) >> n != 0) return (false, 0);
        uint256 active = revealed & ~rejected;
        if (mask & ~active != 0) return (false, 0);
        uint256 flags =
            active | (mask << n) | (ruleNum << (2 * n)) | (ruleDen << (2 * n + RULE_BITS));
        PoseidonT3 hasher = poseidon;
        return (true, hasher.hash(hasher.hash(acc, flags), outputs));
    }

    function _seed(uint256 projectId, uint256 round) private pure returns (uint256) {
        if (projectId >> 128 != 0 || round >> 64 != 0) revert IdsTooLarge(projectId, round);
        return projectId | (round << 128);
    }

    /// @dev Word 0 of a bitmap whose other words must be zero; max uint when they are not
    ///      (a bit at index >= 256 > nMax, which the caller then rejects).
    function _word0(uint256[] calldata words) private pure returns (uint256) {
        for (uint256 w = 1; w < words.length; ++w) {
            if (words[w] != 0) return type(uint256).max;
        }
        return words.length == 0 ? 0 : words[0];
    }
}
