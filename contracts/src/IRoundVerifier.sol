// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IRoundVerifier
/// @notice A per-project hook that checks a proof that a round's inlier mask follows the
///         project's declared filtering rule. `ContributionMarket` calls it from
///         `commitRound` when the project names a verifier; address(0) means no proof.
/// @dev The verifier is a `view` function: it cannot change state or re-enter the market.
interface IRoundVerifier {
    /// @param projectId the project whose round is being committed
    /// @param round the 1-based round number
    /// @param commitmentsDigest keccak256 over the round's (trainer index, sketch commitment)
    ///        pairs in trainer-index order, as stored by the market
    /// @param inlierMask bitmap words over trainer indices (bit i of word i/256)
    /// @param resultDigest keccak256 of the round result (global model CID, scores, report)
    /// @param proof backend-specific proof bytes
    /// @return ok true iff the proof is valid for exactly these public values
    function verifyRound(
        uint256 projectId,
        uint256 round,
        bytes32 commitmentsDigest,
        uint256[] calldata inlierMask,
        bytes32 resultDigest,
        bytes calldata proof
    ) external view returns (bool ok);
}
