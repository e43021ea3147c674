// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {IRoundVerifier} from "./IRoundVerifier.sol";

/// @title ContributionMarket
/// @notice Escrowed federated-learning projects: an owner escrows a reward, trainers stake
///         to register, commit content-addressed model updates each round, and an
///         aggregator commits each round's result (global model, inlier mask, contribution
///         scores) in one transaction, optionally checked by a zero-knowledge verifier.
///         After the last round (or when the aggregator vanishes) the project is finalized
///         and every trainer pulls its stake plus `reward * score / totalScore`.
/// @dev Money only moves in `withdraw` and `reclaim` (pull payments, checks-effects-
///      interactions, non-reentrant); both are O(1) whatever the number of trainers.
///      Deadlines: trainers commit within `roundDuration` of a round opening; the aggregator
///      must commit the round within `2 * roundDuration`, after which any stakeholder can
///      finalize, so no party can lock the others' money by disappearing.
contract ContributionMarket is EIP712, ReentrancyGuard {
    using SafeCast for uint256;

    // ---------------------------------------------------------------- constants

    /// @notice Largest number of rounds a project may declare.
    uint32 public constant MAX_ROUNDS = 10_000;
    /// @notice Largest number of trainers per project (bounds mask and score arrays).
    uint32 public constant MAX_TRAINERS = 4096;
    /// @notice Longest round a project may declare.
    uint64 public constant MAX_ROUND_DURATION = 365 days;
    /// @notice Longest endpoint URL a trainer may announce.
    uint256 public constant MAX_ENDPOINT_LENGTH = 256;

    bytes32 private constant UPDATE_TYPEHASH = keccak256(
        "UpdateCommitment(uint256 projectId,uint256 round,bytes32 cidDigest,bytes32 sketchCommitment)"
    );

    // ---------------------------------------------------------------- types

    enum Status {
        None,
        Open,
        Finalized,
        Cancelled
    }

    /// @notice What the owner declares when creating a project.
    struct ProjectParams {
        address aggregator;
        address verifier; // IRoundVerifier, or address(0) when no proof is required
        uint32 rounds;
        uint64 roundDuration; // seconds
        uint96 minStake; // wei
        bytes32 modelSpecCid; // sha2-256 digest of the model-spec CID (CIDv1 raw)
        bytes32 validationCommitment; // commitment to the owner's validation set
    }

    struct Project {
        address owner;
        uint64 roundDuration;
        uint32 rounds;
        address aggregator;
        uint32 roundsCommitted;
        uint32 trainerCount;
        Status status;
        address verifier;
        uint96 minStake;
        uint128 reward;
        uint128 rewardPaid;
        uint128 totalScore;
        uint64 roundOpenedAt;
        uint32 scoredTrainers;
        uint32 paidTrainers;
        uint128 stakeHeld;
        uint128 ownerReclaimed;
        bytes32 modelSpecCid;
        bytes32 validationCommitment;
        bytes32 globalModelCid;
    }

    /// @dev Slot 2 is kept non-zero from registration on (status), so score updates in
    ///      commitRound are cheap non-zero to non-zero writes.
    struct Trainer {
        address account;
        uint96 stake;
        uint128 score;
        uint64 joinedRound;
        uint8 status; // 1 = registered, 2 = withdrawn
    }

    /// @notice A trainer's EIP-712 signed commitment, batched on-chain by the aggregator.
    struct SignedUpdate {
        address trainer;
        bytes32 cidDigest;
        bytes32 sketchCommitment;
        bytes signature;
    }

    /// @notice Everything the aggregator commits for one round.
    struct RoundResult {
        uint32 round;
        bytes32 globalModelCid; // digest of the new global model's CID
        bytes32 reportCid; // digest of the round report (hyper-parameters, rejection reasons)
        uint256[] inlierMask; // bitmap over trainer indices
        uint256[] rejectedMask; // malformed updates (bad shape, NaN, CID mismatch)
        uint128[] scores; // one per inlier, in ascending trainer-index order
        bytes proof; // passed to the project's verifier; empty when none
    }

    struct RoundState {
        // running keccak over (index, cid, sketch) in commit order: the commitments
        // themselves live in UpdateCommitted events (storing them cost 44k gas per trainer)
        bytes32 commitmentsDigest;
        uint32 commitCount;
    }

    // ---------------------------------------------------------------- storage

    uint256 public projectCount;
    mapping(uint256 projectId => Project) private _projects;
    mapping(uint256 projectId => mapping(uint256 index => Trainer)) private _trainers;
    mapping(uint256 projectId => mapping(address account => uint256 indexPlusOne)) private
        _trainerIndex;
    mapping(uint256 projectId => mapping(uint256 round => RoundState)) private _rounds;
    mapping(uint256 projectId => mapping(uint256 round => mapping(uint256 word => uint256)))
        private _committedMask;

    // ---------------------------------------------------------------- events

    event ProjectCreated(
        uint256 indexed projectId,
        address indexed owner,
        address indexed aggregator,
        address verifier,
        uint256 reward,
        uint32 rounds,
        uint64 roundDuration,
        uint96 minStake,
        bytes32 modelSpecCid,
        bytes32 validationCommitment
    );
    event ProjectCancelled(uint256 indexed projectId);
    event TrainerRegistered(
        uint256 indexed projectId, address indexed trainer, uint256 index, uint256 stake
    );
    event TrainerEndpoint(uint256 indexed projectId, address indexed trainer, string url);
    event UpdateCommitted(
        uint256 indexed projectId,
        uint256 indexed round,
        address indexed trainer,
        uint256 index,
        bytes32 cidDigest,
        bytes32 sketchCommitment
    );
    event RoundCommitted(
        uint256 indexed projectId,
        uint256 indexed round,
        bytes32 globalModelCid,
        bytes32 reportCid,
        uint256[] inlierMask,
        uint256[] rejectedMask,
        uint128[] scores
    );
    event ProjectFinalized(uint256 indexed projectId, uint256 totalScore, bool stale);
    event Withdrawn(
        uint256 indexed projectId, address indexed trainer, uint256 stake, uint256 reward
    );
    event RewardReclaimed(uint256 indexed projectId, address indexed owner, uint256 amount);

    // ---------------------------------------------------------------- errors

    error ProjectNotFound(uint256 projectId);
    error Unauthorized(address caller);
    error ZeroReward();
    error InvalidAggregator();
    error InvalidRounds(uint256 rounds, uint256 max);
    error InvalidRoundDuration(uint256 duration, uint256 max);
    error ProjectNotOpen(uint256 projectId);
    error ProjectNotFinalized(uint256 projectId);
    error StakeTooLow(uint256 sent, uint256 required);
    error AlreadyRegistered(address trainer);
    error NotRegistered(address account);
    error TooManyTrainers(uint256 max);
    error RegistrationClosed(uint256 projectId);
    error WrongRound(uint256 expected, uint256 got);
    error CommitWindowClosed(uint256 deadline);
    error AggregationWindowClosed(uint256 deadline);
    error AlreadyCommitted(address trainer, uint256 round);
    error EmptyCid();
    error EndpointTooLong(uint256 length, uint256 max);
    error InvalidSignature(address trainer);
    error MaskLengthMismatch(uint256 expected, uint256 got);
    error MaskIncludesUncommitted(uint256 word);
    error MaskOverlap(uint256 word);
    error ScoresLengthMismatch(uint256 expected, uint256 got);
    error InvalidRoundProof(uint256 projectId, uint256 round);
    error NotFinalizable(uint256 readyAt);
    error AlreadyWithdrawn(address trainer);
    error NothingToReclaim();
    error CancelNotAllowed(uint256 trainers);

    constructor() EIP712("LedgerLearn ContributionMarket", "1") {}

    // ---------------------------------------------------------------- owner

    /// @notice Create a project and escrow `msg.value` as its reward.
    /// @dev Round 1 opens immediately. The owner cannot take the reward back once a
    ///      trainer has registered: only finalize + payouts release it.
    /// @return projectId the new project's id (1-based)
    function createProject(ProjectParams calldata p)
        external
        payable
        returns (uint256 projectId)
    {
        if (msg.value == 0) revert ZeroReward();
        if (p.aggregator == address(0)) revert InvalidAggregator();
        if (p.rounds == 0 || p.rounds > MAX_ROUNDS) revert InvalidRounds(p.rounds, MAX_ROUNDS);
        if (p.roundDuration == 0 || p.roundDuration > MAX_ROUND_DURATION) {
            revert InvalidRoundDuration(p.roundDuration, MAX_ROUND_DURATION);
        }
        projectId = ++projectCount;
        Project storage pr = _projects[projectId];
        pr.owner = msg.sender;
        pr.roundDuration = p.roundDuration;
        pr.rounds = p.rounds;
        pr.aggregator = p.aggregator;
        pr.status = Status.Open;
        pr.verifier = p.verifier;
        pr.minStake = p.minStake;
        pr.reward = msg.value.toUint128();
        pr.roundOpenedAt = uint64(block.timestamp);
        pr.modelSpecCid = p.modelSpecCid;
        pr.validationCommitment = p.validationCommitment;
        emit ProjectCreated(
            projectId,
            msg.sender,
            p.aggregator,
            p.verifier,
            msg.value,
            p.rounds,
            p.roundDuration,
            p.minStake,
            p.modelSpecCid,
            p.validationCommitment
        );
    }

    /// @notice Cancel a project nobody has joined yet; the reward becomes reclaimable.
    function cancelProject(uint256 projectId) external {
        Project storage pr = _open(projectId);
        if (msg.sender != pr.owner) revert Unauthorized(msg.sender);
        if (pr.trainerCount != 0) revert CancelNotAllowed(pr.trainerCount);
        pr.status = Status.Cancelled;
        emit ProjectCancelled(projectId);
    }

    /// @notice Owner pulls back what no trainer is owed: the whole reward of a cancelled
    ///         project or of one where nobody scored, else the rounding dust once every
    ///         scored trainer has withdrawn.
    function reclaim(uint256 projectId) external nonReentrant {
        Project storage pr = _existing(projectId);
        if (msg.sender != pr.owner) revert Unauthorized(msg.sender);
        if (pr.status == Status.Open) revert ProjectNotFinalized(projectId);
        uint256 amount;
        if (pr.totalScore == 0) {
            amount = pr.reward - pr.ownerReclaimed;
        } else if (pr.paidTrainers == pr.scoredTrainers) {
            amount = pr.reward - pr.rewardPaid - pr.ownerReclaimed;
        }
        if (amount == 0) revert NothingToReclaim();
        pr.ownerReclaimed += amount.toUint128();
        emit RewardReclaimed(projectId, msg.sender, amount);
        Address.sendValue(payable(msg.sender), amount);
    }

    // ---------------------------------------------------------------- trainers

    /// @notice Join a project with a stake of at least `minStake` (the price of a Sybil
    ///         identity). The stake comes back with the reward share after finalize.
    function register(uint256 projectId) external payable {
        Project storage pr = _open(projectId);
        if (pr.roundsCommitted >= pr.rounds) revert RegistrationClosed(projectId);
        if (msg.value < pr.minStake) revert StakeTooLow(msg.value, pr.minStake);
        if (_trainerIndex[projectId][msg.sender] != 0) revert AlreadyRegistered(msg.sender);
        uint32 index = pr.trainerCount;
        if (index >= MAX_TRAINERS) revert TooManyTrainers(MAX_TRAINERS);
        pr.trainerCount = index + 1;
        pr.stakeHeld += msg.value.toUint128();
        _trainerIndex[projectId][msg.sender] = uint256(index) + 1;
        _trainers[projectId][index] = Trainer({
            account: msg.sender,
            stake: msg.value.toUint96(),
            score: 0,
            joinedRound: pr.roundsCommitted + 1,
            status: 1
        });
        emit TrainerRegistered(projectId, msg.sender, index, msg.value);
    }

    /// @notice Announce where this trainer's content gateway serves its updates (an
    ///         IPFS Trustless Gateway URL). Stored in the event log only: the aggregator
    ///         reads the latest announcement per trainer, nobody pays for storage.
    function announceEndpoint(uint256 projectId, string calldata url) external {
        _existing(projectId);
        _indexOf(projectId, msg.sender);
        if (bytes(url).length > MAX_ENDPOINT_LENGTH) {
            revert EndpointTooLong(bytes(url).length, MAX_ENDPOINT_LENGTH);
        }
        emit TrainerEndpoint(projectId, msg.sender, url);
    }

    /// @notice Commit this round's update: the digest of its CID and the commitment to its
    ///         sketch. One commitment per trainer per round, inside the round's window.
    function commitUpdate(
        uint256 projectId,
        uint256 round,
        bytes32 cidDigest,
        bytes32 sketchCommitment
    ) external {
        Project storage pr = _open(projectId);
        uint256 index = _indexOf(projectId, msg.sender);
        _recordCommitment(pr, projectId, round, index, msg.sender, cidDigest, sketchCommitment);
    }

    /// @notice Aggregator batches trainers' EIP-712 signed commitments into one
    ///         transaction. A signature binds chain, contract, project and round, and each
    ///         trainer commits once per round, so no signature can be replayed.
    function commitUpdatesSigned(
        uint256 projectId,
        uint256 round,
        SignedUpdate[] calldata updates
    ) external {
        Project storage pr = _open(projectId);
        if (msg.sender != pr.aggregator) revert Unauthorized(msg.sender);
        for (uint256 i = 0; i < updates.length; ++i) {
            SignedUpdate calldata u = updates[i];
            bytes32 digest = _hashTypedDataV4(
                keccak256(
                    abi.encode(UPDATE_TYPEHASH, projectId, round, u.cidDigest, u.sketchCommitment)
                )
            );
            (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, u.signature);
            if (err != ECDSA.RecoverError.NoError || signer != u.trainer) {
                revert InvalidSignature(u.trainer);
            }
            uint256 index = _indexOf(projectId, u.trainer);
            _recordCommitment(
                pr, projectId, round, index, u.trainer, u.cidDigest, u.sketchCommitment
            );
        }
    }

    /// @notice Pull the stake and the reward share after the project is finalized.
    ///         Pays `stake + reward * score / totalScore` (rounded down), exactly once.
    function withdraw(uint256 projectId) external nonReentrant {
        Project storage pr = _existing(projectId);
        if (pr.status != Status.Finalized) revert ProjectNotFinalized(projectId);
        uint256 index = _indexOf(projectId, msg.sender);
        Trainer storage t = _trainers[projectId][index];
        if (t.status == 2) revert AlreadyWithdrawn(msg.sender);
        uint256 share = pr.totalScore == 0 ? 0 : Math.mulDiv(pr.reward, t.score, pr.totalScore);
        uint256 stake = t.stake;
        t.status = 2;
        pr.stakeHeld -= stake.toUint128();
        if (t.score != 0) {
            pr.rewardPaid += share.toUint128();
            pr.paidTrainers += 1;
        }
        emit Withdrawn(projectId, msg.sender, stake, share);
        Address.sendValue(payable(msg.sender), stake + share);
    }

    // ---------------------------------------------------------------- aggregator

    /// @notice Commit a round in one transaction: new global model, inlier and rejected
    ///         masks over trainer indices, and one contribution score per inlier.
    /// @dev Inliers and rejected trainers must have committed this round; outliers score
    ///      nothing by construction (scores are given for inliers only). When the project
    ///      has a verifier, the proof must verify or the round reverts.
    function commitRound(uint256 projectId, RoundResult calldata r) external {
        Project storage pr = _open(projectId);
        if (msg.sender != pr.aggregator) revert Unauthorized(msg.sender);
        uint256 expected = uint256(pr.roundsCommitted) + 1;
        if (expected > pr.rounds || r.round != expected) revert WrongRound(expected, r.round);
        uint256 deadline = uint256(pr.roundOpenedAt) + 2 * uint256(pr.roundDuration);
        if (block.timestamp > deadline) revert AggregationWindowClosed(deadline);

        uint256 words = (uint256(pr.trainerCount) + 255) / 256;
        if (r.inlierMask.length != words) revert MaskLengthMismatch(words, r.inlierMask.length);
        if (r.rejectedMask.length != words) {
            revert MaskLengthMismatch(words, r.rejectedMask.length);
        }

        uint256 s = 0;
        uint128 roundTotal = 0;
        uint256[] memory committedWords = new uint256[](words);
        for (uint256 w = 0; w < words; ++w) {
            uint256 committed = _committedMask[projectId][expected][w];
            committedWords[w] = committed;
            uint256 inliers = r.inlierMask[w];
            uint256 rejected = r.rejectedMask[w];
            if ((inliers | rejected) & ~committed != 0) revert MaskIncludesUncommitted(w);
            if (inliers & rejected != 0) revert MaskOverlap(w);
            while (inliers != 0) {
                uint256 bit = Math.log2(inliers & (~inliers + 1));
                inliers &= inliers - 1;
                if (s >= r.scores.length) revert ScoresLengthMismatch(s + 1, r.scores.length);
                uint128 score = r.scores[s++];
                if (score != 0) {
                    Trainer storage t = _trainers[projectId][w * 256 + bit];
                    if (t.score == 0) pr.scoredTrainers += 1;
                    t.score += score;
                    roundTotal += score;
                }
            }
        }
        if (s != r.scores.length) revert ScoresLengthMismatch(s, r.scores.length);

        if (pr.verifier != address(0)) {
            bool ok = IRoundVerifier(pr.verifier).verifyRound(
                projectId, expected, committedWords, r.inlierMask, r.rejectedMask, r.proof
            );
            if (!ok) revert InvalidRoundProof(projectId, expected);
        }

        pr.totalScore += roundTotal;
        pr.roundsCommitted = uint32(expected);
        pr.globalModelCid = r.globalModelCid;
        pr.roundOpenedAt = uint64(block.timestamp);
        emit RoundCommitted(
            projectId,
            expected,
            r.globalModelCid,
            r.reportCid,
            r.inlierMask,
            r.rejectedMask,
            r.scores
        );
    }

    // ---------------------------------------------------------------- anyone with a stake

    /// @notice Close the project so payouts can be pulled: after the last round, or once
    ///         the aggregator has missed a round's aggregation deadline (stale). Callable
    ///         by the owner, the aggregator or any registered trainer.
    function finalize(uint256 projectId) external {
        Project storage pr = _open(projectId);
        if (
            msg.sender != pr.owner && msg.sender != pr.aggregator
                && _trainerIndex[projectId][msg.sender] == 0
        ) revert Unauthorized(msg.sender);
        bool done = pr.roundsCommitted >= pr.rounds;
        uint256 staleAt = uint256(pr.roundOpenedAt) + 2 * uint256(pr.roundDuration);
        if (!done && block.timestamp <= staleAt) revert NotFinalizable(staleAt + 1);
        pr.status = Status.Finalized;
        emit ProjectFinalized(projectId, pr.totalScore, !done);
    }

    // ---------------------------------------------------------------- views

    /// @notice The full state of a project.
    function getProject(uint256 projectId) external view returns (Project memory) {
        return _existing(projectId);
    }

    /// @notice A trainer by registration index.
    function trainerAt(uint256 projectId, uint256 index) external view returns (Trainer memory) {
        _existing(projectId);
        return _trainers[projectId][index];
    }

    /// @notice 1-based index of `account` in the project, 0 when not registered.
    function trainerIndexPlusOne(uint256 projectId, address account)
        external
        view
        returns (uint256)
    {
        return _trainerIndex[projectId][account];
    }

    /// @notice Bitmap words of the trainers who committed in a round.
    function committedMask(uint256 projectId, uint256 round)
        external
        view
        returns (uint256[] memory words, bytes32 commitmentsDigest, uint32 commitCount)
    {
        Project storage pr = _existing(projectId);
        words = new uint256[]((uint256(pr.trainerCount) + 255) / 256);
        for (uint256 w = 0; w < words.length; ++w) {
            words[w] = _committedMask[projectId][round][w];
        }
        RoundState storage rs = _rounds[projectId][round];
        return (words, rs.commitmentsDigest, rs.commitCount);
    }

    /// @notice What `withdraw` would pay `account` now that the project is final (or would
    ///         pay with today's scores): stake and reward share.
    function expectedPayout(uint256 projectId, address account)
        external
        view
        returns (uint256 stake, uint256 share)
    {
        Project storage pr = _existing(projectId);
        uint256 ip1 = _trainerIndex[projectId][account];
        if (ip1 == 0) return (0, 0);
        Trainer storage t = _trainers[projectId][ip1 - 1];
        if (t.status == 2) return (0, 0);
        share = pr.totalScore == 0 ? 0 : Math.mulDiv(pr.reward, t.score, pr.totalScore);
        return (t.stake, share);
    }

    /// @notice The EIP-712 domain separator trainers sign under.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ---------------------------------------------------------------- internals

    function _existing(uint256 projectId) private view returns (Project storage pr) {
        pr = _projects[projectId];
        if (pr.status == Status.None) revert ProjectNotFound(projectId);
    }

    function _open(uint256 projectId) private view returns (Project storage pr) {
        pr = _existing(projectId);
        if (pr.status != Status.Open) revert ProjectNotOpen(projectId);
    }

    function _indexOf(uint256 projectId, address account) private view returns (uint256) {
        uint256 ip1 = _trainerIndex[projectId][account];
        if (ip1 == 0) revert NotRegistered(account);
        return ip1 - 1;
    }

    function _recordCommitment(
        Project storage pr,
        uint256 projectId,
        uint256 round,
        uint256 index,
        address trainer,
        bytes32 cidDigest,
        bytes32 sketchCommitment
    ) private {
        uint256 expected = uint256(pr.roundsCommitted) + 1;
        if (expected > pr.rounds || round != expected) revert WrongRound(expected, round);
        uint256 deadline = uint256(pr.roundOpenedAt) + uint256(pr.roundDuration);
        if (block.timestamp > deadline) revert CommitWindowClosed(deadline);
        if (cidDigest == bytes32(0)) revert EmptyCid();
        uint256 bit = uint256(1) << (index % 256);
        mapping(uint256 => uint256) storage mask = _committedMask[projectId][round];
        uint256 word = mask[index / 256];
        if (word & bit != 0) revert AlreadyCommitted(trainer, round);
        mask[index / 256] = word | bit;
        RoundState storage rs = _rounds[projectId][round];
        rs.commitmentsDigest =
            keccak256(abi.encode(rs.commitmentsDigest, index, cidDigest, sketchCommitment));
        rs.commitCount += 1;
        emit UpdateCommitted(projectId, round, trainer, index, cidDigest, sketchCommitment);
        if (pr.verifier != address(0)) {
            IRoundVerifier(pr.verifier).onCommitment(projectId, round, index, sketchCommitment);
        }
    }
}
