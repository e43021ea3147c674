"""Content identifiers: CIDv1, codec ``raw``, multihash sha2-256, multibase base32.

This is the exact CID that IPFS (kubo) prints for ``ipfs block put`` of the same bytes
(and for ``ipfs add --raw-leaves --cid-version 1`` of a file that fits in one block), so
a block stored by LedgerLearn can be fetched from any IPFS node and vice versa.

Binary layout (https://github.com/multiformats/cid, CIDv1)::

    <varint version=1> <varint codec=0x55 raw> <multihash>
    multihash = <varint code=0x12 sha2-256> <varint length=32> <32-byte digest>

The string form is the multibase prefix ``b`` followed by lower-case RFC 4648 base32
without padding (https://github.com/multiformats/multibase). Every code above is below
0x80, so every varint is one byte and a CID string is always 59 characters long.

The smart contracts store only the 32-byte digest (``bytes32``): :func:`digest_of` and
:func:`cid_from_digest` convert between the two without loss because the prefix is fixed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from marketplace.errors import CidMismatch, InvalidCid

CID_VERSION = 1
RAW_CODEC = 0x55
SHA2_256 = 0x12
DIGEST_SIZE = 32
MULTIBASE_BASE32 = "b"

#: The fixed binary prefix of every CID LedgerLearn makes: version, codec, hash code, length.
CID_PREFIX = bytes([CID_VERSION, RAW_CODEC, SHA2_256, DIGEST_SIZE])
#: Length of the string form: ``b`` + base32 of 36 bytes (288 bits -> 58 symbols).
CID_STRING_LENGTH = 59

_MAX_VARINT_BYTES = 9  # multiformats unsigned-varint caps values at 2**63 - 1
_MAX_CID_INPUT = 256  # refuse absurd inputs before decoding them


@dataclass(frozen=True)
class ParsedCid:
    """The fields of a validated CID; ``str(parsed)`` gives back the canonical string."""

    version: int
    codec: int
    hash_code: int
    digest: bytes

    def to_bytes(self) -> bytes:
        """Binary CID (version, codec, multihash) as IPFS puts it on the wire."""
        return (
            encode_varint(self.version)
            + encode_varint(self.codec)
            + encode_varint(self.hash_code)
            + encode_varint(len(self.digest))
            + self.digest
        )

    def __str__(self) -> str:
        return MULTIBASE_BASE32 + base32_encode(self.to_bytes())


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128 varint as the multiformats unsigned-varint spec defines it."""
    if value < 0 or value >= 2**63:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes, offset: int = 0) -> tuple[int, int]:
    """Read one varint at ``offset``; return ``(value, next_offset)``.

    Rejects non-minimal encodings and more than 9 bytes, as the spec requires, so that
    one CID has exactly one binary form.
    """
    value = 0
    for i in range(_MAX_VARINT_BYTES):
        pos = offset + i
        if pos >= len(data):
            raise InvalidCid("truncated varint in CID; the CID string is cut short")
        byte = data[pos]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if byte == 0 and i > 0:
                raise InvalidCid("non-minimal varint in CID; re-encode the CID canonically")
            return value, pos + 1
    raise InvalidCid("varint longer than 9 bytes in CID; this is not a valid CID")


def base32_encode(data: bytes) -> str:
    """RFC 4648 base32, lower case, no padding (multibase ``b``)."""
    return base64.b32encode(data).decode("ascii").lower().rstrip("=")


def base32_decode(text: str) -> bytes:
    """Inverse of :func:`base32_encode`; raises :class:`InvalidCid` on bad symbols."""
    if text != text.lower():
        raise InvalidCid("base32 CID must be lower case (multibase 'b')")
    padded = text.upper() + "=" * (-len(text) % 8)
    try:
        return base64.b32decode(padded, casefold=False)
    except (binascii.Error, ValueError) as exc:
        raise InvalidCid(f"invalid base32 in CID ({exc}); check for typos") from exc


def cid_for(data: bytes) -> str:
    """The CID of ``data`` as a raw block: what ``ipfs block put`` prints for it."""
    return cid_from_digest(hashlib.sha256(data).digest())


def cid_from_digest(digest: bytes) -> str:
    """Rebuild the CID string from the 32-byte sha256 digest a contract stores."""
    if len(digest) != DIGEST_SIZE:
        raise InvalidCid(f"sha2-256 digest must be 32 bytes, got {len(digest)}")
    return MULTIBASE_BASE32 + base32_encode(CID_PREFIX + bytes(digest))


def parse_cid(cid: str) -> ParsedCid:
    """Validate ``cid`` and return its fields.

    Only the kind LedgerLearn produces is accepted (CIDv1, raw, sha2-256, base32): a
    CIDv0 (``Qm...``) or a dag-pb CID names a UnixFS DAG whose bytes cannot be checked
    against one hash, so accepting it would break "every read is verified".
    """
    if not isinstance(cid, str):
        raise InvalidCid(f"CID must be a string, got {type(cid).__name__}")
    if not cid:
        raise InvalidCid("empty CID; pass the CID printed when the content was stored")
    if len(cid) > _MAX_CID_INPUT:
        raise InvalidCid(f"CID is {len(cid)} characters long; a valid one has 59")
    if cid.startswith("Qm"):
        raise InvalidCid(
            f"{cid[:12]}... is a CIDv0 (dag-pb); store the bytes as a raw block "
            "(ipfs block put / ipfs add --raw-leaves --cid-version 1)"
        )
    if cid[0] != MULTIBASE_BASE32:
        raise InvalidCid(
            f"CID {cid[:12]}... uses multibase '{cid[0]}'; only base32 ('b...') is supported"
        )
    raw = base32_decode(cid[1:])
    version, pos = decode_varint(raw, 0)
    if version != CID_VERSION:
        raise InvalidCid(f"CID version {version} is not supported; only CIDv1 is")
    codec, pos = decode_varint(raw, pos)
    if codec != RAW_CODEC:
        raise InvalidCid(
            f"CID codec 0x{codec:x} is not raw (0x55); store the content as a raw block"
        )
    hash_code, pos = decode_varint(raw, pos)
    if hash_code != SHA2_256:
        raise InvalidCid(f"multihash 0x{hash_code:x} is not sha2-256 (0x12)")
    length, pos = decode_varint(raw, pos)
    if length != DIGEST_SIZE:
        raise InvalidCid(f"sha2-256 digest length is {length}; it must be 32")
    digest = raw[pos:]
    if len(digest) != DIGEST_SIZE:
        raise InvalidCid(f"CID holds {len(digest)} digest bytes; expected 32 (truncated?)")
    parsed = ParsedCid(version, codec, hash_code, digest)
    if str(parsed) != cid:
        # base32 with non-zero trailing bits decodes, yet is a second spelling of a CID.
        raise InvalidCid("CID is not in canonical form; use the string ipfs prints")
    return parsed


def digest_of(cid: str) -> bytes:
    """The 32-byte sha256 digest inside ``cid`` (what the contract stores as bytes32)."""
    return parse_cid(cid).digest


def verify(cid: str, data: bytes) -> None:
    """Raise :class:`CidMismatch` unless ``data`` hashes to ``cid``."""
    expected = digest_of(cid)
    actual = hashlib.sha256(data).digest()
    if actual != expected:
        raise CidMismatch(
            f"content for {cid} hashes to {cid_from_digest(actual)}; "
            "the source served wrong or corrupted bytes, fetch it from another store"
        )
