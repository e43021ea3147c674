"""EIP-712 receipts a source signs over what it returned for a query.

A receipt binds a source's registered key to ``(sourceId, nonce, queryId, passagesHash)``.
The ``SourceRegistry`` contract accepts a reliability/usefulness delta for a source only with
that source's receipt for the query, so a client cannot invent queries, and a source cannot
later deny what it served. The source numbers its receipts with its own strictly increasing
nonce (1, 2, 3, ...; see :mod:`drag.nonces`): the contract accepts a receipt at most
``MAX_NONCE_STEP`` above the source's highest applied nonce, once per evaluator lane (one
slot per source and evaluator: the lane's highest nonce and a 96-nonce window below it).
The typed data follows EIP-712 (https://eips.ethereum.org/EIPS/eip-712):

- domain: ``name="LedgerLearn SourceRegistry"``, ``version="1"``, ``chainId``,
  ``verifyingContract`` (the registry address);
- primary type :data:`RECEIPT_TYPE`
  ``Receipt(uint256 sourceId,uint64 nonce,bytes32 queryId,bytes32 passagesHash)``;
- ``passagesHash = keccak256(concat(keccak256(utf8(text)) for each passage in order))``.

This module is the one definition of that typed data: the chain client
(:mod:`marketplace.chain.registry`) signs and checks through it too. Pure functions over
bytes.

Every query costs one signature on the source and one recovery per source on the client,
so the digest is computed directly from the spec: the domain separator is hashed once per
domain (:func:`domain_separator`), the type hash once per process (:data:`RECEIPT_TYPEHASH`),
and ``hashStruct`` is one keccak over four 32-byte words. ``eth_account``'s generic
typed-data encoder (:func:`receipt_message`) parses the type strings on every call, which
cost more than the signature itself; it stays as the reference a test compares against
byte for byte. Signing and recovery go through ``eth_keys`` with its fastest backend
(coincurve when installed, as pinned), which is what ``eth_account`` uses underneath, so the
signatures are the same bytes (RFC 6979 deterministic nonces, low ``s``, ``v`` in {27, 28}).
Recovery is as strict as the contract's OpenZeppelin ``ECDSA.recover``: ``v`` must be 27 or
28 and ``s`` in the lower half of the curve order, so the client never accepts a receipt the
registry would refuse.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from eth_account.messages import SignableMessage, encode_typed_data
from eth_keys.datatypes import PrivateKey, Signature
from eth_keys.exceptions import BadSignature, ValidationError
from eth_utils import keccak, to_canonical_address, to_checksum_address

from marketplace.errors import ConfigError, DragError
from marketplace.untrusted.parse import parse_int

DOMAIN_NAME = "LedgerLearn SourceRegistry"
DOMAIN_VERSION = "1"
RECEIPT_TYPE = "Receipt(uint256 sourceId,uint64 nonce,bytes32 queryId,bytes32 passagesHash)"
RECEIPT_FIELDS: list[dict[str, str]] = [
    {"name": "sourceId", "type": "uint256"},
    {"name": "nonce", "type": "uint64"},
    {"name": "queryId", "type": "bytes32"},
    {"name": "passagesHash", "type": "bytes32"},
]
EIP712_DOMAIN_FIELDS: list[dict[str, str]] = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
MAX_NONCE = 2**64 - 1
MAX_UINT256 = 2**256 - 1
EIP712_DOMAIN_TYPE = (
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
RECEIPT_TYPEHASH = keccak(text=RECEIPT_TYPE)
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@dataclass(frozen=True)
class ReceiptDomain:
    """The EIP-712 domain of one deployed registry (a receipt is valid on one chain only)."""

    chain_id: int
    verifying_contract: str

    def __post_init__(self) -> None:
        try:
            checksummed = to_checksum_address(self.verifying_contract)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"registry address {self.verifying_contract!r} is not a 20-byte hex address; "
                "pass the deployed SourceRegistry address"
            ) from exc
        object.__setattr__(self, "verifying_contract", checksummed)
        if self.chain_id < 0:
            raise ConfigError(f"chain id {self.chain_id} is negative; pass the chain's id")

    def as_eip712(self) -> dict[str, Any]:
        """The domain as the dict ``eth_account`` expects."""
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }


@dataclass(frozen=True)
class Receipt:
    """A signed statement: source ``source_id`` answered ``query_id`` with these passages."""

    source_id: int
    nonce: int
    query_id: bytes
    passages_hash: bytes
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        """Hex-encoded form used on the wire and in the feedback queue."""
        return {
            "source_id": self.source_id,
            "nonce": self.nonce,
            "query_id": "0x" + self.query_id.hex(),
            "passages_hash": "0x" + self.passages_hash.hex(),
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Receipt:
        """Parse :meth:`to_json` output; raise :class:`DragError` on malformed fields."""
        try:
            return cls(
                source_id=parse_int(data["source_id"], "source_id", 0, MAX_UINT256),
                nonce=parse_int(data["nonce"], "nonce", 1, MAX_NONCE),
                query_id=parse_bytes32(str(data["query_id"]), "query_id"),
                passages_hash=parse_bytes32(str(data["passages_hash"]), "passages_hash"),
                signature=_parse_hex(str(data["signature"]), 65, "signature"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DragError(
                f"malformed receipt ({exc}); a receipt needs source_id, nonce, query_id, "
                "passages_hash and a 65-byte signature"
            ) from exc


def _parse_hex(value: str, length: int, what: str) -> bytes:
    text = value[2:] if value.startswith(("0x", "0X")) else value
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise DragError(f"{what} is not hex; send 0x followed by {2 * length} hex digits") from exc
    if len(raw) != length:
        raise DragError(f"{what} has {len(raw)} bytes, expected {length}")
    return raw


def parse_bytes32(value: str, what: str = "value") -> bytes:
    """Parse a 0x-prefixed (or bare) 64-hex-digit string into 32 bytes."""
    return _parse_hex(value, 32, what)


def new_query_id(rng: random.Random | None = None) -> bytes:
    """A fresh 32-byte query id: random per query so the registry can refuse replays.

    Pass a seeded ``rng`` for reproducible simulations; otherwise the OS CSPRNG is used.
    """
    if rng is None:
        return secrets.token_bytes(32)
    return rng.getrandbits(256).to_bytes(32, "big")


def passage_hash(text: str) -> bytes:
    """``keccak256(utf8(text))``: the per-passage hash a client recomputes."""
    return keccak(text.encode("utf-8"))


def passages_hash(texts: Sequence[str]) -> bytes:
    """``keccak256`` of the concatenated passage hashes, in the order returned."""
    return combined_passage_hash([passage_hash(t) for t in texts])


def combined_passage_hash(hashes: Sequence[bytes]) -> bytes:
    """:func:`passages_hash` from per-passage hashes already computed (:func:`passage_hash`)."""
    return keccak(b"".join(hashes))


def receipt_typed_data(
    chain_id: int,
    registry: str,
    source_id: int,
    nonce: int,
    query_id: bytes,
    passages_digest: bytes,
) -> dict[str, Any]:
    """The full EIP-712 message of one receipt (``eth_account``'s ``full_message`` form)."""
    if len(query_id) != 32 or len(passages_digest) != 32:
        raise DragError("query_id and passages_hash must be 32 bytes each")
    if not 0 <= nonce <= MAX_NONCE:
        raise DragError(f"nonce {nonce} does not fit uint64")
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_FIELDS, "Receipt": RECEIPT_FIELDS},
        "primaryType": "Receipt",
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": registry,
        },
        "message": {
            "sourceId": source_id,
            "nonce": nonce,
            "queryId": query_id,
            "passagesHash": passages_digest,
        },
    }


@lru_cache(maxsize=64)
def _separator(chain_id: int, verifying_contract: str) -> bytes:
    return keccak(
        keccak(text=EIP712_DOMAIN_TYPE)
        + keccak(text=DOMAIN_NAME)
        + keccak(text=DOMAIN_VERSION)
        + chain_id.to_bytes(32, "big")
        + bytes(12)
        + to_canonical_address(verifying_contract)
    )


def domain_separator(domain: ReceiptDomain) -> bytes:
    """EIP-712 ``hashStruct(domain)``, computed once per domain and cached."""
    return _separator(domain.chain_id, domain.verifying_contract)


def receipt_struct_hash(
    source_id: int, nonce: int, query_id: bytes, passages_digest: bytes
) -> bytes:
    """``keccak256(abi.encode(RECEIPT_TYPEHASH, sourceId, nonce, queryId, passagesHash))``.

    Every member is a static 32-byte word, so ``abi.encode`` is plain concatenation.
    """
    if len(query_id) != 32 or len(passages_digest) != 32:
        raise DragError("query_id and passages_hash must be 32 bytes each")
    if not 0 <= nonce <= MAX_NONCE:
        raise DragError(f"nonce {nonce} does not fit uint64")
    if not 0 <= source_id <= MAX_UINT256:
        raise DragError(f"source id {source_id} does not fit uint256")
    return keccak(
        RECEIPT_TYPEHASH
        + source_id.to_bytes(32, "big")
        + nonce.to_bytes(32, "big")
        + query_id
        + passages_digest
    )


def receipt_digest(
    domain: ReceiptDomain, source_id: int, nonce: int, query_id: bytes, passages_digest: bytes
) -> bytes:
    """The 32-byte EIP-712 digest ``keccak256(0x1901 || domainSeparator || structHash)``.

    The contract's ``receiptDigest`` view must return the same value; tests compare the two,
    and compare it with ``eth_account``'s generic encoding (:func:`receipt_message`).
    """
    return keccak(
        b"\x19\x01"
        + domain_separator(domain)
        + receipt_struct_hash(source_id, nonce, query_id, passages_digest)
    )


def receipt_message(
    domain: ReceiptDomain, source_id: int, nonce: int, query_id: bytes, passages_digest: bytes
) -> SignableMessage:
    """The receipt through ``eth_account``'s generic EIP-712 encoder: the reference
    encoding that :func:`receipt_digest` must reproduce (slow; not on the query path)."""
    data = receipt_typed_data(
        domain.chain_id, domain.verifying_contract, source_id, nonce, query_id, passages_digest
    )
    return encode_typed_data(full_message=data)


def _private_key(private_key: str | bytes) -> PrivateKey:
    try:
        raw = private_key
        if isinstance(raw, str):
            raw = bytes.fromhex(raw.removeprefix("0x").removeprefix("0X"))
        return PrivateKey(bytes(raw))
    except (ValueError, TypeError, ValidationError) as exc:
        raise ConfigError(
            "source private key is invalid; pass a 32-byte hex secp256k1 key"
        ) from exc


def _sign(key: PrivateKey, digest: bytes) -> bytes:
    """``r || s || v`` with ``v`` in {27, 28}, the form ``eth_account`` and the contract use."""
    sig = key.sign_msg_hash(digest)
    return sig.r.to_bytes(32, "big") + sig.s.to_bytes(32, "big") + bytes([27 + sig.v])


class ReceiptSigner:
    """A source's key bound to one registry: signs receipts with nothing re-derived per call.

    A source node signs one receipt per query; parsing the key (which derives the public
    key) and hashing the domain once, here, keeps that off the request path.
    """

    def __init__(self, private_key: str | bytes, domain: ReceiptDomain) -> None:
        self._key = _private_key(private_key)
        self.domain = domain
        self.address = str(self._key.public_key.to_checksum_address())
        domain_separator(domain)

    def __repr__(self) -> str:
        return f"ReceiptSigner({self.address}, chain {self.domain.chain_id})"

    def sign_digest(
        self, source_id: int, nonce: int, query_id: bytes, passages_digest: bytes
    ) -> bytes:
        """The 65-byte signature of a receipt over an already computed ``passagesHash``."""
        digest = receipt_digest(self.domain, source_id, nonce, query_id, passages_digest)
        return _sign(self._key, digest)

    def sign(self, source_id: int, nonce: int, query_id: bytes, texts: Sequence[str]) -> Receipt:
        """Receipt ``nonce`` for the passages ``texts`` returned for ``query_id``."""
        digest = passages_hash(texts)
        signature = self.sign_digest(source_id, nonce, query_id, digest)
        return Receipt(source_id, nonce, query_id, digest, signature)


def sign_digest(
    private_key: str | bytes,
    domain: ReceiptDomain,
    source_id: int,
    nonce: int,
    query_id: bytes,
    passages_digest: bytes,
) -> bytes:
    """The 65-byte ``r || s || v`` signature of a receipt over an already computed
    ``passagesHash`` (what the chain client and the gas benchmark sign)."""
    return ReceiptSigner(private_key, domain).sign_digest(
        source_id, nonce, query_id, passages_digest
    )


def sign_receipt(
    private_key: str | bytes,
    domain: ReceiptDomain,
    source_id: int,
    nonce: int,
    query_id: bytes,
    texts: Sequence[str],
) -> Receipt:
    """Sign receipt ``nonce`` for the passages ``texts`` returned for ``query_id``."""
    return ReceiptSigner(private_key, domain).sign(source_id, nonce, query_id, texts)


def recover_digest_signer(digest: bytes, signature: bytes) -> bytes:
    """The 20-byte address that signed ``digest``, under the contract's rules.

    Raises :class:`DragError` unless the signature is 65 bytes ``r || s || v`` with ``v`` in
    {27, 28}, ``0 < r < n`` and ``0 < s <= n/2`` (OpenZeppelin ``ECDSA``: a high ``s`` is the
    malleable twin of a valid signature and the registry refuses it).
    """
    if len(signature) != 65:
        raise DragError(f"signature has {len(signature)} bytes, expected 65")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v not in (27, 28):
        raise DragError(f"signature v={v}; expected 27 or 28")
    if not 0 < r < SECP256K1_N or not 0 < s <= SECP256K1_N // 2:
        raise DragError("signature r or s is out of range (s must be in the lower half)")
    try:
        sig = Signature(vrs=(v - 27, r, s))
        return bytes(sig.recover_public_key_from_msg_hash(digest).to_canonical_address())
    except (BadSignature, ValidationError, ValueError) as exc:
        raise DragError(f"receipt signature cannot be recovered ({exc})") from exc


def _receipt_signer(receipt: Receipt, domain: ReceiptDomain) -> bytes:
    """The 20-byte address that signed ``receipt`` (:func:`recover_digest_signer`'s rules)."""
    digest = receipt_digest(
        domain, receipt.source_id, receipt.nonce, receipt.query_id, receipt.passages_hash
    )
    return recover_digest_signer(digest, receipt.signature)


def recover_signer(receipt: Receipt, domain: ReceiptDomain) -> str:
    """The checksummed address that signed ``receipt``; :class:`DragError` if unrecoverable."""
    return str(to_checksum_address(_receipt_signer(receipt, domain)))


def verify_receipt(
    receipt: Receipt,
    domain: ReceiptDomain,
    expected_signer: str,
    texts: Sequence[str] | None = None,
    expected_query_id: bytes | None = None,
    expected_source_id: int | None = None,
) -> bool:
    """True iff the receipt is signed by ``expected_signer`` and matches what was returned.

    ``texts`` (the passages actually received) are rehashed and compared with the signed
    ``passages_hash``; ``expected_query_id``/``expected_source_id`` guard against a source
    answering with a receipt for another query or another registered source.
    """
    if texts is not None and passages_hash(texts) != receipt.passages_hash:
        return False
    if expected_query_id is not None and receipt.query_id != expected_query_id:
        return False
    if expected_source_id is not None and receipt.source_id != expected_source_id:
        return False
    try:
        expected = to_canonical_address(expected_signer)
    except (ValueError, TypeError):
        return False
    try:
        return _receipt_signer(receipt, domain) == expected
    except DragError:
        return False


def address_of(private_key: str | bytes) -> str:
    """Checksummed address of a secp256k1 private key."""
    return str(_private_key(private_key).public_key.to_checksum_address())
