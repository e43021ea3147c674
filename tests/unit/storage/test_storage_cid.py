"""CIDs: byte-for-byte what kubo prints, strict parsing, digest round trips."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.errors import CidMismatch, InvalidCid, LedgerLearnError, StorageError
from marketplace.storage.cid import (
    CID_STRING_LENGTH,
    RAW_CODEC,
    SHA2_256,
    base32_decode,
    base32_encode,
    cid_for,
    cid_from_digest,
    decode_varint,
    digest_of,
    encode_varint,
    parse_cid,
    verify,
)

# Published CIDs of raw blocks (kubo `ipfs block put` / `ipfs add --raw-leaves --cid-version 1`),
# found in many independent IPFS test suites and docs.
KNOWN = [
    (b"", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
    (b"hello", "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"),
    (b"hello world", "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"),
    (b"hello world\n", "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"),
]

# RFC 4648 section 10 test vectors, lower-cased and unpadded as multibase 'b' writes them.
RFC4648_BASE32 = [
    (b"", ""),
    (b"f", "my"),
    (b"fo", "mzxq"),
    (b"foo", "mzxw6"),
    (b"foob", "mzxw6yq"),
    (b"fooba", "mzxw6ytb"),
    (b"foobar", "mzxw6ytboi"),
]


@pytest.mark.parametrize(("data", "cid"), KNOWN)
def test_cid_matches_published_kubo_cids(data: bytes, cid: str) -> None:
    assert cid_for(data) == cid
    assert len(cid) == CID_STRING_LENGTH


def test_digest_is_plain_sha256_of_the_bytes() -> None:
    cid = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    assert digest_of(cid).hex() == (
        "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    )
    assert cid_from_digest(hashlib.sha256(b"hello world").digest()) == cid


@pytest.mark.parametrize(("raw", "encoded"), RFC4648_BASE32)
def test_base32_matches_rfc4648_vectors(raw: bytes, encoded: str) -> None:
    assert base32_encode(raw) == encoded
    assert base32_decode(encoded) == raw


def test_multibase_spec_vector() -> None:
    # multiformats/multibase test vector "yes mani !" in base32
    assert "b" + base32_encode(b"yes mani !") == "bpfsxgidnmfxgsibb"


def test_parsed_fields_and_canonical_string() -> None:
    parsed = parse_cid(KNOWN[0][1])
    assert (parsed.version, parsed.codec, parsed.hash_code) == (1, RAW_CODEC, SHA2_256)
    assert parsed.digest == hashlib.sha256(b"").digest()
    assert parsed.to_bytes()[:4] == bytes([0x01, 0x55, 0x12, 0x20])
    assert str(parsed) == KNOWN[0][1]


def test_varint_encoding_follows_the_spec() -> None:
    assert encode_varint(1) == b"\x01"
    assert encode_varint(127) == b"\x7f"
    assert encode_varint(128) == b"\x80\x01"
    assert encode_varint(300) == b"\xac\x02"
    assert decode_varint(b"\xac\x02", 0) == (300, 2)
    with pytest.raises(InvalidCid, match="non-minimal"):
        decode_varint(b"\x81\x00", 0)
    with pytest.raises(InvalidCid, match="truncated"):
        decode_varint(b"\x80", 0)
    with pytest.raises(InvalidCid, match="9 bytes"):
        decode_varint(b"\xff" * 10, 0)


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_varint_round_trip(value: int) -> None:
    encoded = encode_varint(value)
    assert decode_varint(encoded, 0) == (value, len(encoded))


@settings(max_examples=200)
@given(st.binary(min_size=32, max_size=32))
def test_digest_round_trip(digest: bytes) -> None:
    cid = cid_from_digest(digest)
    assert digest_of(cid) == digest
    assert cid.startswith("bafkrei")


@given(st.binary(max_size=2048))
def test_cid_of_random_bytes_parses_and_verifies(data: bytes) -> None:
    cid = cid_for(data)
    assert digest_of(cid) == hashlib.sha256(data).digest()
    verify(cid, data)


def test_verify_rejects_other_bytes() -> None:
    cid = cid_for(b"hello")
    with pytest.raises(CidMismatch, match=cid) as info:
        verify(cid, b"hellO")
    assert isinstance(info.value, StorageError)
    assert isinstance(info.value, LedgerLearnError)


EMPTY = KNOWN[0][1]
BAD_CIDS = [
    ("", "empty"),
    ("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o", "CIDv0"),
    ("zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA", "multibase 'z'"),
    (EMPTY.upper(), "multibase 'B'"),
    ("b" + EMPTY[1:].upper(), "lower case"),
    (EMPTY[:-2], "digest bytes"),
    ("b" + base32_encode(bytes([1, 0x55, 0x12, 0x20]) + bytes(34)), "digest bytes"),
    (EMPTY[:20] + "1" + EMPTY[21:], "invalid base32"),
    (EMPTY[:-1] + "v", "canonical"),  # non-zero padding bits: a second spelling
    ("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", "codec 0x70"),
    ("b" + base32_encode(bytes([2, 0x55, 0x12, 0x20]) + bytes(32)), "version 2"),
    ("b" + base32_encode(bytes([1, 0x55, 0x13, 0x40]) + bytes(64)), "sha2-256"),
    ("b" + base32_encode(bytes([1, 0x55, 0x12, 0x10]) + bytes(16)), "length is 16"),
    ("b" * 300, "characters long"),
]


@pytest.mark.parametrize(("cid", "message"), BAD_CIDS)
def test_malformed_cids_are_rejected_clearly(cid: str, message: str) -> None:
    with pytest.raises(InvalidCid, match=message):
        parse_cid(cid)


def test_non_string_cid_is_rejected() -> None:
    with pytest.raises(InvalidCid, match="string"):
        parse_cid(b"bafkrei")  # type: ignore[arg-type]


def test_digest_must_be_32_bytes() -> None:
    with pytest.raises(InvalidCid, match="32 bytes"):
        cid_from_digest(b"\x00" * 31)
