"""Typed client of ``SourceRegistry``: the only Python that encodes its calls.

The registry holds decentralized-RAG sources and their reputation (ARCHITECTURE.md, "The
dRAG query", steps 1 and 6). Scores are fixed point with :data:`SCALE` = 1e6 = 1.0:
reliability as Beta-reputation evidence ``alpha``/``beta`` (Josang & Ismail 2002), halved
together whenever their sum would pass :data:`MAX_EVIDENCE`, and usefulness (Reliable-dRAG,
Lu et al. 2025, arXiv:2511.07577) saturating in ``[0, MAX_USEFULNESS]``.

Every feedback update carries the source's EIP-712 receipt (https://eips.ethereum.org/EIPS/
eip-712) over :data:`RECEIPT_TYPE` under the domain ``("LedgerLearn SourceRegistry", "1",
chainId, registry address)``. A source numbers its receipts with its own nonce; the contract
accepts each ``(sourceId, nonce)`` once and within a window of :data:`WINDOW` nonces below the
highest it has seen, so replay protection costs no fresh storage per query. Signatures travel
as EIP-2098 compact ``(r, vs)`` pairs (https://eips.ethereum.org/EIPS/eip-2098). The
typed data itself is defined once, in :mod:`drag.receipts` (what source nodes sign), and
re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils import keccak
from web3.types import TxReceipt

from drag.receipts import DOMAIN_NAME as DOMAIN_NAME
from drag.receipts import DOMAIN_VERSION as DOMAIN_VERSION
from drag.receipts import RECEIPT_FIELDS as RECEIPT_FIELDS
from drag.receipts import RECEIPT_TYPE as RECEIPT_TYPE
from drag.receipts import ReceiptDomain, sign_digest
from drag.receipts import receipt_typed_data as receipt_typed_data
from marketplace.chain.client import ContractClient
from marketplace.errors import ConfigError

ZERO32 = b"\x00" * 32

# Mirrors of the contract's constants (a test checks them against the deployed contract).
SCALE = 10**6
MAX_DELTA_PER_QUERY = 10**6
MAX_EVIDENCE = 1000 * 10**6
MAX_USEFULNESS = 1000 * 10**6
INITIAL_USEFULNESS = 10**6
WINDOW = 96
STAKE_LOCK = 7 * 24 * 3600
"""Seconds a deactivated source's stake stays locked (``SourceRegistry.STAKE_LOCK``)."""
EVALUATOR_ROLE = keccak(text="EVALUATOR_ROLE")
DEFAULT_ADMIN_ROLE = ZERO32
_SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0


@dataclass(frozen=True)
class SourceInfo:
    """One registered source and its scores, raw fixed point as stored on-chain."""

    source_id: int
    owner: str
    signer: str
    active: bool
    alpha: int
    beta: int
    usefulness: int
    last_nonce: int
    metadata_cid: bytes
    endpoint: str

    @property
    def scores(self) -> Scores:
        return Scores(self.alpha, self.beta, self.usefulness)

    @property
    def reliability_pos(self) -> float:
        """Positive reliability evidence in queries (alpha / SCALE)."""
        return self.alpha / SCALE

    @property
    def reliability_neg(self) -> float:
        """Negative reliability evidence in queries (beta / SCALE)."""
        return self.beta / SCALE

    @property
    def usefulness_score(self) -> float:
        """Usefulness as a float (1.0 for a new source)."""
        return self.usefulness / SCALE


@dataclass(frozen=True)
class FeedbackUpdate:
    """One source's score change for one query, authorised by that source's receipt.

    Deltas are fixed point (``round(delta * SCALE)``), each within ``MAX_DELTA_PER_QUERY``.
    ``signature`` is the source's 65-byte (r, s, v) or 64-byte EIP-2098 receipt signature.
    """

    source_id: int
    nonce: int
    query_id: bytes
    passages_hash: bytes
    reliability_delta: int
    usefulness_delta: int
    signature: bytes

    @property
    def head(self) -> int:
        """The packed first word of ``SourceRegistry.Update`` (see :func:`pack_head`)."""
        return pack_head(self.source_id, self.nonce, self.reliability_delta, self.usefulness_delta)

    def as_tuple(self) -> tuple[int, bytes, bytes, bytes, bytes]:
        """The ``SourceRegistry.Update`` struct as web3 encodes it."""
        r, vs = compact_signature(self.signature)
        return (self.head, self.query_id, self.passages_hash, r, vs)


@dataclass(frozen=True)
class Head:
    """An update's packed first word, decoded (as in ``FeedbackApplied`` events)."""

    source_id: int
    nonce: int
    reliability_delta: int
    usefulness_delta: int


def _int32(value: int, what: str) -> int:
    if not -(2**31) <= value < 2**31:
        raise ConfigError(f"{what}={value} does not fit int32; deltas are fixed point 1e6 = 1.0")
    return value & 0xFFFFFFFF


def pack_head(source_id: int, nonce: int, reliability_delta: int, usefulness_delta: int) -> int:
    """``sourceId | nonce << 64 | reliabilityDelta << 128 | usefulnessDelta << 160``.

    Packing the small fields into one word saves the ABI's zero padding (and the 0xff
    sign extension of negative deltas) in calldata, which costs 4-16 gas per byte.
    """
    if not 0 <= source_id < 2**64 or not 0 <= nonce < 2**64:
        raise ConfigError(f"source id {source_id} and nonce {nonce} must fit uint64")
    return (
        source_id
        | nonce << 64
        | _int32(reliability_delta, "reliability_delta") << 128
        | _int32(usefulness_delta, "usefulness_delta") << 160
    )


def unpack_head(head: int) -> Head:
    """Inverse of :func:`pack_head`."""

    def signed(bits: int) -> int:
        return bits - 2**32 if bits >= 2**31 else bits

    return Head(
        source_id=head & (2**64 - 1),
        nonce=(head >> 64) & (2**64 - 1),
        reliability_delta=signed((head >> 128) & 0xFFFFFFFF),
        usefulness_delta=signed((head >> 160) & 0xFFFFFFFF),
    )


@dataclass(frozen=True)
class Scores:
    """A source's reputation in the contract's fixed point."""

    alpha: int = 0
    beta: int = 0
    usefulness: int = INITIAL_USEFULNESS


def next_scores(scores: Scores, reliability_delta: int, usefulness_delta: int) -> Scores:
    """The contract's score rule for one update, as a pure function (for simulations and
    as the reference the tests hold the contract to).

    A positive reliability delta adds to ``alpha``, a negative one to ``beta``; when
    ``alpha + beta`` would pass :data:`MAX_EVIDENCE` both are halved (Beta reputation with
    a forgetting factor, Josang & Ismail 2002: the mean is kept, old evidence fades).
    Usefulness moves by its delta and saturates in ``[0, MAX_USEFULNESS]``. Deltas beyond
    :data:`MAX_DELTA_PER_QUERY` are refused, as the contract refuses them.
    """
    for delta in (reliability_delta, usefulness_delta):
        if abs(delta) > MAX_DELTA_PER_QUERY:
            raise ConfigError(
                f"delta {delta} exceeds the per-query cap {MAX_DELTA_PER_QUERY}; clip it"
            )
    alpha = scores.alpha + max(reliability_delta, 0)
    beta = scores.beta + max(-reliability_delta, 0)
    if alpha + beta > MAX_EVIDENCE:
        alpha, beta = alpha // 2, beta // 2
    usefulness = min(max(scores.usefulness + usefulness_delta, 0), MAX_USEFULNESS)
    return Scores(alpha, beta, usefulness)


def to_fixed(value: float) -> int:
    """A score delta as the contract's fixed point: ``round(value * SCALE)``."""
    return round(value * SCALE)


def compact_signature(signature: bytes) -> tuple[bytes, bytes]:
    """EIP-2098 ``(r, vs)`` of a 65-byte ``r || s || v`` signature (64 bytes pass through)."""
    if len(signature) == 64:
        return signature[:32], signature[32:]
    if len(signature) != 65:
        raise ConfigError(f"receipt signature has {len(signature)} bytes; expected 65 or 64")
    v = signature[64]
    parity = v - 27 if v >= 27 else v
    s = int.from_bytes(signature[32:64], "big")
    if parity not in (0, 1) or s > _SECP256K1_HALF_N:
        raise ConfigError("receipt signature is not a canonical secp256k1 signature (v or s)")
    return signature[:32], (s | (parity << 255)).to_bytes(32, "big")


def sign_receipt(
    private_key: str | bytes,
    chain_id: int,
    registry: str,
    source_id: int,
    nonce: int,
    query_id: bytes,
    passages_hash: bytes,
) -> bytes:
    """The 65-byte EIP-712 signature of a receipt by the source key ``private_key``."""
    domain = ReceiptDomain(chain_id, registry)
    return sign_digest(private_key, domain, source_id, nonce, query_id, passages_hash)


class RegistryClient(ContractClient):
    """Calls ``SourceRegistry`` at ``address`` on ``chain`` as ``account``."""

    CONTRACT = "SourceRegistry"

    @staticmethod
    def _info(raw: Sequence[Any]) -> SourceInfo:
        return SourceInfo(
            source_id=int(raw[0]),
            owner=str(raw[1]),
            signer=str(raw[2]),
            active=bool(raw[3]),
            alpha=int(raw[4]),
            beta=int(raw[5]),
            usefulness=int(raw[6]),
            last_nonce=int(raw[7]),
            metadata_cid=bytes(raw[8]),
            endpoint=str(raw[9]),
        )

    def source_count(self) -> int:
        return int(self.contract.functions.sourceCount().call())

    def source(self, source_id: int) -> SourceInfo:
        raw = self._call(self.contract.functions.getSource(source_id), f"source {source_id}")
        return self._info(raw)

    def all_scores(self) -> list[SourceInfo]:
        """Every source with its scores, in id order, from one ``eth_call``."""
        return [self._info(r) for r in self.contract.functions.allScores().call()]

    def scores(self, offset: int, limit: int) -> list[SourceInfo]:
        """Sources ``offset + 1 .. offset + limit`` (for registries too big for one call)."""
        return [self._info(r) for r in self.contract.functions.scores(offset, limit).call()]

    def receipt_usable(self, source_id: int, nonce: int) -> bool:
        """Whether the registry would still accept this source's receipt ``nonce``."""
        fn = self.contract.functions.receiptUsable(source_id, nonce)
        return bool(self._call(fn, "receiptUsable"))

    def receipt_digest(
        self, source_id: int, nonce: int, query_id: bytes, passages_hash: bytes
    ) -> bytes:
        """The EIP-712 digest the contract verifies (to cross-check off-chain signers)."""
        fn = self.contract.functions.receiptDigest(source_id, nonce, query_id, passages_hash)
        return bytes(fn.call())

    def is_evaluator(self, account: str) -> bool:
        return bool(self.contract.functions.hasRole(EVALUATOR_ROLE, account).call())

    _source_stake: int | None = None

    def source_stake(self) -> int:
        """Wei a source registers with. It is an immutable of the contract, so each client
        reads it once (the CLI shows it and ``register_source`` pays it)."""
        if self._source_stake is None:
            self._source_stake = int(self.contract.functions.sourceStake().call())
        return self._source_stake

    def stake_of(self, source_id: int) -> tuple[int, int]:
        """(wei still staked for the source, unix time it unlocks; 0 while active)."""
        fn = self.contract.functions.stakeOf(source_id)
        stake, unlock_at = self._call(fn, f"stake of source {source_id}")
        return int(stake), int(unlock_at)

    # ------------------------------------------------------------- writes

    def register_source(
        self, signer: str, endpoint: str, metadata_cid: bytes = ZERO32
    ) -> tuple[int, TxReceipt]:
        """Register a source owned by this client's account, paying the registry's stake;
        returns (source id, receipt)."""
        receipt = self._tx(
            self.contract.functions.registerSource(signer, endpoint, metadata_cid),
            value=self.source_stake(),
            action="registerSource",
        )
        event = self.contract.events.SourceRegistered().process_receipt(receipt)[0]
        return int(event["args"]["sourceId"]), receipt

    def update_source(
        self, source_id: int, signer: str, endpoint: str, metadata_cid: bytes = ZERO32
    ) -> TxReceipt:
        fn = self.contract.functions.updateSource(source_id, signer, endpoint, metadata_cid)
        return self._tx(fn)

    def deactivate(self, source_id: int) -> TxReceipt:
        return self._tx(self.contract.functions.deactivateSource(source_id))

    def reactivate(self, source_id: int) -> TxReceipt:
        return self._tx(self.contract.functions.reactivateSource(source_id))

    def withdraw_stake(self, source_id: int) -> TxReceipt:
        """Pull the stake of a source deactivated at least ``STAKE_LOCK`` ago."""
        return self._tx(self.contract.functions.withdrawStake(source_id), action="withdrawStake")

    def grant_evaluator(self, account: str) -> TxReceipt:
        """Let ``account`` submit feedback (needs DEFAULT_ADMIN_ROLE)."""
        return self._tx(self.contract.functions.grantRole(EVALUATOR_ROLE, account))

    def revoke_evaluator(self, account: str) -> TxReceipt:
        return self._tx(self.contract.functions.revokeRole(EVALUATOR_ROLE, account))

    def apply_feedback(
        self, updates: Sequence[FeedbackUpdate], gas: int | None = None
    ) -> TxReceipt:
        """Submit a batch of updates in one transaction (needs EVALUATOR_ROLE).

        All or nothing: an invalid update reverts the batch with an error naming its source
        and nonce (``ReceiptAlreadyUsed``, ``ReceiptExpired``, ``InvalidReceipt``, ...).
        """
        batch = [u.as_tuple() for u in updates]
        return self._tx(self.contract.functions.applyFeedback(batch), gas=gas)

    def sign_receipt(
        self,
        private_key: str | bytes,
        source_id: int,
        nonce: int,
        query_id: bytes,
        passages_hash: bytes,
    ) -> bytes:
        """A source's receipt signature under this registry's domain."""
        return sign_receipt(
            private_key,
            self.chain.chain_id,
            self.address,
            source_id,
            nonce,
            query_id,
            passages_hash,
        )
