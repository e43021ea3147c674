// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IRoundVerifier
/// @notice A per-project hook that checks a proof that a round's inlier mask follows the
///         project's declared filtering rule. `ContributionMarket` calls it when the project
///         names a verifier; address(0) means no proof.
/// @dev Two calls: `onCommitment` as each trainer commits, so a verifier can fold the round's
///      commitments while they arrive (each trainer pays for its own, and verifying a round
///      then costs the same for any number of trainers); `verifyRound` from `commitRound`.
interface IRoundVerifier {
    /// @notice The market recorded trainer `index`'s commitment for `round` (after its own
    ///         state change and event). Must revert for any caller other than the market.
    /// @param sketchCommitment the trainer's commitment to its update's sketch
    function onCommitment(uint256 projectId, uint256 round, uint256 index, bytes32 sketchCommitment)
        external;

    /// @param projectId the project whose round is being committed
    /// @param round the 1-based round number
    /// @param committedMask bitmap words of the trainers that committed this round (market state)
    /// @param inlierMask bitmap words over trainer indices (bit i of word i/256)
    /// @param rejectedMask bitmap words of committed trainers whose update was rejected
    /// @param proof backend-specific proof bytes
    /// @return ok true iff the proof is valid for exactly these public values
    function verifyRound(
        uint256 projectId,
        uint256 round,
        uint256[] calldata committedMask,
        uint256[] calldata inlierMask,
        uint256[] calldata rejectedMask,
        bytes calldata proof
    ) external view returns (bool ok);
}
