"""EIP-712 receipts: round trip, rejection of wrong keys and tampering, digest layout, the
one typed-data definition shared with the chain client, byte identity of the fast path
with eth_account's generic encoder, and recovery as strict as the contract."""

from __future__ import annotations

import random

import pytest
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from drag.receipts import (
    SECP256K1_N,
    Receipt,
    ReceiptDomain,
    ReceiptSigner,
    address_of,
    new_query_id,
    passages_hash,
    receipt_digest,
    receipt_message,
    recover_digest_signer,
    recover_signer,
    sign_digest,
    sign_receipt,
    verify_receipt,
)
from marketplace.errors import ConfigError, DragError

KEY = "0x" + "11" * 32
OTHER_KEY = "0x" + "22" * 32
DOMAIN = ReceiptDomain(chain_id=31337, verifying_contract="0x" + "ab" * 20)
TEXTS = ["The capital of Zorvia is Quelton.", "Zorvia lies by the sea. Ünïcode too."]
QID = bytes(range(32))
NONCE = 42


def test_round_trip_recovers_the_signer() -> None:
    receipt = sign_receipt(KEY, DOMAIN, 7, NONCE, QID, TEXTS)
    assert recover_signer(receipt, DOMAIN) == address_of(KEY)
    assert verify_receipt(receipt, DOMAIN, address_of(KEY), TEXTS, QID, 7)
    assert receipt.passages_hash == passages_hash(TEXTS)
    assert Receipt.from_json(receipt.to_json()) == receipt


def test_wrong_key_is_rejected() -> None:
    receipt = sign_receipt(OTHER_KEY, DOMAIN, 7, NONCE, QID, TEXTS)
    assert not verify_receipt(receipt, DOMAIN, address_of(KEY), TEXTS, QID, 7)


@pytest.mark.parametrize(
    "texts, qid, sid, domain",
    [
        (["The capital of Zorvia is Brakmor.", TEXTS[1]], QID, 7, DOMAIN),  # tampered text
        (list(reversed(TEXTS)), QID, 7, DOMAIN),  # order matters
        (TEXTS, bytes(32), 7, DOMAIN),  # another query
        (TEXTS, QID, 8, DOMAIN),  # another source id
        (TEXTS, QID, 7, ReceiptDomain(1, DOMAIN.verifying_contract)),  # another chain
        (TEXTS, QID, 7, ReceiptDomain(31337, "0x" + "cd" * 20)),  # another registry
    ],
)
def test_any_mismatch_is_rejected(texts, qid, sid, domain) -> None:
    receipt = sign_receipt(KEY, DOMAIN, 7, NONCE, QID, TEXTS)
    assert not verify_receipt(receipt, domain, address_of(KEY), texts, qid, sid)


def test_forged_fields_change_the_recovered_signer() -> None:
    receipt = sign_receipt(KEY, DOMAIN, 7, NONCE, QID, TEXTS)
    forged = Receipt(8, NONCE, receipt.query_id, receipt.passages_hash, receipt.signature)
    assert not verify_receipt(forged, DOMAIN, address_of(KEY))
    renumbered = Receipt(7, NONCE + 1, receipt.query_id, receipt.passages_hash, receipt.signature)
    assert not verify_receipt(renumbered, DOMAIN, address_of(KEY))
    garbage = Receipt(7, NONCE, QID, receipt.passages_hash, b"\x00" * 65)
    assert not verify_receipt(garbage, DOMAIN, address_of(KEY))


def test_digest_matches_an_independent_eip712_encoding() -> None:
    """keccak(0x1901 || domainSeparator || structHash) built by hand from the spec."""
    domain_type = keccak(
        b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    separator = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                domain_type,
                keccak(b"LedgerLearn SourceRegistry"),
                keccak(b"1"),
                31337,
                DOMAIN.verifying_contract,
            ],
        )
    )
    type_hash = keccak(
        b"Receipt(uint256 sourceId,uint64 nonce,bytes32 queryId,bytes32 passagesHash)"
    )
    ph = keccak(b"".join(keccak(t.encode("utf-8")) for t in TEXTS))
    struct = keccak(
        encode(
            ["bytes32", "uint256", "uint64", "bytes32", "bytes32"],
            [type_hash, 7, NONCE, QID, ph],
        )
    )
    expected = keccak(b"\x19\x01" + separator + struct)
    assert receipt_digest(DOMAIN, 7, NONCE, QID, ph) == expected


def test_empty_passage_list_has_a_defined_hash() -> None:
    assert passages_hash([]) == keccak(b"")
    receipt = sign_receipt(KEY, DOMAIN, 1, 1, QID, [])
    assert verify_receipt(receipt, DOMAIN, address_of(KEY), [], QID, 1)


def test_bad_inputs_raise_actionable_errors() -> None:
    with pytest.raises(ConfigError, match="registry address"):
        ReceiptDomain(1, "0x1234")
    with pytest.raises(ConfigError, match="private key"):
        address_of("0x1234")
    with pytest.raises(DragError, match="malformed receipt|query_id"):
        Receipt.from_json(
            {"source_id": 1, "nonce": 1, "query_id": "0x12", "passages_hash": "", "signature": ""}
        )
    good = sign_receipt(KEY, DOMAIN, 7, NONCE, QID, TEXTS).to_json()
    for nonce in (0, 2**64, "x"):
        with pytest.raises(DragError, match="malformed receipt"):
            Receipt.from_json({**good, "nonce": nonce})


def test_query_ids_are_seeded_or_random() -> None:
    assert new_query_id(random.Random(3)) == new_query_id(random.Random(3))
    assert new_query_id() != new_query_id()
    assert len(new_query_id()) == 32


@settings(max_examples=40, deadline=None)
@given(
    key=st.integers(min_value=1, max_value=2**256 - 2**129),
    sid=st.integers(min_value=0, max_value=2**256 - 1),
    nonce=st.integers(min_value=0, max_value=2**64 - 1),
    qid=st.binary(min_size=32, max_size=32),
    ph=st.binary(min_size=32, max_size=32),
    chain_id=st.integers(min_value=0, max_value=2**64),
)
def test_fast_digest_and_signature_are_byte_identical_to_eth_account(
    key: int, sid: int, nonce: int, qid: bytes, ph: bytes, chain_id: int
) -> None:
    """The direct keccak encoding and eth_keys signing reproduce eth_account's generic
    EIP-712 path exactly: same digest, same 65 signature bytes, same recovered signer."""
    private = "0x" + key.to_bytes(32, "big").hex()
    domain = ReceiptDomain(chain_id, DOMAIN.verifying_contract)
    message = receipt_message(domain, sid, nonce, qid, ph)
    reference_digest = keccak(b"\x19" + message.version + message.header + message.body)
    assert receipt_digest(domain, sid, nonce, qid, ph) == reference_digest
    reference = bytes(Account.sign_message(message, private).signature)
    assert sign_digest(private, domain, sid, nonce, qid, ph) == reference
    assert ReceiptSigner(private, domain).sign_digest(sid, nonce, qid, ph) == reference
    receipt = Receipt(sid, max(nonce, 1), qid, ph, reference)
    if nonce >= 1:
        assert recover_signer(receipt, domain) == Account.recover_message(
            message, signature=reference
        )


def test_signer_object_matches_the_function() -> None:
    signer = ReceiptSigner(KEY, DOMAIN)
    assert signer.address == address_of(KEY) and KEY[2:] not in repr(signer)
    assert signer.sign(7, NONCE, QID, TEXTS) == sign_receipt(KEY, DOMAIN, 7, NONCE, QID, TEXTS)


def test_recovery_is_as_strict_as_the_contract() -> None:
    """High-s twins and v outside {27, 28} recover on eth_account but the registry's
    OpenZeppelin ECDSA refuses them; the client must refuse them too."""
    receipt = sign_receipt(KEY, DOMAIN, 7, NONCE, QID, TEXTS)
    sig = receipt.signature
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    twin = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])  # 27 <-> 28
    digest = receipt_digest(DOMAIN, 7, NONCE, QID, receipt.passages_hash)
    assert Account._recover_hash(digest, signature=twin) == address_of(KEY)
    for bad in (twin, sig[:64] + bytes([v - 27]), sig[:64], b"\x00" * 65):
        with pytest.raises(DragError):
            recover_digest_signer(digest, bad)
        forged = Receipt(7, NONCE, QID, receipt.passages_hash, bad.ljust(65, b"\x00"))
        assert not verify_receipt(forged, DOMAIN, address_of(KEY), TEXTS, QID, 7)
