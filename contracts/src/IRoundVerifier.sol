// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IRoundVerifier
/// @notice A per-project hook that checks a proof that a round's inlier mask follows the
///         project's declared filtering rule. `ContributionMarket` calls it when the project
///         names a verifier; address(0) means no proof.
/// @dev Two calls: `onCommitment` as each trainer's hidden commitment is opened (revealed)
///      and the trainer becomes active, so a verifier can fold the round's sketch
///      commitments while they arrive (each trainer pays for its own, and verifying a round
///      then costs the same for any number of trainers); `verifyRound` from `commitRound`.
///      Which trainers are active is the market's decision (opened in time, first
///      committer of its CID), never the prover's.
interface IRoundVerifier {
    /// @notice The market recorded trainer `index`'s opened sketch commitment for `round`
    ///         (after its own state change and event). Must revert for any caller other
    ///         than the market.
    /// @param sketchCommitment the trainer's commitment to its update's sketch
    function onCommitment(uint256 projectId, uint256 round, uint256 index, bytes32 sketchCommitment)
        external;

    /// @notice The most trainers a project checked by this verifier may register (the
    ///         circuit's slots): the market refuses registrations beyond it.
    function maxTrainers() external view returns (uint256);

    /// @param projectId the project whose round is being committed
    /// @param round the 1-based round number
    /// @param revealedMask bitmap words of the trainers that opened a valid commitment in
    ///        time this round and were not excluded (market state)
    /// @param inlierMask bitmap words over trainer indices (bit i of word i/256)
    /// @param rejectedMask bitmap words of revealed trainers whose update was rejected
    ///        (public, disputable in the market)
    /// @param proof backend-specific proof bytes
    /// @return ok true iff the proof is valid for exactly these public values
    function verifyRound(
        uint256 projectId,
        uint256 round,
        uint256[] calldata revealedMask,
        uint256[] calldata inlierMask,
        uint256[] calldata rejectedMask,
        bytes calldata proof
    ) external view returns (bool ok);
}
