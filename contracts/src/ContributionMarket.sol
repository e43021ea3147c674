// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {Hashes} from "@openzeppelin/contracts/utils/cryptography/Hashes.sol";
import {IRoundVerifier} from "./IRoundVerifier.sol";

/// @title ContributionMarket
/// @notice Escrowed federated-learning projects: an owner escrows a reward, trainers stake
///         to register, commit-then-reveal content-addressed model updates each round, and
///         an aggregator commits each round's result (global model, inlier mask,
///         contribution scores) in one transaction, optionally checked by a zero-knowledge
///         verifier. After the last round (or when the aggregator vanishes) the project is
///         finalized and every trainer pulls its stake plus `reward * score / totalScore`.
/// @dev Money only moves in `withdraw`, `reclaim` and `withdrawBond` (pull payments,
///      checks-effects-interactions, non-reentrant); all are O(1) in the number of trainers.
///      A round has three windows of `roundDuration` each, counted from its opening:
///        commit  - a roster trainer commits keccak256(abi.encode(cidDigest,
///                  sketchCommitment, salt, trainer, projectId, round)): nothing about its
///                  update is public yet; closes early once every roster trainer committed;
///        reveal  - anyone holding the opening reveals it (the preimage names the trainer);
///                  only a matching opening counts, the first committer of a CID keeps it;
///                  closes early once every committer has opened;
///        aggregate - the aggregator commits the round; the active set is the revealed
///                  set (the contract's, not the aggregator's), a rejection is public and
///                  disputable by the rejected trainer, which halts the project and hands
///                  the aggregator's bond to the trainers.
///      Scores cost no storage per trainer: `commitRound` folds the round's scores (calldata,
///      also emitted) into a Merkle root it computes itself, and each trainer's share of a
///      round is credited when a proof of its leaf is presented (`claimScores`, or inside
///      `withdraw`), so a round's commit costs a few hundred gas per inlier and 4,096
///      trainers fit one transaction under EIP-7825's 2^24 gas cap.
///      The roster of a round is fixed by its first commitment; later registrants join the
///      next round. After the aggregation window any stakeholder can finalize, so no party
///      can lock the others' money by disappearing.
///      In an attested project (`ProjectParams.attested`) a round's scores are the
///      aggregator's proposal only: for `roundDuration` after its commit, the round's
///      active trainers, who replay it (`ledgerlearn audit`'s replay, with the pinned rule
///      and the chain's seed), attest the (scores root, total) they computed. The first
///      pair with more than half of the active trainers' stake behind it settles the
///      round and becomes payable; when it differs from the aggregator's, it replaces it
///      and the aggregator's bond is slashed to the trainers. A round no majority settles
///      pays no reward (stakes are refunded as always).
contract ContributionMarket is EIP712, ReentrancyGuard {
    using SafeCast for uint256;

    // ---------------------------------------------------------------- constants

    /// @notice Largest number of rounds a project may declare.
    uint32 public constant MAX_ROUNDS = 10_000;
    /// @notice Largest number of trainers per project (bounds mask and score arrays).
    uint32 public constant MAX_TRAINERS = 4096;
    /// @notice Longest round a project may declare.
    uint64 public constant MAX_ROUND_DURATION = 365 days;
    /// @notice After finalize, how long trainers have to claim and withdraw before the owner
    ///         may take back what is still unclaimed.
    uint64 public constant CLAIM_PERIOD = 90 days;
    /// @notice Longest endpoint URL a trainer may announce.
    uint256 public constant MAX_ENDPOINT_LENGTH = 256;

    bytes32 private constant UPDATE_TYPEHASH =
        keccak256("UpdateCommitment(uint256 projectId,uint256 round,bytes32 commitment)");
    /// @dev Low 224 bits of a stored commitment slot hold the hash, the top 32 its commit
    ///      sequence number (1-based): one storage slot per trainer and round.
    uint256 private constant HASH_BITS = 224;

    // ---------------------------------------------------------------- types

    enum Status {
        None,
        Open,
        Finalized,
        Cancelled,
        Disputed
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
        uint96 aggregatorBond; // wei the aggregator must post before its first round
        bool attested; // a round pays only what a stake-majority of its trainers attest
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
        uint32 maxTrainers; // MAX_TRAINERS, or the verifier's capacity when smaller
        uint96 bondRequired;
        uint96 bondPosted;
        uint64 disputableUntil; // a round with rejections can be disputed until then
        uint64 finalizedAt;
        bool attested;
        bool bondSlashed; // a stake-majority replaced a round's scores: the bond is the trainers'
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
        bytes32 commitment;
        bytes signature;
    }

    /// @notice The opening of a trainer's commitment (anyone may submit it: the preimage
    ///         names the trainer, and only the trainer could have chosen its salt).
    struct Reveal {
        address trainer;
        bytes32 cidDigest;
        bytes32 sketchCommitment;
        bytes32 salt;
    }

    /// @notice A trainer's score in one round, with the Merkle proof of its leaf
    ///         keccak256(bytes.concat(keccak256(abi.encode(index, score)))).
    struct Claim {
        uint32 round;
        uint32 index;
        uint128 score;
        bytes32[] proof;
    }

    /// @notice Everything the aggregator commits for one round.
    struct RoundResult {
        uint32 round;
        bytes32 globalModelCid; // digest of the new global model's CID
        bytes32 reportCid; // digest of the round report (hyper-parameters, rejection reasons)
        uint256[] inlierMask; // bitmap over trainer indices
        uint256[] rejectedMask; // revealed but malformed (bad shape, NaN, missing): disputable
        uint128[] scores; // one per inlier, in ascending trainer-index order
        bytes proof; // passed to the project's verifier; empty when none
    }

    struct RoundState {
        // XOR over keccak256(index, salt) of every opened commitment: order-independent,
        // fixed by the trainers' hidden salts, known only once the reveals are in; the
        // round's randomness (no party can choose it after seeing the others')
        bytes32 revealFold;
        uint32 roster; // trainer indices 0 .. roster-1 take part (fixed at first commit)
        uint32 commitCount;
        uint32 openedCount; // commitments opened (a duplicate CID is opened, not active)
        uint32 revealedCount; // active trainers
        uint64 committedAt; // when the aggregator committed the round (0 before)
        bool hasRejections;
        bytes32 scoresRoot; // Merkle root over (index, score) of the round's inliers (payable one)
        uint128 activeStake; // stake of the active trainers: the attestation electorate
        uint128 scoresTotal; // sum of the scores under scoresRoot
        bool settled; // attested project: a stake-majority attested (scoresRoot, scoresTotal)
        bool replaced; // ... and it was not the aggregator's
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
    mapping(uint256 projectId => mapping(uint256 round => mapping(uint256 word => uint256)))
        private _revealedMask;
    mapping(uint256 projectId => mapping(uint256 round => mapping(uint256 word => uint256)))
        private _rejectedMask;
    mapping(uint256 projectId => mapping(uint256 round => mapping(uint256 word => uint256)))
        private _claimedMask;
    mapping(uint256 projectId => mapping(uint256 round => mapping(uint256 word => uint256)))
        private _attestedMask;
    /// @dev keccak256(abi.encode(root, total)) => stake of the active trainers attesting it
    mapping(uint256 projectId => mapping(uint256 round => mapping(bytes32 result => uint256)))
        private _attestedStake;
    mapping(uint256 projectId => mapping(uint256 round => mapping(uint256 index => uint256)))
        private _commitments;
    /// @dev cidDigest => (index + 1) | commit sequence << 32 of the trainer holding it
    mapping(uint256 projectId => mapping(uint256 round => mapping(bytes32 cid => uint256)))
        private _cidHolder;

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
    event RosterFixed(uint256 indexed projectId, uint256 indexed round, uint256 roster);
    event UpdateCommitted(
        uint256 indexed projectId,
        uint256 indexed round,
        address indexed trainer,
        uint256 index,
        bytes32 commitment
    );
    event UpdateRevealed(
        uint256 indexed projectId,
        uint256 indexed round,
        address indexed trainer,
        uint256 index,
        bytes32 cidDigest,
        bytes32 sketchCommitment,
        bytes32 salt
    );
    /// @notice `index` opened a CID that `holder`, an earlier committer, also opened: the
    ///         later committer is excluded from the round (copycat by CID).
    event UpdateExcluded(
        uint256 indexed projectId, uint256 indexed round, uint256 index, uint256 holder
    );
    event BondPosted(uint256 indexed projectId, address indexed aggregator, uint256 amount);
    event BondWithdrawn(uint256 indexed projectId, address indexed aggregator, uint256 amount);
    event RoundDisputed(uint256 indexed projectId, uint256 indexed round, address trainer);
    event ScoreClaimed(
        uint256 indexed projectId, uint256 indexed round, uint256 index, uint256 score
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
    /// @notice A trainer announced the X25519 key updates are sealed to for it, so it can
    ///         replay (and attest) rounds of a project with sealed updates. Event only.
    event TrainerReaderKey(uint256 indexed projectId, address indexed trainer, bytes32 key);
    /// @notice An active trainer of `round` attests the scores it computed by replaying it.
    event RoundAttested(
        uint256 indexed projectId,
        uint256 indexed round,
        address indexed trainer,
        uint256 index,
        bytes32 scoresRoot,
        uint128 scoresTotal
    );
    /// @notice A stake-majority of the round's active trainers attested (scoresRoot,
    ///         scoresTotal): the round's payable result. `replaced`: it is not what the
    ///         aggregator committed (the aggregator's bond is slashed to the trainers).
    event RoundSettled(
        uint256 indexed projectId,
        uint256 indexed round,
        bytes32 scoresRoot,
        uint128 scoresTotal,
        bool replaced
    );
    event BondSlashed(uint256 indexed projectId, uint256 indexed round, uint256 amount);
    event ProjectFinalized(uint256 indexed projectId, uint256 totalScore, bool stale);
    /// @notice `reward`: the share of the project's reward; `bond`: the share of a
    ///         slashed aggregator bond (disputed project, or a round whose scores a
    ///         stake-majority of its trainers replaced).
    event Withdrawn(
        uint256 indexed projectId,
        address indexed trainer,
        uint256 stake,
        uint256 reward,
        uint256 bond
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
    error RevealWindowNotOpen(uint256 opensAt);
    error RevealWindowClosed(uint256 deadline);
    error RevealsPending(uint256 deadline);
    error NotCommitted(address trainer, uint256 round);
    error InvalidOpening(address trainer);
    error NotInRoster(address trainer, uint256 round);
    error CapacityTooLow(uint256 capacity);
    error BondMissing(uint256 required, uint256 posted);
    error BondAlreadyPosted();
    error NotDisputable(uint256 round);
    error InvalidClaim(uint256 round, uint256 index);
    error AlreadyClaimed(uint256 round, uint256 index);
    error AggregationWindowClosed(uint256 deadline);
    error AlreadyCommitted(address trainer, uint256 round);
    error EmptyCid();
    error EndpointTooLong(uint256 length, uint256 max);
    error InvalidSignature(address trainer);
    error MaskLengthMismatch(uint256 expected, uint256 got);
    error MaskIncludesUnrevealed(uint256 word);
    error MaskOverlap(uint256 word);
    error ScoresLengthMismatch(uint256 expected, uint256 got);
    error InvalidRoundProof(uint256 projectId, uint256 round);
    error NotFinalizable(uint256 readyAt);
    error AlreadyWithdrawn(address trainer);
    error NothingToReclaim();
    error CancelNotAllowed(uint256 trainers);
    error NotAttested(uint256 projectId);
    /// @notice In an attested project a rejection is judged by the trainers' replay (a
    ///         wrongly rejected update changes the majority's root), not by a dispute.
    error JudgedByAttestation(uint256 projectId);
    error NotActive(address trainer, uint256 round);
    error AlreadyAttested(address trainer, uint256 round);
    error AttestationClosed(uint256 round);
    error RoundSettledAlready(uint256 round);
    error BondWasSlashed(uint256 projectId);

    constructor() EIP712("LedgerLearn ContributionMarket", "1") {}

    // ---------------------------------------------------------------- owner

    /// @notice Create a project and escrow `msg.value` as its reward.
    /// @dev Round 1 opens immediately. The owner cannot take the reward back once a
    ///      trainer has registered: only finalize + payouts (or a dispute) release it.
    ///      With a verifier, registrations stop at the verifier's capacity.
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
        uint256 capacity = MAX_TRAINERS;
        if (p.verifier != address(0)) {
            capacity = Math.min(capacity, IRoundVerifier(p.verifier).maxTrainers());
            if (capacity == 0) revert CapacityTooLow(capacity);
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
        pr.maxTrainers = uint32(capacity);
        pr.bondRequired = p.aggregatorBond;
        pr.attested = p.attested;
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

    /// @notice Owner pulls back what no trainer is owed: the whole reward of a cancelled or
    ///         disputed project or of one where nobody scored, else the rounding dust once
    ///         every scored trainer has withdrawn.
    function reclaim(uint256 projectId) external nonReentrant {
        Project storage pr = _existing(projectId);
        if (msg.sender != pr.owner) revert Unauthorized(msg.sender);
        if (pr.status == Status.Open) revert ProjectNotFinalized(projectId);
        uint256 amount;
        if (pr.totalScore == 0 || pr.status == Status.Disputed) {
            amount = pr.reward - pr.ownerReclaimed;
        } else if (
            pr.paidTrainers == pr.trainerCount
                || block.timestamp > uint256(pr.finalizedAt) + CLAIM_PERIOD
        ) {
            // every trainer withdrew (what is left is rounding dust and unclaimed shares),
            // or the claim period is over: claims are refused from now on
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
    /// @dev A trainer registering after the current round's roster is fixed (its first
    ///      commitment) takes part from the next round on.
    function register(uint256 projectId) external payable {
        Project storage pr = _open(projectId);
        if (pr.roundsCommitted >= pr.rounds) revert RegistrationClosed(projectId);
        if (msg.value < pr.minStake) revert StakeTooLow(msg.value, pr.minStake);
        if (_trainerIndex[projectId][msg.sender] != 0) revert AlreadyRegistered(msg.sender);
        uint32 index = pr.trainerCount;
        if (index >= pr.maxTrainers) revert TooManyTrainers(pr.maxTrainers);
        uint32 current = pr.roundsCommitted + 1;
        uint32 joins = _rounds[projectId][current].roster == 0 ? current : current + 1;
        pr.trainerCount = index + 1;
        pr.stakeHeld += msg.value.toUint128();
        _trainerIndex[projectId][msg.sender] = uint256(index) + 1;
        _trainers[projectId][index] = Trainer({
            account: msg.sender, stake: msg.value.toUint96(), score: 0, joinedRound: joins, status: 1
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

    /// @notice Commit to this round's update without showing it: `commitment` =
    ///         keccak256(abi.encode(cidDigest, sketchCommitment, salt, trainer, projectId,
    ///         round)) (`updateCommitment`). One per trainer per round, inside the window.
    function commitUpdate(uint256 projectId, uint256 round, bytes32 commitment) external {
        Project storage pr = _open(projectId);
        uint256 index = _indexOf(projectId, msg.sender);
        _recordCommitment(pr, projectId, round, index, msg.sender, commitment);
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
                keccak256(abi.encode(UPDATE_TYPEHASH, projectId, round, u.commitment))
            );
            (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, u.signature);
            if (err != ECDSA.RecoverError.NoError || signer != u.trainer) {
                revert InvalidSignature(u.trainer);
            }
            uint256 index = _indexOf(projectId, u.trainer);
            _recordCommitment(pr, projectId, round, index, u.trainer, u.commitment);
        }
    }

    /// @notice Open commitments once the commit window is closed (its deadline passed, or
    ///         every roster trainer committed). Anyone may submit an opening: it only counts
    ///         when it hashes to the trainer's commitment. The first committer of a CID keeps
    ///         it; a later committer opening the same CID is excluded.
    function revealUpdates(uint256 projectId, uint256 round, Reveal[] calldata reveals)
        external
    {
        Project storage pr = _open(projectId);
        for (uint256 i = 0; i < reveals.length; ++i) {
            _reveal(pr, projectId, round, reveals[i]);
        }
    }

    /// @notice Credit round scores to trainers: each claim proves a leaf of the round's
    ///         scores root. Anyone may submit claims (a claim only credits the trainer it
    ///         names), until that trainer withdraws or the claim period ends.
    function claimScores(uint256 projectId, Claim[] calldata claims) external {
        Project storage pr = _existing(projectId);
        for (uint256 i = 0; i < claims.length; ++i) {
            _claim(pr, projectId, claims[i]);
        }
    }

    /// @notice Pull the stake and the reward share after the project is finalized, after
    ///         crediting `claims` (this trainer's unclaimed round scores, may be empty).
    ///         Pays `stake + reward * score / totalScore` (rounded down), exactly once, plus
    ///         an equal share of the aggregator's bond when it was slashed (a round's scores
    ///         replaced by the trainers' majority); in a disputed project the stake and the
    ///         bond share only.
    function withdraw(uint256 projectId, Claim[] calldata claims) external nonReentrant {
        Project storage pr = _existing(projectId);
        bool disputed = pr.status == Status.Disputed;
        if (pr.status != Status.Finalized && !disputed) revert ProjectNotFinalized(projectId);
        uint256 index = _indexOf(projectId, msg.sender);
        if (!disputed) {
            for (uint256 i = 0; i < claims.length; ++i) {
                _claim(pr, projectId, claims[i]);
            }
        }
        Trainer storage t = _trainers[projectId][index];
        if (t.status == 2) revert AlreadyWithdrawn(msg.sender);
        uint256 share;
        if (!disputed && pr.totalScore != 0) {
            share = Math.mulDiv(pr.reward, t.score, pr.totalScore);
        }
        uint256 bond = (disputed || pr.bondSlashed) ? uint256(pr.bondPosted) / pr.trainerCount : 0;
        uint256 stake = t.stake;
        t.status = 2;
        pr.stakeHeld -= stake.toUint128();
        pr.paidTrainers += 1;
        pr.rewardPaid += share.toUint128();
        emit Withdrawn(projectId, msg.sender, stake, share, bond);
        Address.sendValue(payable(msg.sender), stake + share + bond);
    }

    /// @notice Announce the X25519 public key this trainer's co-trainers seal their updates
    ///         to in an attested project, so that it can replay and attest rounds. Stored
    ///         in the event log only.
    function announceReaderKey(uint256 projectId, bytes32 key) external {
        _existing(projectId);
        _indexOf(projectId, msg.sender);
        emit TrainerReaderKey(projectId, msg.sender, key);
    }

    /// @notice An active trainer of a committed round attests the (scores root, total) it
    ///         computed by replaying the round, within `roundDuration` of the round's
    ///         commit; once per trainer and round. The first result with more than half of
    ///         the active trainers' stake settles the round: it becomes the payable root
    ///         and, when it is not the aggregator's, replaces it and slashes the bond.
    function attestRound(uint256 projectId, uint256 round, bytes32 scoresRoot, uint128 scoresTotal)
        external
    {
        Project storage pr = _open(projectId);
        if (!pr.attested) revert NotAttested(projectId);
        uint256 index = _indexOf(projectId, msg.sender);
        RoundState storage rs = _rounds[projectId][round];
        if (rs.committedAt == 0 || block.timestamp > uint256(rs.committedAt) + pr.roundDuration) {
            revert AttestationClosed(round);
        }
        if (rs.settled) revert RoundSettledAlready(round);
        uint256 bit = uint256(1) << (index % 256);
        if (_revealedMask[projectId][round][index / 256] & bit == 0) {
            revert NotActive(msg.sender, round);
        }
        mapping(uint256 => uint256) storage attested = _attestedMask[projectId][round];
        if (attested[index / 256] & bit != 0) revert AlreadyAttested(msg.sender, round);
        attested[index / 256] |= bit;
        bytes32 key = keccak256(abi.encode(scoresRoot, scoresTotal));
        uint256 tally = _attestedStake[projectId][round][key] + _trainers[projectId][index].stake;
        _attestedStake[projectId][round][key] = tally;
        emit RoundAttested(projectId, round, msg.sender, index, scoresRoot, scoresTotal);
        if (2 * tally <= rs.activeStake) return;
        bool replaced = scoresRoot != rs.scoresRoot || scoresTotal != rs.scoresTotal;
        rs.settled = true;
        pr.totalScore += scoresTotal;
        if (replaced) {
            rs.replaced = true;
            rs.scoresRoot = scoresRoot;
            rs.scoresTotal = scoresTotal;
            if (!pr.bondSlashed) {
                pr.bondSlashed = true;
                emit BondSlashed(projectId, round, pr.bondPosted);
            }
        }
        emit RoundSettled(projectId, round, scoresRoot, scoresTotal, replaced);
    }

    /// @notice A trainer the aggregator rejected in a round, although it opened its
    ///         commitment in time, contests the rejection before the round's dispute
    ///         window (`roundDuration` after the round's commit) closes. The contract cannot
    ///         fetch the update, so it does not judge: the project halts, nobody is paid a
    ///         reward (the owner reclaims it), every trainer gets its stake back and an
    ///         equal share of the aggregator's bond. Unattested projects only: in an
    ///         attested one the co-trainers' replay re-checks every update, so a wrong
    ///         rejection is outvoted and slashed there, and a halt on the word of one
    ///         trainer (the owner's own, submitting garbage on purpose) would hand the
    ///         whole reward back to the owner.
    function disputeRejection(uint256 projectId, uint256 round) external {
        Project storage pr = _existing(projectId);
        if (pr.attested) revert JudgedByAttestation(projectId);
        if (pr.status != Status.Open && pr.status != Status.Finalized) {
            revert ProjectNotOpen(projectId);
        }
        uint256 index = _indexOf(projectId, msg.sender);
        RoundState storage rs = _rounds[projectId][round];
        uint256 end = uint256(rs.committedAt) + pr.roundDuration;
        bool rejected = _rejectedMask[projectId][round][index / 256] >> (index % 256) & 1 == 1;
        if (rs.committedAt == 0 || !rejected || block.timestamp > end) {
            revert NotDisputable(round);
        }
        if (pr.status == Status.Finalized && pr.paidTrainers != 0) revert NotDisputable(round);
        pr.status = Status.Disputed;
        emit RoundDisputed(projectId, round, msg.sender);
    }

    // ---------------------------------------------------------------- aggregator

    /// @notice The aggregator posts its bond (`aggregatorBond` of the project), which
    ///         trainers receive if a rejection is disputed. Required before any round.
    function postBond(uint256 projectId) external payable {
        Project storage pr = _open(projectId);
        if (msg.sender != pr.aggregator) revert Unauthorized(msg.sender);
        if (pr.bondPosted != 0) revert BondAlreadyPosted();
        if (msg.value < pr.bondRequired) revert BondMissing(pr.bondRequired, msg.value);
        pr.bondPosted = msg.value.toUint96();
        emit BondPosted(projectId, msg.sender, msg.value);
    }

    /// @notice The aggregator takes its bond back once the project is finalized undisputed
    ///         and no round's scores were replaced by its trainers.
    function withdrawBond(uint256 projectId) external nonReentrant {
        Project storage pr = _existing(projectId);
        if (msg.sender != pr.aggregator) revert Unauthorized(msg.sender);
        if (pr.status != Status.Finalized && pr.status != Status.Cancelled) {
            revert ProjectNotFinalized(projectId);
        }
        if (pr.bondSlashed) revert BondWasSlashed(projectId);
        uint256 amount = pr.bondPosted;
        if (amount == 0) revert NothingToReclaim();
        pr.bondPosted = 0;
        emit BondWithdrawn(projectId, msg.sender, amount);
        Address.sendValue(payable(msg.sender), amount);
    }

    /// @notice Commit a round in one transaction: new global model, inlier and rejected
    ///         masks over the round's roster, and one contribution score per inlier.
    /// @dev Only once the reveal window is closed (its deadline passed, or every committer
    ///      opened). Inliers and rejected trainers must be active (opened in time and not
    ///      excluded); a rejection opens a dispute window. When the project has a verifier,
    ///      the proof must verify over the active set or the round reverts.
    function commitRound(uint256 projectId, RoundResult calldata r) external {
        Project storage pr = _open(projectId);
        if (msg.sender != pr.aggregator) revert Unauthorized(msg.sender);
        if (pr.bondPosted < pr.bondRequired) revert BondMissing(pr.bondRequired, pr.bondPosted);
        uint256 expected = uint256(pr.roundsCommitted) + 1;
        if (expected > pr.rounds || r.round != expected) revert WrongRound(expected, r.round);
        uint256 opened = pr.roundOpenedAt;
        uint256 deadline = opened + 3 * uint256(pr.roundDuration);
        if (block.timestamp > deadline) revert AggregationWindowClosed(deadline);
        RoundState storage rs = _rounds[projectId][expected];
        if (!_revealClosed(pr, rs)) revert RevealsPending(opened + 2 * uint256(pr.roundDuration));

        uint256 words = (uint256(rs.roster) + 255) / 256;
        if (r.inlierMask.length != words) revert MaskLengthMismatch(words, r.inlierMask.length);
        if (r.rejectedMask.length != words) {
            revert MaskLengthMismatch(words, r.rejectedMask.length);
        }

        bool anyRejected = false;
        uint256[] memory revealedWords = new uint256[](words);
        bytes32[] memory leaves = new bytes32[](r.scores.length);
        uint256 s = 0;
        uint256 roundTotal = 0;
        for (uint256 w = 0; w < words; ++w) {
            uint256 revealed = _revealedMask[projectId][expected][w];
            revealedWords[w] = revealed;
            uint256 inliers = r.inlierMask[w];
            uint256 rejected = r.rejectedMask[w];
            if ((inliers | rejected) & ~revealed != 0) revert MaskIncludesUnrevealed(w);
            if (inliers & rejected != 0) revert MaskOverlap(w);
            if (rejected != 0) {
                anyRejected = true;
                _rejectedMask[projectId][expected][w] = rejected;
            }
            while (inliers != 0) {
                uint256 bit = Math.log2(inliers & (~inliers + 1));
                inliers &= inliers - 1;
                if (s >= r.scores.length) revert ScoresLengthMismatch(s + 1, r.scores.length);
                uint128 score = r.scores[s];
                leaves[s++] = _leaf(w * 256 + bit, score);
                roundTotal += score;
            }
        }
        if (s != r.scores.length) revert ScoresLengthMismatch(s, r.scores.length);
        rs.scoresRoot = _root(leaves);
        rs.scoresTotal = roundTotal.toUint128();

        if (pr.verifier != address(0)) {
            bool ok = IRoundVerifier(pr.verifier).verifyRound(
                projectId, expected, revealedWords, r.inlierMask, r.rejectedMask, r.proof
            );
            if (!ok) revert InvalidRoundProof(projectId, expected);
        }

        if (!pr.attested) pr.totalScore += roundTotal.toUint128(); // else: once settled
        pr.roundsCommitted = uint32(expected);
        pr.globalModelCid = r.globalModelCid;
        pr.roundOpenedAt = uint64(block.timestamp);
        rs.committedAt = uint64(block.timestamp);
        if (anyRejected) {
            rs.hasRejections = true;
            pr.disputableUntil = uint64(block.timestamp + pr.roundDuration);
        }
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

    /// @notice Close the project so payouts can be pulled: after the last round (and the
    ///         dispute window of the last round with a rejection), or once the aggregator
    ///         has missed a round's aggregation deadline (stale). Callable by the owner, the
    ///         aggregator or any registered trainer.
    function finalize(uint256 projectId) external {
        Project storage pr = _open(projectId);
        if (
            msg.sender != pr.owner && msg.sender != pr.aggregator
                && _trainerIndex[projectId][msg.sender] == 0
        ) revert Unauthorized(msg.sender);
        bool done = pr.roundsCommitted >= pr.rounds;
        uint256 staleAt = uint256(pr.roundOpenedAt) + 3 * uint256(pr.roundDuration);
        if (!done && block.timestamp <= staleAt) revert NotFinalizable(staleAt + 1);
        if (block.timestamp <= pr.disputableUntil) revert NotFinalizable(pr.disputableUntil + 1);
        if (pr.attested && done) {
            // the last round's attestation window: it may still settle (or replace) scores
            RoundState storage last = _rounds[projectId][pr.roundsCommitted];
            uint256 closes = uint256(last.committedAt) + pr.roundDuration;
            if (!last.settled && block.timestamp <= closes) revert NotFinalizable(closes + 1);
        }
        pr.status = Status.Finalized;
        pr.finalizedAt = uint64(block.timestamp);
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

    /// @notice The state of a round: its roster, counters, randomness and phase.
    function roundState(uint256 projectId, uint256 round)
        external
        view
        returns (RoundState memory state, bool commitClosed, bool revealClosed)
    {
        Project storage pr = _existing(projectId);
        RoundState storage rs = _rounds[projectId][round];
        return (rs, _commitClosed(pr, rs), _revealClosed(pr, rs));
    }

    /// @notice Whether trainer `index` attested `round`, and the stake behind
    ///         (`scoresRoot`, `scoresTotal`) in that round so far.
    function attestation(
        uint256 projectId,
        uint256 round,
        uint256 index,
        bytes32 scoresRoot,
        uint128 scoresTotal
    ) external view returns (bool attested, uint256 stake) {
        _existing(projectId);
        attested = _attestedMask[projectId][round][index / 256] >> (index % 256) & 1 == 1;
        stake = _attestedStake[projectId][round][keccak256(abi.encode(scoresRoot, scoresTotal))];
    }

    /// @notice Bitmap words (over the round's roster) of the trainers who committed, who
    ///         opened validly (the active set) and who were rejected in a round.
    function roundMasks(uint256 projectId, uint256 round)
        external
        view
        returns (uint256[] memory committed, uint256[] memory revealed, uint256[] memory rejected)
    {
        _existing(projectId);
        uint256 words = (uint256(_rounds[projectId][round].roster) + 255) / 256;
        committed = new uint256[](words);
        revealed = new uint256[](words);
        rejected = new uint256[](words);
        for (uint256 w = 0; w < words; ++w) {
            committed[w] = _committedMask[projectId][round][w];
            revealed[w] = _revealedMask[projectId][round][w];
            rejected[w] = _rejectedMask[projectId][round][w];
        }
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
        if (pr.status == Status.Disputed) return (t.stake, uint256(pr.bondPosted) / pr.trainerCount);
        share = pr.totalScore == 0 ? 0 : Math.mulDiv(pr.reward, t.score, pr.totalScore);
        if (pr.bondSlashed) share += uint256(pr.bondPosted) / pr.trainerCount;
        return (t.stake, share);
    }

    /// @notice The commitment a trainer sends for an update (what `commitUpdate` expects).
    function updateCommitment(
        bytes32 cidDigest,
        bytes32 sketchCommitment,
        bytes32 salt,
        address trainer,
        uint256 projectId,
        uint256 round
    ) public pure returns (bytes32) {
        return keccak256(abi.encode(cidDigest, sketchCommitment, salt, trainer, projectId, round));
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

    function _commitClosed(Project storage pr, RoundState storage rs) private view returns (bool) {
        return block.timestamp > uint256(pr.roundOpenedAt) + uint256(pr.roundDuration)
            || (rs.roster != 0 && rs.commitCount == rs.roster);
    }

    function _revealClosed(Project storage pr, RoundState storage rs) private view returns (bool) {
        return block.timestamp > uint256(pr.roundOpenedAt) + 2 * uint256(pr.roundDuration)
            || (_commitClosed(pr, rs) && rs.openedCount == rs.commitCount);
    }

    /// @dev OpenZeppelin's standard leaf: double keccak, so no leaf is an inner node.
    function _leaf(uint256 index, uint128 score) private pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(index, score))));
    }

    /// @dev Root of `leaves` (in index order) with OpenZeppelin's commutative pair hash,
    ///      an odd node moving up unhashed: `MerkleProof.verify` checks any leaf of it.
    ///      Reuses the array in place, so it costs ~2 keccaks per leaf and no storage.
    function _root(bytes32[] memory leaves) private pure returns (bytes32) {
        uint256 n = leaves.length;
        if (n == 0) return bytes32(0);
        while (n > 1) {
            uint256 half = (n + 1) / 2;
            for (uint256 i = 0; i < n / 2; ++i) {
                leaves[i] = Hashes.commutativeKeccak256(leaves[2 * i], leaves[2 * i + 1]);
            }
            if (n % 2 == 1) leaves[half - 1] = leaves[n - 1];
            n = half;
        }
        return leaves[0];
    }

    function _claim(Project storage pr, uint256 projectId, Claim calldata c) private {
        if (pr.status == Status.Disputed || pr.status == Status.Cancelled) {
            revert ProjectNotOpen(projectId);
        }
        if (pr.finalizedAt != 0 && block.timestamp > uint256(pr.finalizedAt) + CLAIM_PERIOD) {
            revert InvalidClaim(c.round, c.index);
        }
        RoundState storage rs = _rounds[projectId][c.round];
        if (rs.committedAt == 0 || (pr.attested && !rs.settled)) {
            revert InvalidClaim(c.round, c.index);
        }
        if (!MerkleProof.verifyCalldata(c.proof, rs.scoresRoot, _leaf(c.index, c.score))) {
            revert InvalidClaim(c.round, c.index);
        }
        uint256 bit = uint256(1) << (c.index % 256);
        mapping(uint256 => uint256) storage claimed = _claimedMask[projectId][c.round];
        if (claimed[c.index / 256] & bit != 0) revert AlreadyClaimed(c.round, c.index);
        Trainer storage t = _trainers[projectId][c.index];
        if (t.status != 1) revert AlreadyWithdrawn(t.account);
        claimed[c.index / 256] |= bit;
        if (c.score != 0) {
            if (t.score == 0) pr.scoredTrainers += 1;
            t.score += c.score;
        }
        emit ScoreClaimed(projectId, c.round, c.index, c.score);
    }

    function _recordCommitment(
        Project storage pr,
        uint256 projectId,
        uint256 round,
        uint256 index,
        address trainer,
        bytes32 commitment
    ) private {
        uint256 expected = uint256(pr.roundsCommitted) + 1;
        if (expected > pr.rounds || round != expected) revert WrongRound(expected, round);
        RoundState storage rs = _rounds[projectId][round];
        if (_commitClosed(pr, rs)) {
            revert CommitWindowClosed(uint256(pr.roundOpenedAt) + uint256(pr.roundDuration));
        }
        if (commitment == bytes32(0)) revert EmptyCid();
        if (rs.roster == 0) {
            rs.roster = pr.trainerCount;
            emit RosterFixed(projectId, round, pr.trainerCount);
        }
        if (index >= rs.roster) revert NotInRoster(trainer, round);
        uint256 bit = uint256(1) << (index % 256);
        mapping(uint256 => uint256) storage mask = _committedMask[projectId][round];
        uint256 word = mask[index / 256];
        if (word & bit != 0) revert AlreadyCommitted(trainer, round);
        mask[index / 256] = word | bit;
        uint32 seq = rs.commitCount + 1;
        rs.commitCount = seq;
        _commitments[projectId][round][index] =
            (uint256(commitment) >> 32) | (uint256(seq) << HASH_BITS);
        emit UpdateCommitted(projectId, round, trainer, index, commitment);
    }

    function _reveal(Project storage pr, uint256 projectId, uint256 round, Reveal calldata v)
        private
    {
        uint256 expected = uint256(pr.roundsCommitted) + 1;
        if (round != expected) revert WrongRound(expected, round);
        RoundState storage rs = _rounds[projectId][round];
        if (!_commitClosed(pr, rs)) {
            revert RevealWindowNotOpen(uint256(pr.roundOpenedAt) + uint256(pr.roundDuration) + 1);
        }
        uint256 deadline = uint256(pr.roundOpenedAt) + 2 * uint256(pr.roundDuration);
        if (block.timestamp > deadline) revert RevealWindowClosed(deadline);
        uint256 index = _indexOf(projectId, v.trainer);
        uint256 slot = _commitments[projectId][round][index];
        if (slot == 0) revert NotCommitted(v.trainer, round);
        bytes32 h = updateCommitment(v.cidDigest, v.sketchCommitment, v.salt, v.trainer, projectId, round);
        if (uint256(h) >> 32 != slot & ((uint256(1) << HASH_BITS) - 1)) {
            revert InvalidOpening(v.trainer);
        }
        uint256 seq = slot >> HASH_BITS;
        delete _commitments[projectId][round][index];
        rs.openedCount += 1;
        rs.revealFold ^= keccak256(abi.encode(index, v.salt));
        emit UpdateRevealed(
            projectId, round, v.trainer, index, v.cidDigest, v.sketchCommitment, v.salt
        );
        if (v.cidDigest == bytes32(0)) return; // opens, but names no update: not active
        uint256 holder = _cidHolder[projectId][round][v.cidDigest];
        if (holder != 0) {
            uint256 holderIndex = (holder & type(uint32).max) - 1;
            if (holder >> 32 < seq) {
                emit UpdateExcluded(projectId, round, index, holderIndex);
                return;
            }
            _revealedMask[projectId][round][holderIndex / 256] &= ~(uint256(1) << (holderIndex % 256));
            rs.revealedCount -= 1;
            rs.activeStake -= _trainers[projectId][holderIndex].stake;
            emit UpdateExcluded(projectId, round, holderIndex, index);
        }
        _cidHolder[projectId][round][v.cidDigest] = (index + 1) | (seq << 32);
        _revealedMask[projectId][round][index / 256] |= uint256(1) << (index % 256);
        rs.revealedCount += 1;
        rs.activeStake += _trainers[projectId][index].stake;
        if (pr.verifier != address(0)) {
            IRoundVerifier(pr.verifier).onCommitment(projectId, round, index, v.sketchCommitment);
        }
    }
}
