// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IRoundVerifier} from "../IRoundVerifier.sol";
import {Groth16Verifier} from "./Groth16Verifier.sol";
import {PoseidonT3} from "./PoseidonT3.sol";

/// @notice The market views this verifier reads (ContributionMarket's ABI).
interface IMarketRounds {
    function getCommitment(uint256 projectId, uint256 round, uint256 index)
        external
        view
        returns (bytes32 cidDigest, bytes32 sketchCommitment);

    function committedMask(uint256 projectId, uint256 round)
        external
        view
        returns (uint256[] memory words, bytes32 commitmentsDigest, uint32 commitCount);
}

/// @title FilterRoundVerifier
/// @notice Checks the Groth16 proof that a round's inlier mask follows a fixed robust-filter
///         rule over the trainers' committed sketches (`zk/circuits/filter.circom`: inlier
///         iff den * L1(sketch - coordinate-wise median) <= num * median distance).
/// @dev The rule, the circuit's slot count and the key are fixed at deployment, so the
///      aggregator cannot choose them. The one public input is recomputed here exactly as
///      `zk/public_hash.py` folds it, from values the market holds:
///        active[i]  = committed[i] and not rejected[i]   (market masks; rejected is bound
///                     through resultDigest, so dropping a trainer is a public claim)
///        acc        = Poseidon2 chain over the active slots' sketch commitments
///        publicHash = P2(P2(P2(P2(P2(acc, projectId), round), flags), ruleWord), sums)
///      `proof` = abi.encode(uint256[8] groth16, uint256 medianDistance, uint256 sumsDigest,
///      bytes32 globalModelCid, bytes32 reportCid, uint256[] rejectedMask, uint128[] scores);
///      the last four are the preimage of the market's resultDigest.
contract FilterRoundVerifier is IRoundVerifier {
    uint256 internal constant R =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;
    uint256 internal constant RULE_BITS = 16;

    /// @notice The market whose rounds this verifier checks.
    IMarketRounds public immutable market;
    /// @notice The Groth16 verifier holding the circuit's verifying key.
    Groth16Verifier public immutable groth16;
    /// @notice The Poseidon(2) contract the public-hash fold uses.
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
    /// @notice Bits of an L1 distance (valueBits + bitlen(dim)); larger medians are invalid.
    uint256 public immutable distanceBits;

    error InvalidShape();
    error InvalidRule();

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
        if (nMax_ == 0 || nMax_ > 126 || dim_ == 0 || dim_ > 128) revert InvalidShape();
        if (valueBits_ < 8 || valueBits_ > 64) revert InvalidShape();
        if (ruleDen_ == 0 || ruleDen_ >= 1 << RULE_BITS || ruleNum_ >= 1 << RULE_BITS) {
            revert InvalidRule();
        }
        market = IMarketRounds(market_);
        groth16 = Groth16Verifier(groth16_);
        poseidon = PoseidonT3(poseidon_);
        nMax = nMax_;
        dim = dim_;
        valueBits = valueBits_;
        ruleNum = ruleNum_;
        ruleDen = ruleDen_;
        uint256 dimBits = 0;
        while ((1 << dimBits) <= dim_) ++dimBits;
        distanceBits = valueBits_ + dimBits;
    }

    /// @inheritdoc IRoundVerifier
    function verifyRound(
        uint256 projectId,
        uint256 round,
        bytes32, /* commitmentsDigest: the commitments are read per slot instead */
        uint256[] calldata inlierMask,
        bytes32 resultDigest,
        bytes calldata proof
    ) external view returns (bool ok) {
        (
            uint256[8] memory p,
            uint256 medianDistance,
            uint256 sumsDigest,
            bytes32 globalModelCid,
            bytes32 reportCid,
            uint256[] memory rejectedMask,
            uint128[] memory scores
        ) = abi.decode(proof, (uint256[8], uint256, uint256, bytes32, bytes32, uint256[], uint128[]));
        if (keccak256(abi.encode(globalModelCid, reportCid, rejectedMask, scores)) != resultDigest) {
            return false;
        }
        (bool fits, uint256 h) =
            _publicHash(projectId, round, inlierMask, rejectedMask, medianDistance, sumsDigest);
        if (!fits) return false;
        return groth16.verify(p, h);
    }

    /// @notice The proof's public input for a round, from the market's state and the given
    ///         masks and proof values (`zk/onchain.py` computes the same off-chain).
    /// @return fits false when the round cannot be expressed by this circuit (a trainer
    ///         index >= nMax, a commitment that is 0 or not a field element, a value too big)
    function publicHash(
        uint256 projectId,
        uint256 round,
        uint256[] calldata inlierMask,
        uint256[] calldata rejectedMask,
        uint256 medianDistance,
        uint256 sumsDigest
    ) external view returns (bool fits, uint256 h) {
        return _publicHash(projectId, round, inlierMask, rejectedMask, medianDistance, sumsDigest);
    }

    function _publicHash(
        uint256 projectId,
        uint256 round,
        uint256[] memory inlierMask,
        uint256[] memory rejectedMask,
        uint256 medianDistance,
        uint256 sumsDigest
    ) internal view returns (bool, uint256) {
        if (projectId >= R || round >= R || sumsDigest >= R) return (false, 0);
        if (medianDistance >> distanceBits != 0) return (false, 0);
        (uint256[] memory committed,,) = market.committedMask(projectId, round);
        uint256 n = nMax;
        uint256 slots = (uint256(1) << n) - 1;
        uint256 active = committed.length == 0 ? 0 : committed[0];
        for (uint256 w = 1; w < committed.length; ++w) {
            if (committed[w] != 0) return (false, 0);
        }
        if (active & ~slots != 0) return (false, 0);
        uint256 mask = _word0(inlierMask);
        if (mask == type(uint256).max) return (false, 0);
        uint256 rejected = _word0(rejectedMask);
        if (rejected == type(uint256).max) return (false, 0);
        active &= ~rejected;
        if (mask & ~active != 0) return (false, 0);

        PoseidonT3 hasher = poseidon;
        uint256 acc = 0;
        for (uint256 i = 0; i < n; ++i) {
            if ((active >> i) & 1 == 0) continue;
            (, bytes32 c) = market.getCommitment(projectId, round, i);
            uint256 commitment = uint256(c);
            if (commitment == 0 || commitment >= R) return (false, 0);
            acc = hasher.hash(acc, commitment);
        }
        uint256 h = hasher.hash(acc, projectId);
        h = hasher.hash(h, round);
        h = hasher.hash(h, active | (mask << n));
        h = hasher.hash(
            h, ruleNum | (ruleDen << RULE_BITS) | (medianDistance << (2 * RULE_BITS))
        );
        h = hasher.hash(h, sumsDigest);
        return (true, h);
    }

    /// @dev Word 0 of a bitmap whose other words must be zero; max uint when they are not
    ///      (a bit at index >= 256 > nMax, which no circuit slot can express).
    function _word0(uint256[] memory words) private pure returns (uint256) {
        for (uint256 w = 1; w < words.length; ++w) {
            if (words[w] != 0) return type(uint256).max;
        }
        return words.length == 0 ? 0 : words[0];
    }
}
