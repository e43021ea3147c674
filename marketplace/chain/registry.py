"""Typed client of ``SourceRegistry``: the only Python that encodes its calls.

The registry holds decentralized-RAG sources and their reputation (docs/architecture.md, "The
dRAG query", steps 1 and 6). Listing is paged: :meth:`RegistryClient.all_scores` reads
``scores(offset, limit)`` pages of at most :data:`MAX_PAGE` sources, since one call over all
sources passed the 30M eth_call gas cap at ~900 sources. Scores are fixed point with
:data:`SCALE` = 1e6 = 1.0: reliability as Beta-reputation evidence ``alpha``/``beta``
(Josang & Ismail 2002), halved together whenever their sum would pass
:data:`MAX_EVIDENCE`, and usefulness (Reliable-dRAG, Lu et al. 2025, arXiv:2511.07577)
saturating in ``[0, MAX_USEFULNESS]``.

Every feedback update carries the source's EIP-712 receipt (https://eips.ethereum.org/EIPS/
eip-712) over :data:`RECEIPT_TYPE` under the domain ``("LedgerLearn SourceRegistry", "1",
chainId, registry address)``. A source numbers its receipts with one strictly increasing
nonce. The contract (see its notes for why) accepts a receipt only within
:data:`MAX_NONCE_STEP` of the source's highest applied nonce, and once per *lane* (source,
evaluator): each lane keeps its highest nonce and a :data:`WINDOW`-nonce bitmap below it, so
no evaluator's submissions can expire or use up receipts another evaluator holds. Updates
that lose a nonce race are skipped with a reason (:data:`SKIP_REASONS`), not reverted.
Signatures travel as EIP-2098 compact ``(r, vs)`` pairs
(https://eips.ethereum.org/EIPS/eip-2098). The typed data itself is defined once, in
:mod:`drag.receipts` (what source nodes sign; sources sign, the chain client only submits):
the chain layer never imports ``drag``, and a test checks the contract's ``receiptDigest``
against that definition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils import keccak
from web3.logs import DISCARD
from web3.types import TxReceipt

from marketplace.chain.client import ContractClient
from marketplace.chain.constants import ZERO32
from marketplace.errors import ConfigError

# Mirrors of the contract's constants (a test checks them against the deployed contract).
SCALE = 10**6
MAX_DELTA_PER_QUERY = 10**6
MAX_EVIDENCE = 1000 * 10**6
MAX_USEFULNESS = 1000 * 10**6
INITIAL_USEFULNESS = 10**6
WINDOW = 96
MAX_NONCE_STEP = 2**20
"""How far above a source's highest applied nonce a receipt may be (``MAX_NONCE_STEP``)."""
MAX_PAGE = 500
"""Most sources one ``scores(offset, limit)`` call returns (``SourceRegistry.MAX_PAGE``)."""
SKIP_USED, SKIP_EXPIRED, SKIP_TOO_FAR = 1, 2, 3
SKIP_REASONS = {
    SKIP_USED: "receipt already applied in this evaluator's lane",
    SKIP_EXPIRED: f"nonce is {WINDOW} or more below this evaluator's newest for the source",
    SKIP_TOO_FAR: f"nonce is 0 or more than {MAX_NONCE_STEP} above the source's highest applied",
}
"""``FeedbackSkipped`` reason codes and what they mean (``SourceRegistry.SKIP_*``)."""
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
    ``key_index`` names the key that signed it: 0 for the source's current signer, k for
    its k-th former signer (valid for nonces up to that key's ``until``).
    """

    source_id: int
    nonce: int
    query_id: bytes
    passages_hash: bytes
    reliability_delta: int
    usefulness_delta: int
    signature: bytes
    key_index: int = 0

    @property
    def head(self) -> int:
        """The packed first word of ``SourceRegistry.Update`` (see :func:`pack_head`)."""
        return pack_head(
            self.source_id,
            self.nonce,
            self.reliability_delta,
            self.usefulness_delta,
            self.key_index,
        )

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
    key_index: int = 0


@dataclass(frozen=True)
class FormerSigner:
    """A key a source rotated away from; it still signs valid receipts up to ``until``."""

    key_index: int
    signer: str
    until: int


@dataclass(frozen=True)
class Skipped:
    """An update ``applyFeedback`` skipped (``FeedbackSkipped``), with its reason code."""

    word: int
    reason: int

    @property
    def head(self) -> Head:
        return unpack_head(self.word)

    @property
    def why(self) -> str:
        return SKIP_REASONS.get(self.reason, f"unknown skip reason {self.reason}")


def _int32(value: int, what: str) -> int:
    if not -(2**31) <= value < 2**31:
        raise ConfigError(f"{what}={value} does not fit int32; deltas are fixed point 1e6 = 1.0")
    return value & 0xFFFFFFFF


def pack_head(
    source_id: int, nonce: int, reliability_delta: int, usefulness_delta: int, key_index: int = 0
) -> int:
    """``sourceId | nonce << 64 | reliabilityDelta << 128 | usefulnessDelta << 160 |
    keyIndex << 192``.

    Packing the small fields into one word saves the ABI's zero padding (and the 0xff
    sign extension of negative deltas) in calldata, which costs 4-16 gas per byte.
    """
    if not 0 <= source_id < 2**64 or not 0 <= nonce < 2**64:
        raise ConfigError(f"source id {source_id} and nonce {nonce} must fit uint64")
    if not 0 <= key_index < 2**32:
        raise ConfigError(f"key index {key_index} must fit uint32 (0 = current signer)")
    return (
        source_id
        | nonce << 64
        | _int32(reliability_delta, "reliability_delta") << 128
        | _int32(usefulness_delta, "usefulness_delta") << 160
        | key_index << 192
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
        key_index=(head >> 192) & 0xFFFFFFFF,
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

    def all_scores(self, page: int = MAX_PAGE) -> list[SourceInfo]:
        """Every source with its scores, in id order, one ``scores`` call per ``page``
        sources (each call stays far under the 30M eth_call gas cap, whatever the count)."""
        if not 1 <= page <= MAX_PAGE:
            raise ConfigError(f"page={page}; use 1..{MAX_PAGE} sources per call")
        count = self.source_count()
        out: list[SourceInfo] = []
        for offset in range(0, count, page):
            out.extend(self.scores(offset, page))
        return out

    def scores(self, offset: int, limit: int) -> list[SourceInfo]:
        """Sources ``offset + 1 .. offset + limit`` (``limit`` <= :data:`MAX_PAGE`)."""
        fn = self.contract.functions.scores(offset, limit)
        return [self._info(r) for r in self._call(fn, f"scores({offset}, {limit})")]

    def _evaluator(self, evaluator: str | None) -> str:
        if evaluator is not None:
            return evaluator
        if self.sender is None:
            raise ConfigError("no account: pass the evaluator whose lane to read")
        return str(self.sender.address)

    def receipt_status(self, source_id: int, nonce: int, evaluator: str | None = None) -> int:
        """0 if ``evaluator`` (default: this client's account) could apply this source's
        receipt ``nonce`` now, else the ``SKIP_*`` code it would be skipped with."""
        fn = self.contract.functions.receiptStatus(source_id, self._evaluator(evaluator), nonce)
        return int(self._call(fn, "receiptStatus"))

    def receipt_usable(self, source_id: int, nonce: int, evaluator: str | None = None) -> bool:
        """Whether the registry would accept this source's receipt ``nonce`` from
        ``evaluator`` (default: this client's account) now."""
        return self.receipt_status(source_id, nonce, evaluator) == 0

    def lane(self, source_id: int, evaluator: str | None = None) -> tuple[int, int]:
        """(highest nonce ``evaluator`` applied for the source, window bitmap below it)."""
        fn = self.contract.functions.laneOf(source_id, self._evaluator(evaluator))
        last, window = self._call(fn, f"lane of source {source_id}")
        return int(last), int(window)

    def former_signers(self, source_id: int) -> list[FormerSigner]:
        """Keys the source rotated away from, oldest first (key index 1, 2, ...)."""
        fn = self.contract.functions.formerSigners(source_id)
        rows = self._call(fn, f"former signers of source {source_id}")
        return [FormerSigner(i, str(r[0]), int(r[1])) for i, r in enumerate(rows, start=1)]

    def is_slashed(self, source_id: int) -> bool:
        """Whether the source was proven to have signed two receipts with one nonce."""
        return bool(self._call(self.contract.functions.isSlashed(source_id), "isSlashed"))

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

        An update that lost a nonce race (used or expired in this account's lane, beyond
        the step bound) is skipped, not reverted (:meth:`skipped` lists them); any other
        invalid update reverts the batch with an error naming its source and nonce
        (``InvalidReceipt``, ``DeltaOverCap``, ``UnknownSource``, ...).
        """
        batch = [u.as_tuple() for u in updates]
        return self._tx(self.contract.functions.applyFeedback(batch), gas=gas)

    def skipped(self, receipt: TxReceipt) -> list[Skipped]:
        """The updates an ``applyFeedback`` transaction skipped, with their reasons."""
        events = self.contract.events.FeedbackSkipped().process_receipt(receipt, errors=DISCARD)
        return [Skipped(int(e["args"]["head"]), int(e["args"]["reason"])) for e in events]

    def applied_update(
        self, source_id: int, nonce: int, evaluator: str | None = None
    ) -> FeedbackUpdate | None:
        """The update ``evaluator`` (default: this client's account) applied for this
        source and nonce, read back from the calldata of its ``applyFeedback`` transaction
        (found through the ``FeedbackApplied`` logs), or None. Used to tell a resend of
        one's own receipt from a second receipt the source signed with the same nonce."""
        logs = self.contract.events.FeedbackApplied().get_logs(
            argument_filters={"evaluator": self._evaluator(evaluator)}, from_block=0
        )
        for log in logs:
            heads = [unpack_head(int(h)) for h in log["args"]["heads"]]
            if not any(h.source_id == source_id and h.nonce == nonce for h in heads):
                continue
            tx = self.chain.w3.eth.get_transaction(log["transactionHash"])
            _, args = self.contract.decode_function_input(tx["input"])
            for u in args["updates"]:  # web3 decodes each struct as a dict
                h = unpack_head(int(u["head"]))
                if h.source_id == source_id and h.nonce == nonce:
                    return FeedbackUpdate(
                        source_id,
                        nonce,
                        bytes(u["queryId"]),
                        bytes(u["passagesHash"]),
                        h.reliability_delta,
                        h.usefulness_delta,
                        bytes(u["r"]) + bytes(u["vs"]),
                        h.key_index,
                    )
        return None

    def report_equivocation(self, a: FeedbackUpdate, b: FeedbackUpdate) -> TxReceipt:
        """Prove that a source signed two different receipts with one nonce (needs
        EVALUATOR_ROLE): the source is deactivated for good and its stake forfeited."""
        fn = self.contract.functions.reportEquivocation(a.as_tuple(), b.as_tuple())
        return self._tx(fn, action="reportEquivocation")
