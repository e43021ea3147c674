// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title SourceRegistry
/// @notice Registry of decentralized-RAG sources and their on-chain reputation. A data
///         owner registers its own source (signing key, endpoint, metadata CID); clients read
///         every source's scores in one call, sample sources by them, and evaluators submit
///         batches of score deltas, each authorised by the source's own EIP-712 receipt for
///         the query it answered.
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
///      Receipts and replay: a receipt is the source's EIP-712 signature over
///      `Receipt(uint256 sourceId,uint64 nonce,bytes32 queryId,bytes32 passagesHash)`; the
///      source numbers its receipts with its own nonce (1, 2, 3, ...). Each (sourceId, nonce)
///      is accepted once. The contract keeps, per source, the highest nonce seen and a bitmap
///      of the `WINDOW` nonces below it, so receipts may arrive out of order within that
///      window; a receipt more than `WINDOW - 1` below the highest nonce seen is expired.
///      This keeps replay protection inside the score slot: no fresh storage per query.
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
    /// @notice How far below the highest nonce seen a receipt may still be accepted.
    uint256 public constant WINDOW = 96;
    /// @notice Longest endpoint URL a source may announce.
    uint256 public constant MAX_ENDPOINT_LENGTH = 256;
    /// @notice How long a deactivated source's stake stays locked before it can be withdrawn.
    uint256 public constant STAKE_LOCK = 7 days;

    bytes32 private constant RECEIPT_TYPEHASH = keccak256(
        "Receipt(uint256 sourceId,uint64 nonce,bytes32 queryId,bytes32 passagesHash)"
    );

    // Bit layout of the reputation slot (`Source.state`):
    // [0,32) alpha | [32,64) beta | [64,96) usefulness | [96,160) highest nonce |
    // [160,256) window bitmap: bit i set = nonce (highest - i) used.
    uint256 private constant MASK32 = 0xffffffff;
    uint256 private constant MASK64 = 0xffffffffffffffff;
    uint256 private constant WINDOW_MASK = (uint256(1) << 96) - 1;

    // ---------------------------------------------------------------- types

    /// @notice One score update for one query, with the source's receipt for it.
    /// @dev Calldata is packed (16 gas per non-zero byte makes ABI padding expensive):
    ///      `head` = sourceId (bits 0-63) | nonce (bits 64-127) | reliabilityDelta
    ///      (bits 128-159) | usefulnessDelta (bits 160-191), the deltas as two's-complement
    ///      int32 in SCALE fixed point; bits 192-255 are zero. The signature is an EIP-2098
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

    /// @dev Field order matters: slot 0 (signer, active, unlockAt) and slot 1 (state) are
    ///      the only slots `applyFeedback` touches; owner and stake share slot 2.
    struct Source {
        address signer;
        bool active;
        uint64 unlockAt; // when a deactivated source's stake may be withdrawn
        uint256 state;
        address owner;
        uint96 stake; // wei still held for this source (0 once withdrawn)
        bytes32 metadataCid;
        string endpoint;
    }

    // ---------------------------------------------------------------- storage

    /// @notice Wei a source is registered with (its stake), fixed at deployment.
    uint256 public immutable sourceStake;

    /// @notice Number of registered sources; ids run from 1 to sourceCount.
    uint256 public sourceCount;
    mapping(uint256 sourceId => Source) private _sources;

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
    event SourceActivation(uint256 indexed sourceId, bool active);
    event StakeWithdrawn(uint256 indexed sourceId, address indexed owner, uint256 amount);
    /// @notice A batch of accepted updates: `heads[i]` is update i's packed (sourceId, nonce,
    ///         reliabilityDelta, usefulnessDelta) as in `Update.head`. The query ids and
    ///         receipts are in the transaction's calldata. One log per batch instead of one
    ///         per update saves ~1,000 gas per update.
    event FeedbackApplied(address indexed evaluator, uint256[] heads);

    // ---------------------------------------------------------------- errors

    error UnknownSource(uint256 sourceId);
    error NotSourceOwner(uint256 sourceId, address caller);
    error SourceInactive(uint256 sourceId);
    error InvalidSigner();
    error EmptyEndpoint();
    error EndpointTooLong(uint256 length, uint256 max);
    error EmptyBatch();
    error MalformedUpdate(uint256 head);
    error DeltaOverCap(uint256 sourceId, int256 delta, uint256 cap);
    error ReceiptAlreadyUsed(uint256 sourceId, uint64 nonce);
    error ReceiptExpired(uint256 sourceId, uint64 nonce, uint64 lastNonce);
    error InvalidReceipt(uint256 sourceId, uint64 nonce);
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
    /// @dev Scores and the receipt nonce window are kept. Receipts signed by the old key
    ///      and not yet submitted stop verifying; the new key continues the nonce sequence.
    function updateSource(
        uint256 sourceId,
        address signer,
        string calldata endpoint,
        bytes32 metadataCid
    ) external {
        Source storage s = _owned(sourceId);
        _checkDetails(signer, endpoint);
        s.signer = signer;
        s.metadataCid = metadataCid;
        s.endpoint = endpoint;
        emit SourceUpdated(sourceId, signer, endpoint, metadataCid);
    }

    /// @notice Stop the caller's own source from being sampled and from receiving feedback;
    ///         its stake can be withdrawn `STAKE_LOCK` from now.
    function deactivateSource(uint256 sourceId) external {
        Source storage s = _owned(sourceId);
        s.active = false;
        s.unlockAt = uint64(block.timestamp + STAKE_LOCK);
        emit SourceActivation(sourceId, false);
    }

    /// @notice Bring the caller's own deactivated source back; its scores are unchanged. A
    ///         source whose stake was withdrawn cannot come back: register a new one.
    function reactivateSource(uint256 sourceId) external {
        Source storage s = _owned(sourceId);
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
    ///         one transaction. All or nothing: any invalid update reverts the batch with an
    ///         error naming its source and nonce.
    /// @dev Per update: the source exists and is active; |each delta| <= MAX_DELTA_PER_QUERY;
    ///      the nonce is unused and within WINDOW of the source's highest nonce; the receipt
    ///      recovers to the source's registered signer. Then (see the contract notes) alpha
    ///      or beta grows by |reliabilityDelta| (both halved beyond MAX_EVIDENCE) and
    ///      usefulness moves by usefulnessDelta, saturating in [0, MAX_USEFULNESS].
    function applyFeedback(Update[] calldata updates) external onlyRole(EVALUATOR_ROLE) {
        uint256 n = updates.length;
        if (n == 0) revert EmptyBatch();
        uint256[] memory heads = new uint256[](n);
        for (uint256 i = 0; i < n; ++i) {
            heads[i] = _apply(updates[i]);
        }
        emit FeedbackApplied(msg.sender, heads);
    }

    // ---------------------------------------------------------------- views

    /// @notice Every source with its scores, in id order, in one call.
    function allScores() external view returns (SourceView[] memory) {
        return _page(0, sourceCount);
    }

    /// @notice Sources with ids offset+1 .. offset+limit (clipped to sourceCount).
    function scores(uint256 offset, uint256 limit) external view returns (SourceView[] memory) {
        return _page(offset, limit);
    }

    /// @notice One source and its scores.
    function getSource(uint256 sourceId) external view returns (SourceView memory) {
        _existing(sourceId);
        return _view(sourceId);
    }

    /// @notice The stake held for a source and when it unlocks (0 while the source is active).
    function stakeOf(uint256 sourceId) external view returns (uint256 stake, uint64 unlockAt) {
        Source storage s = _existing(sourceId);
        return (s.stake, s.unlockAt);
    }

    /// @notice Whether a receipt with this nonce would still be accepted for the source.
    function receiptUsable(uint256 sourceId, uint64 nonce) external view returns (bool) {
        uint256 state = _existing(sourceId).state;
        uint64 last = uint64((state >> 96) & MASK64);
        if (nonce > last) return true;
        uint256 back = uint256(last - nonce);
        return back < WINDOW && ((state >> 160) >> back) & 1 == 0;
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

    function _apply(Update calldata u) private returns (uint256 head) {
        head = u.head;
        if (head >> 192 != 0) revert MalformedUpdate(head);
        uint256 sourceId = head & MASK64;
        Source storage s = _sources[sourceId];
        address signer = s.signer;
        if (signer == address(0)) revert UnknownSource(sourceId);
        if (!s.active) revert SourceInactive(sourceId);
        int256 dr = int32(uint32(head >> 128));
        int256 du = int32(uint32(head >> 160));
        if (_abs(dr) > MAX_DELTA_PER_QUERY) revert DeltaOverCap(sourceId, dr, MAX_DELTA_PER_QUERY);
        if (_abs(du) > MAX_DELTA_PER_QUERY) revert DeltaOverCap(sourceId, du, MAX_DELTA_PER_QUERY);

        uint256 state = s.state;
        uint64 nonce = uint64(head >> 64);
        uint256 replay = _markNonce(state >> 96, sourceId, nonce);

        bytes32 digest = _receiptDigest(sourceId, nonce, u.queryId, u.passagesHash);
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, u.r, u.vs);
        if (err != ECDSA.RecoverError.NoError || recovered != signer) {
            revert InvalidReceipt(sourceId, nonce);
        }

        s.state = _nextState(state, dr, du) | (replay << 96);
    }

    /// @dev Replay bits (highest nonce | window << 64) after accepting `nonce`, or a revert
    ///      when it was used or is WINDOW or more below the highest nonce seen. Unchecked is
    ///      safe: each subtraction is guarded by the comparison before it.
    function _markNonce(uint256 replay, uint256 sourceId, uint64 nonce)
        private
        pure
        returns (uint256)
    {
        unchecked {
            uint256 last = replay & MASK64;
            uint256 window = replay >> 64;
            if (nonce > last) {
                uint256 shift = nonce - last;
                window = shift >= WINDOW ? 1 : ((window << shift) | 1) & WINDOW_MASK;
                last = nonce;
            } else {
                uint256 back = last - nonce;
                if (back >= WINDOW) revert ReceiptExpired(sourceId, nonce, uint64(last));
                uint256 bit = uint256(1) << back;
                if (window & bit != 0) revert ReceiptAlreadyUsed(sourceId, nonce);
                window |= bit;
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
