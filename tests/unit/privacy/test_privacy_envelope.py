"""Sealed updates: only a named reader opens them, nobody can alter them unnoticed, and the
same update sealed twice gives the same bytes (a restarted trainer keeps its CID)."""

from __future__ import annotations

import json

import pytest
import torch

from marketplace.errors import ConfigError, UpdateRejected
from marketplace.privacy.envelope import MAGIC, is_sealed, open_envelope, parse, seal
from marketplace.privacy.keys import ReaderKey, secret_seed, trainer_secret

AGGREGATOR = ReaderKey.from_eth_key(b"\x01" * 32)
AUDITOR = ReaderKey.from_eth_key(b"\x02" * 32)
OUTSIDER = ReaderKey.from_eth_key(b"\x03" * 32)
INNER = torch.arange(64, dtype=torch.float32).numpy().tobytes()
PUBLIC = {"kind": "update", "round": "1"}


def _sealed(secret: bytes = b"s" * 32, inner: bytes = INNER) -> bytes:
    return seal(inner, PUBLIC, [AGGREGATOR.public_hex, AUDITOR.public_hex], secret)


def test_every_reader_opens_and_gets_the_inner_blob_and_public_header() -> None:
    data = _sealed()
    assert is_sealed(data) and not is_sealed(INNER)
    for reader in (AGGREGATOR, AUDITOR):
        inner, public = open_envelope(data, reader)
        assert inner == INNER and public == PUBLIC


def test_an_outsider_or_no_key_gets_encrypted_and_no_plaintext_leaks() -> None:
    data = _sealed()
    assert INNER[8:40] not in data  # the float bytes do not appear in the blob
    for reader in (OUTSIDER, None):
        with pytest.raises(UpdateRejected, match=r"\(encrypted\)"):
            open_envelope(data, reader)


def test_sealing_is_deterministic_per_secret_and_keyed_by_it() -> None:
    assert _sealed() == _sealed()
    assert _sealed(b"t" * 32) != _sealed()
    other = _sealed(inner=INNER[:-4] + b"\x00\x00\x80\x3f")
    assert parse(other).epk != parse(_sealed()).epk  # a fresh content key per update


@pytest.mark.parametrize("where", ["header", "ciphertext", "tag"])
def test_any_flipped_byte_fails_authentication(where: str) -> None:
    data = bytearray(_sealed())
    size = int.from_bytes(data[8:12], "big")
    header = json.loads(data[12 : 12 + size])
    if where == "header":  # change the public metadata in place (same length)
        text = data[12 : 12 + size].replace(b'"round":"1"', b'"round":"2"')
        data[12 : 12 + size] = text
        assert json.loads(text)["public"]["round"] == "2" != header["public"]["round"]
    else:
        data[12 + size + (3 if where == "ciphertext" else len(INNER) + 5)] ^= 1
    with pytest.raises(UpdateRejected, match=r"\(sealed\)"):
        open_envelope(bytes(data), AGGREGATOR)


@pytest.mark.parametrize(
    "blob",
    [
        MAGIC,
        MAGIC + (10**9).to_bytes(4, "big") + b"{}",
        MAGIC + (3).to_bytes(4, "big") + b"[1]",
        MAGIC + (4).to_bytes(4, "big") + b"\xff\xfe{}",
        MAGIC + (2).to_bytes(4, "big") + b"{}",
    ],
)
def test_hostile_envelopes_are_refused_as_sealed(blob: bytes) -> None:
    with pytest.raises(UpdateRejected, match=r"\(sealed\)"):
        open_envelope(blob, AGGREGATOR)


def test_keys_are_derived_per_use_and_parse_from_hex() -> None:
    eth = b"\x07" * 32
    assert ReaderKey.from_eth_key(eth).public_hex == ReaderKey.from_eth_key(eth).public_hex
    assert trainer_secret(eth) != bytes.fromhex(ReaderKey.from_eth_key(eth).private_hex)
    again = ReaderKey.from_hex(AGGREGATOR.private_hex)
    assert again.public_hex == AGGREGATOR.public_hex
    assert secret_seed(b"a" * 32, 1, 2) != secret_seed(b"b" * 32, 1, 2)
    with pytest.raises(ConfigError, match="64 hex"):
        ReaderKey.from_hex("0x1234")
