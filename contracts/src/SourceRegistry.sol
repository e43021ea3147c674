// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title SourceRegistry
/// @notice Registry of decentralized-RAG sources and their on-chain reputation. A data
///         owner registers its own source (signing key, endpoint, metadata CID); clients page
///         through every source's scores (`scores(offset, limit)`), sample sources by them,
///         and evaluators submit batches of score deltas, each authorised by the source's own
///         EIP-712 receipt for the query it answered.
/// @dev Reputation of a source (one storage slot, `Source.state`):
///      - reliability as Beta-reputation evidence (Josang & Ismail 2002): `alpha` (positive)
///        and `beta` (negative), fixed point with `SCALE` = 1e6 = one query's full evidence.
///        A reliability delta `d` adds `d` to alpha when positive and `-d` to beta when
///        negative. When `alpha + beta` would exceed `MAX_EVIDENCE`, both are halved: the
///        mean `alpha / (alpha + beta)` is kept and old evidence fades (a forgetting factor),
///        so a source that turns bad is noticed and the posterior never freezes;
///      - usefulness (Reliable-dRAG, Lu et al. 2025, arXiv:2511.07577), fixed point with
///        `SCALE`, starts at `INITIAL_USEFULNESS` and saturates in [0, MAX_USEFULNESS].
///      One update may move each score by at most `MAX_DELTA_PER_QUERY` (1.0) either way.
///
///      Receipts and the nonce rule. A receipt is the source's EIP-712 signature over
///      `Receipt(uint256 sourceId,uint64 nonce,bytes32 queryId,bytes32 passagesHash)`; the
///      source numbers its receipts with one strictly increasing counter (1, 2, 3, ...). The
///      source chooses its nonces, so the rule must leave it no nonce that dodges feedback:
///      - bounded step: a receipt is usable only if `nonce <= maxNonce + MAX_NONCE_STEP`,
///        where `maxNonce` is the highest nonce of this source applied so far. A nonce of
///        2^64-1 (which froze the reputation of a source under the old window-only rule:
///        nothing above it, everything below expired) is refused, and reaching it takes
///        2^44 applied receipts;
///      - per-evaluator lanes: replay protection is kept per (source, evaluator): the
///        highest nonce that evaluator applied for the source and a bitmap of the `WINDOW`
///        nonces below it (one slot per pair). A receipt is accepted once per lane, and it
///        may arrive out of order within the lane's window. Only the evaluator's own
///        submissions move its lane, so nothing another evaluator applies (in any order,
///        with any nonce jump the source hands out) can expire or consume a receipt that
///        this evaluator holds. Under the old shared window one receipt 96 nonces ahead,
///        applied by anyone, expired every pending receipt of every evaluator. A receipt is
///        evidence that the source served a query; an evaluator can get as many as it asks
///        for, so applying a copy of another evaluator's receipt in its own lane gives it
///        nothing it could not get by asking (evaluators are trusted with the deltas, see
///        below);
///      - skip, do not revert, on nonce races: an update whose nonce is used, expired in
///        the lane or beyond the step bound is skipped with a `FeedbackSkipped` event
///        naming the reason, and the rest of the batch applies. A malformed update, an
///        unknown source, a delta over the cap or a bad signature still reverts the batch:
///        those are the submitter's own error, independent of what others submit;
///      - equivocation is punished: two different receipts of one source with one nonce
///        (the "reused nonce" dodge: a second query answered under a nonce the source
///        already used elsewhere) are a proof anyone holding them can submit
///        (`reportEquivocation`): the source is deactivated for good and its stake is
///        forfeited (kept by the contract, paid to nobody, so reporting pays no one).
///
///      Key rotation does not void receipts: `updateSource` with a new signer keeps the old
///      key valid for every nonce up to `maxNonce + MAX_NONCE_STEP` at the time of the
///      rotation (all it could have signed that was usable then); an update names the key
///      in its head (0 = current signer, k = the k-th former signer). Deactivation does not
///      stop feedback either: deltas land on the source's record whatever its state
///      (`active` only tells clients whether to sample it), so a source that deactivates to
///      let pending feedback lapse comes back with all of it; its stake stays locked for
///      `STAKE_LOCK` after deactivation, and once withdrawn the source cannot come back.
///
///      A receipt proves that the source answered that query with those passages; the
///      deltas are chosen by an evaluator (EVALUATOR_ROLE, trusted by governance) and only
///      bounded here, by the per-query caps.
///
///      Registration stake: a source is registered with exactly `sourceStake` wei (fixed at
///      deployment), the price of a Sybil identity. Clients explore new sources, so free
///      registration would let one owner flood the sampling with throw-away sources (the
///      Reliable-dRAG contract lets anyone register; ours must not). The owner gets the stake
///      back by pull payment (`withdrawStake`) once the source has been deactivated for
///      `STAKE_LOCK`, so capital stays bound for as long as each identity can be sampled.
///      Listing is paged (`scores`, at most `MAX_PAGE` sources per call): one call over all
///      sources grew with their number and passed the 30M eth_call gas cap at ~900.
contract SourceRegistry is EIP712, AccessControl {
    // ---------------------------------------------------------------- constants

    /// @notice Role allowed to submit feedback batches (granted by DEFAULT_ADMIN_ROLE).
    bytes32 public constant EVALUATOR_ROLE = keccak256("EVALUATOR_ROLE");
    /// @notice Fixed-point scale of every score and delta: 1e6 = 1.0.
    uint256 public constant SCALE = 1e6;
    /// @notice Largest |delta| of either score in one update (one query): 1.0.
    uint256 public constant MAX_DELTA_PER_QUERY = 1e6;
    /// @notice Bound on alpha + beta (1000 queries of full evidence); halved beyond it.
    uint256 public constant MAX_EVIDENCE = 1000e6;
    /// @notice Upper bound of usefulness (1000.0).
    uint256 public constant MAX_USEFULNESS = 1000e6;
    /// @notice Usefulness of a newly registered source (1.0).
    uint256 public constant INITIAL_USEFULNESS = 1e6;
    /// @notice How far below an evaluator's highest applied nonce (per source) a receipt may
    ///         still arrive.
    uint256 public constant WINDOW = 96;
    /// @notice How far above the source's highest applied nonce a receipt may be: the
    ///         queries a source may answer before any of its receipts is applied (2^20).
    uint256 public constant MAX_NONCE_STEP = 1 << 20;
    /// @notice Most sources one `scores` call returns (about 20M gas at worst, 256-byte
    ///         endpoints; under the 30M eth_call cap of common nodes).
    uint256 public constant MAX_PAGE = 500;
    /// @notice Longest endpoint URL a source may announce.
    uint256 public constant MAX_ENDPOINT_LENGTH = 256;
    /// @notice How long a deactivated source's stake stays locked before it can be withdrawn.
    uint256 public constant STAKE_LOCK = 7 days;

    /// @notice `FeedbackSkipped` reasons: the lane already applied this nonce; the nonce is
    ///         `WINDOW` or more below the lane's highest; the nonce is beyond the step bound.
    uint8 public constant SKIP_USED = 1;
    uint8 public constant SKIP_EXPIRED = 2;
    uint8 public constant SKIP_TOO_FAR = 3;

    bytes32 private constant RECEIPT_TYPEHASH = keccak256(
        "Receipt(uint256 sourceId,uint64 nonce,bytes32 queryId,bytes32 passagesHash)"
    );

    // Bit layout of the reputation slot (`Source.state`):
    // [0,32) alpha | [32,64) beta | [64,96) usefulness | [96,160) highest applied nonce.
    // Bit layout of a lane (`_lanes[sourceId][evaluator]`):
    // [0,64) highest nonce the evaluator applied | [64,160) window: bit i = nonce (highest - i).
    uint256 private constant MASK32 = 0xffffffff;
    uint256 private constant MASK64 = 0xffffffffffffffff;
    uint256 private constant WINDOW_MASK = (uint256(1) << 96) - 1;

    // ---------------------------------------------------------------- types

    /// @notice One score update for one query, with the source's receipt for it.
    /// @dev Calldata is packed (16 gas per non-zero byte makes ABI padding expensive):
    ///      `head` = sourceId (bits 0-63) | nonce (bits 64-127) | reliabilityDelta
    ///      (bits 128-159) | usefulnessDelta (bits 160-191) | key index (bits 192-223: 0 =
    ///      the current signer, k = the k-th former signer), the deltas as two's-complement
    ///      int32 in SCALE fixed point; bits 224-255 are zero. The signature is an EIP-2098
    ///      compact signature (r, vs).
    struct Update {
        uint256 head;
        bytes32 queryId;
        bytes32 passagesHash;
        bytes32 r;
        bytes32 vs;
    }

    /// @notice A source and its scores as returned by the views.
    struct SourceView {
        uint256 sourceId;
        address owner;
        address signer;
        bool active;
        uint32 alpha;
        uint32 beta;
        uint32 usefulness;
        uint64 lastNonce;
        bytes32 metadataCid;
        string endpoint;
    }

    /// @notice A signing key the source rotated away from, valid for nonces <= `until`.
    struct FormerSigner {
        address signer;
        uint64 until;
    }

    /// @dev Field order matters: slot 0 (signer, active, slashed, unlockAt) and slot 1
    ///      (state) are the source slots `applyFeedback` touches; owner and stake share slot 2.
    struct Source {
        address signer;
        bool active;
        bool slashed; // proven to have signed two receipts with one nonce
        uint64 unlockAt; // when a deactivated source's stake may be withdrawn
        uint256 state;
        address owner;
        uint96 stake; // wei still held for this source (0 once withdrawn or forfeited)
        bytes32 metadataCid;
        string endpoint;
    }

    // ---------------------------------------------------------------- storage

    /// @notice Wei a source is registered with (its stake), fixed at deployment.
    uint256 public immutable sourceStake;

    /// @notice Number of registered sources; ids run from 1 to sourceCount.
    uint256 public sourceCount;
    mapping(uint256 sourceId => Source) private _sources;
    mapping(uint256 sourceId => mapping(address evaluator => uint256)) private _lanes;
    mapping(uint256 sourceId => FormerSigner[]) private _formerSigners;

    // ---------------------------------------------------------------- events

    event SourceRegistered(
        uint256 indexed sourceId,
        address indexed owner,
        address signer,
        string endpoint,
        bytes32 metadataCid
    );
    event SourceUpdated(
        uint256 indexed sourceId, address signer, string endpoint, bytes32 metadataCid
    );
    /// @notice The source's previous key stays valid for receipts with nonce <= `until`.
    event SignerRotated(
        uint256 indexed sourceId, address formerSigner, uint256 keyIndex, uint64 until
    );
    event SourceActivation(uint256 indexed sourceId, bool active);
    event StakeWithdrawn(uint256 indexed sourceId, address indexed owner, uint256 amount);
    /// @notice Two receipts of the source with one nonce were proven; stake forfeited.
    event SourceSlashed(
        uint256 indexed sourceId, address indexed reporter, uint64 nonce, uint256 forfeited
    );
    /// @notice A batch of accepted updates: `heads[i]` is update i's packed (sourceId, nonce,
    ///         reliabilityDelta, usefulnessDelta, key index) as in `Update.head`. The query
    ///         ids and receipts are in the transaction's calldata. One log per batch instead
    ///         of one per update saves ~1,000 gas per update.
    event FeedbackApplied(address indexed evaluator, uint256[] heads);
    /// @notice An update of the batch was not applied: `reason` is SKIP_USED, SKIP_EXPIRED
    ///         or SKIP_TOO_FAR (see the contract notes).
    event FeedbackSkipped(address indexed evaluator, uint256 head, uint8 reason);

    // ---------------------------------------------------------------- errors

    error UnknownSource(uint256 sourceId);
    error NotSourceOwner(uint256 sourceId, address caller);
    error InvalidSigner();
    error EmptyEndpoint();
    error EndpointTooLong(uint256 length, uint256 max);
    error EmptyBatch();
    error MalformedUpdate(uint256 head);
    error DeltaOverCap(uint256 sourceId, int256 delta, uint256 cap);
    error InvalidReceipt(uint256 sourceId, uint64 nonce);
    error UnknownKey(uint256 sourceId, uint256 keyIndex);
    error KeyNotValidForNonce(uint256 sourceId, uint64 nonce, uint64 until);
    error NotEquivocation(uint256 sourceId, uint64 nonce);
    error SourceSlashedForEquivocation(uint256 sourceId);
    error PageTooLarge(uint256 limit, uint256 max);
    error WrongStake(uint256 sent, uint256 required);
    error StakeTooLarge(uint256 stake);
    error SourceStillActive(uint256 sourceId);
    error StakeLocked(uint256 sourceId, uint256 unlockAt);
    error NoStake(uint256 sourceId);
    error StakeTransferFailed(uint256 sourceId);

    /// @notice The deployer holds DEFAULT_ADMIN_ROLE (governance): it grants and revokes
    ///         EVALUATOR_ROLE and may hand its own role to a governance contract.
    /// @param sourceStake_ wei each source is registered with (may be 0 on a private chain)
    constructor(uint256 sourceStake_) EIP712("LedgerLearn SourceRegistry", "1") {
        if (sourceStake_ > type(uint96).max) revert StakeTooLarge(sourceStake_);
        sourceStake = sourceStake_;
        _grantRole(DEFAULT_ADMIN_ROLE, msg.sender);
    }

    // ---------------------------------------------------------------- source owners

    /// @notice Register a source owned by the caller, paying exactly `sourceStake` wei.
    /// @param signer key that signs the source's receipts (may differ from the owner)
    /// @param endpoint URL of the source node (at most MAX_ENDPOINT_LENGTH bytes)
    /// @param metadataCid digest of the CID of the source's metadata document
    /// @return sourceId the new source's id (sequential, 1-based)
    function registerSource(address signer, string calldata endpoint, bytes32 metadataCid)
        external
        payable
        returns (uint256 sourceId)
    {
        if (msg.value != sourceStake) revert WrongStake(msg.value, sourceStake);
        _checkDetails(signer, endpoint);
        sourceId = ++sourceCount;
        Source storage s = _sources[sourceId];
        s.signer = signer;
        s.active = true;
        s.state = INITIAL_USEFULNESS << 64;
        s.owner = msg.sender;
        s.stake = uint96(msg.value); // <= type(uint96).max: checked in the constructor
        s.metadataCid = metadataCid;
        s.endpoint = endpoint;
        emit SourceRegistered(sourceId, msg.sender, signer, endpoint, metadataCid);
    }

    /// @notice Change the caller's own source: signing key, endpoint and metadata.
    /// @dev Scores and lanes are kept. A new signer continues the nonce sequence; the old
    ///      key stays valid (as a former signer) for every nonce up to the source's highest
    ///      applied nonce + MAX_NONCE_STEP, i.e. for every receipt it could have signed that
    ///      was usable at the rotation, so rotating cannot void pending feedback.
    function updateSource(
        uint256 sourceId,
        address signer,
        string calldata endpoint,
        bytes32 metadataCid
    ) external {
        Source storage s = _owned(sourceId);
        _checkDetails(signer, endpoint);
        address former = s.signer;
        if (signer != former) {
            uint256 reach = ((s.state >> 96) & MASK64) + MAX_NONCE_STEP;
            uint64 until = reach > MASK64 ? type(uint64).max : uint64(reach);
            _formerSigners[sourceId].push(FormerSigner(former, until));
            emit SignerRotated(sourceId, former, _formerSigners[sourceId].length, until);
            s.signer = signer;
        }
        s.metadataCid = metadataCid;
        s.endpoint = endpoint;
        emit SourceUpdated(sourceId, signer, endpoint, metadataCid);
    }

    /// @notice Stop the caller's own source from being sampled; its stake can be withdrawn
    ///         `STAKE_LOCK` from now. Feedback still lands on its record.
    function deactivateSource(uint256 sourceId) external {
        Source storage s = _owned(sourceId);
        s.active = false;
        s.unlockAt = uint64(block.timestamp + STAKE_LOCK);
        emit SourceActivation(sourceId, false);
    }

    /// @notice Bring the caller's own deactivated source back, with every delta that arrived
    ///         meanwhile. A source whose stake was withdrawn or forfeited cannot come back.
    function reactivateSource(uint256 sourceId) external {
        Source storage s = _owned(sourceId);
        if (s.slashed) revert SourceSlashedForEquivocation(sourceId);
        if (s.stake == 0 && sourceStake != 0) revert NoStake(sourceId);
        s.active = true;
        s.unlockAt = 0;
        emit SourceActivation(sourceId, true);
    }

    /// @notice Pull the stake of the caller's own source, deactivated at least `STAKE_LOCK`
    ///         ago. Checks, then effects (the stake is zeroed), then the transfer.
    function withdrawStake(uint256 sourceId) external {
        Source storage s = _owned(sourceId);
        if (s.active) revert SourceStillActive(sourceId);
        if (block.timestamp < s.unlockAt) revert StakeLocked(sourceId, s.unlockAt);
        uint256 amount = s.stake;
        if (amount == 0) revert NoStake(sourceId);
        s.stake = 0;
        emit StakeWithdrawn(sourceId, msg.sender, amount);
        (bool ok,) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert StakeTransferFailed(sourceId);
    }

    // ---------------------------------------------------------------- evaluators

    /// @notice Apply a batch of score updates, possibly from many queries and sources, in
    ///         one transaction. Updates whose nonce lost a race (used or expired in the
    ///         caller's lane, beyond the step bound) are skipped with `FeedbackSkipped`;
    ///         any other invalid update reverts the batch with an error naming it.
    /// @dev Per update: the source exists; |each delta| <= MAX_DELTA_PER_QUERY; the receipt
    ///      recovers to the key named in the head, valid for the nonce; the nonce is within
    ///      the step bound and unused in the caller's lane. Then (see the contract notes)
    ///      alpha or beta grows by |reliabilityDelta| (both halved beyond MAX_EVIDENCE) and
    ///      usefulness moves by usefulnessDelta, saturating in [0, MAX_USEFULNESS].
    function applyFeedback(Update[] calldata updates) external onlyRole(EVALUATOR_ROLE) {
        uint256 n = updates.length;
        if (n == 0) revert EmptyBatch();
        uint256[] memory heads = new uint256[](n);
        uint256 applied = 0;
        for (uint256 i = 0; i < n; ++i) {
            (uint256 head, uint8 skipped) = _apply(updates[i]);
            if (skipped == 0) heads[applied++] = head;
            else emit FeedbackSkipped(msg.sender, head, skipped);
        }
        if (applied != 0) {
            assembly ("memory-safe") {
                mstore(heads, applied) // shrink to the applied updates
            }
            emit FeedbackApplied(msg.sender, heads);
        }
    }

    /// @notice Prove that a source signed two different receipts with one nonce: the
    ///         source is deactivated for good and its stake is forfeited (kept by the
    ///         contract). Deltas in the heads are ignored.
    function reportEquivocation(Update calldata a, Update calldata b)
        external
        onlyRole(EVALUATOR_ROLE)
    {
        uint256 sourceId = a.head & MASK64;
        uint64 nonce = uint64(a.head >> 64);
        if (
            (b.head & MASK64) != sourceId || uint64(b.head >> 64) != nonce
                || (a.queryId == b.queryId && a.passagesHash == b.passagesHash)
        ) revert NotEquivocation(sourceId, nonce);
        Source storage s = _existing(sourceId);
        if (s.slashed) revert SourceSlashedForEquivocation(sourceId);
        _verify(s, a);
        _verify(s, b);
        uint256 forfeited = s.stake;
        s.slashed = true;
        s.active = false;
        s.stake = 0;
        emit SourceSlashed(sourceId, msg.sender, nonce, forfeited);
        emit SourceActivation(sourceId, false);
    }

    // ---------------------------------------------------------------- views

    /// @notice Sources with ids offset+1 .. offset+limit (clipped to sourceCount), at most
    ///         MAX_PAGE per call: page through `sourceCount` sources.
    function scores(uint256 offset, uint256 limit) external view returns (SourceView[] memory) {
        if (limit > MAX_PAGE) revert PageTooLarge(limit, MAX_PAGE);
        return _page(offset, limit);
    }

    /// @notice One source and its scores.
    function getSource(uint256 sourceId) external view returns (SourceView memory) {
        _existing(sourceId);
        return _view(sourceId);
    }

    /// @notice The keys a source rotated away from, oldest first (key index k = entry k-1).
    function formerSigners(uint256 sourceId) external view returns (FormerSigner[] memory) {
        _existing(sourceId);
        return _formerSigners[sourceId];
    }

    /// @notice Whether the source was proven to have signed two receipts with one nonce.
    function isSlashed(uint256 sourceId) external view returns (bool) {
        return _existing(sourceId).slashed;
    }

    /// @notice The stake held for a source and when it unlocks (0 while the source is active).
    function stakeOf(uint256 sourceId) external view returns (uint256 stake, uint64 unlockAt) {
        Source storage s = _existing(sourceId);
        return (s.stake, s.unlockAt);
    }

    /// @notice An evaluator's lane for a source: the highest nonce it applied and the window
    ///         bitmap below it (bit i set = nonce highest - i applied).
    function laneOf(uint256 sourceId, address evaluator)
        external
        view
        returns (uint64 lastNonce, uint96 window)
    {
        _existing(sourceId);
        uint256 lane = _lanes[sourceId][evaluator];
        return (uint64(lane & MASK64), uint96(lane >> 64));
    }

    /// @notice 0 if `evaluator` could apply a receipt with this nonce for the source now,
    ///         else the SKIP_* reason it would be skipped with.
    function receiptStatus(uint256 sourceId, address evaluator, uint64 nonce)
        external
        view
        returns (uint8)
    {
        uint256 state = _existing(sourceId).state;
        return _nonceStatus(state, _lanes[sourceId][evaluator], nonce);
    }

    /// @notice The EIP-712 digest a source signs for a receipt (for clients and tests).
    function receiptDigest(uint256 sourceId, uint64 nonce, bytes32 queryId, bytes32 passagesHash)
        external
        view
        returns (bytes32)
    {
        return _receiptDigest(sourceId, nonce, queryId, passagesHash);
    }

    /// @notice The EIP-712 domain separator sources sign under.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ---------------------------------------------------------------- internals

    /// @dev Verify and apply one update; `skipped` is 0 or the SKIP_* reason (state untouched).
    function _apply(Update calldata u) private returns (uint256 head, uint8 skipped) {
        head = u.head;
        uint256 sourceId = head & MASK64;
        Source storage s = _sources[sourceId];
        int256 dr = int32(uint32(head >> 128));
        int256 du = int32(uint32(head >> 160));
        if (_abs(dr) > MAX_DELTA_PER_QUERY) revert DeltaOverCap(sourceId, dr, MAX_DELTA_PER_QUERY);
        if (_abs(du) > MAX_DELTA_PER_QUERY) revert DeltaOverCap(sourceId, du, MAX_DELTA_PER_QUERY);
        uint64 nonce = _verify(s, u);

        uint256 state = s.state;
        mapping(uint256 => mapping(address => uint256)) storage lanes = _lanes;
        uint256 lane = lanes[sourceId][msg.sender];
        skipped = _nonceStatus(state, lane, nonce);
        if (skipped != 0) return (head, skipped);

        uint256 highest = (state >> 96) & MASK64;
        if (nonce > highest) highest = nonce;
        s.state = _nextState(state, dr, du) | (highest << 96);
        lanes[sourceId][msg.sender] = _markLane(lane, nonce);
    }

    /// @dev Check the head's shape, the source and the receipt's signature by the key the
    ///      head names (valid for the nonce); returns the nonce.
    function _verify(Source storage s, Update calldata u) private view returns (uint64 nonce) {
        uint256 head = u.head;
        if (head >> 224 != 0) revert MalformedUpdate(head);
        uint256 sourceId = head & MASK64;
        address signer = s.signer;
        if (signer == address(0)) revert UnknownSource(sourceId);
        nonce = uint64(head >> 64);
        uint256 keyIndex = (head >> 192) & MASK32;
        if (keyIndex != 0) {
            FormerSigner[] storage former = _formerSigners[sourceId];
            if (keyIndex > former.length) revert UnknownKey(sourceId, keyIndex);
            FormerSigner storage f = former[keyIndex - 1];
            if (nonce > f.until) revert KeyNotValidForNonce(sourceId, nonce, f.until);
            signer = f.signer;
        }
        bytes32 digest = _receiptDigest(sourceId, nonce, u.queryId, u.passagesHash);
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, u.r, u.vs);
        if (err != ECDSA.RecoverError.NoError || recovered != signer) {
            revert InvalidReceipt(sourceId, nonce);
        }
    }

    /// @dev 0 if a lane may apply `nonce` (see the contract notes), else the SKIP_* reason.
    ///      Unchecked is safe: the highest nonce is < 2^64, so + MAX_NONCE_STEP cannot
    ///      overflow, and each subtraction is guarded by the comparison before it.
    function _nonceStatus(uint256 state, uint256 lane, uint64 nonce)
        private
        pure
        returns (uint8)
    {
        unchecked {
            if (nonce == 0 || nonce > ((state >> 96) & MASK64) + MAX_NONCE_STEP) {
                return SKIP_TOO_FAR;
            }
            uint256 last = lane & MASK64;
            if (nonce > last) return 0;
            uint256 back = last - nonce;
            if (back >= WINDOW) return SKIP_EXPIRED;
            return ((lane >> 64) >> back) & 1 == 0 ? 0 : SKIP_USED;
        }
    }

    /// @dev The lane after accepting `nonce` (checked by `_nonceStatus`).
    function _markLane(uint256 lane, uint64 nonce) private pure returns (uint256) {
        unchecked {
            uint256 last = lane & MASK64;
            uint256 window = lane >> 64;
            if (nonce > last) {
                uint256 shift = nonce - last;
                window = shift >= WINDOW ? 1 : ((window << shift) | 1) & WINDOW_MASK;
                last = nonce;
            } else {
                window |= uint256(1) << (last - nonce);
            }
            return last | (window << 64);
        }
    }

    /// @dev New (alpha, beta, usefulness) bits of `state` after one update. Unchecked is
    ///      safe: every score stays <= max(MAX_EVIDENCE, MAX_USEFULNESS) + MAX_DELTA_PER_QUERY
    ///      < 2^32 and |dr|, |du| <= MAX_DELTA_PER_QUERY were checked by the caller.
    function _nextState(uint256 state, int256 dr, int256 du) private pure returns (uint256) {
        unchecked {
            uint256 alpha = state & MASK32;
            uint256 beta = (state >> 32) & MASK32;
            uint256 usefulness = (state >> 64) & MASK32;
            if (dr > 0) alpha += uint256(dr);
            else beta += uint256(-dr);
            if (alpha + beta > MAX_EVIDENCE) {
                alpha >>= 1;
                beta >>= 1;
            }
            if (du >= 0) {
                usefulness += uint256(du);
                if (usefulness > MAX_USEFULNESS) usefulness = MAX_USEFULNESS;
            } else {
                uint256 down = uint256(-du);
                usefulness = usefulness > down ? usefulness - down : 0;
            }
            return alpha | (beta << 32) | (usefulness << 64);
        }
    }

    function _receiptDigest(
        uint256 sourceId,
        uint64 nonce,
        bytes32 queryId,
        bytes32 passagesHash
    ) private view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(abi.encode(RECEIPT_TYPEHASH, sourceId, nonce, queryId, passagesHash))
        );
    }

    function _abs(int256 x) private pure returns (uint256) {
        return x >= 0 ? uint256(x) : uint256(-x);
    }

    function _checkDetails(address signer, string calldata endpoint) private pure {
        if (signer == address(0)) revert InvalidSigner();
        uint256 length = bytes(endpoint).length;
        if (length == 0) revert EmptyEndpoint();
        if (length > MAX_ENDPOINT_LENGTH) revert EndpointTooLong(length, MAX_ENDPOINT_LENGTH);
    }

    function _existing(uint256 sourceId) private view returns (Source storage s) {
        s = _sources[sourceId];
        if (s.signer == address(0)) revert UnknownSource(sourceId);
    }

    function _owned(uint256 sourceId) private view returns (Source storage s) {
        s = _existing(sourceId);
        if (s.owner != msg.sender) revert NotSourceOwner(sourceId, msg.sender);
    }

    function _page(uint256 offset, uint256 limit) private view returns (SourceView[] memory out) {
        uint256 count = sourceCount;
        uint256 start = offset < count ? offset : count;
        uint256 end = count - start < limit ? count : start + limit;
        out = new SourceView[](end - start);
        for (uint256 i = start; i < end; ++i) {
            out[i - start] = _view(i + 1);
        }
    }

    function _view(uint256 sourceId) private view returns (SourceView memory v) {
        Source storage s = _sources[sourceId];
        uint256 state = s.state;
        v = SourceView({
            sourceId: sourceId,
            owner: s.owner,
            signer: s.signer,
            active: s.active,
            alpha: uint32(state & MASK32),
            beta: uint32((state >> 32) & MASK32),
            usefulness: uint32((state >> 64) & MASK32),
            lastNonce: uint64((state >> 96) & MASK64),
            metadataCid: s.metadataCid,
            endpoint: s.endpoint
        });
    }
}
