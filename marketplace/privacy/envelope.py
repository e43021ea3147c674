"""Sealed updates: hybrid encryption of a blob to a project's named readers.

Format (all integers big-endian)::

    MAGIC (8 bytes) | header length (4) | header (canonical JSON) | ciphertext

The header carries the format version, the blob's *public* metadata (what everyone may
read: kind, project, round, sketch opening, reported epsilon, bucketed sample count), one
ephemeral X25519 public key and, per reader, the content key wrapped for that reader. The
ciphertext is ChaCha20-Poly1305 (RFC 8439) of the inner blob under a fresh 32-byte content
key, with the magic, length and header as associated data, so nobody can swap the public
metadata of a sealed blob. Each reader's key-encryption key is HKDF-SHA256 of the X25519
shared secret with the ephemeral key and the reader's key as context (the ECIES/HPKE
pattern, RFC 9180's DHKEM without its full key schedule).

Determinism: the content key is derived from a sealing secret (the trainer's private
secret) and the digests of the inner blob and the public header, and the ephemeral key and
nonce from the content key. The same update sealed twice gives the same bytes (a restarted
trainer republishes the same CID); a different update, round or project gets an unrelated
key; and without the secret nobody can recompute a key from a guessed update.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from marketplace.errors import MalformedInput, UpdateRejected
from marketplace.learning.privacy_spec import MAX_READERS
from marketplace.privacy.keys import ReaderKey, _raw_public, hkdf
from marketplace.storage.base import canonical_json
from marketplace.untrusted.parse import loads as bounded_json

MAGIC = b"LLSEAL\x00\x01"
VERSION = 1
#: Most co-trainers an update is sealed to: every trainer a project can register
#: (``ContributionMarket.MAX_TRAINERS``). In an attested project each active trainer must
#: open every update of its round to replay and attest it, so a cap below the roster would
#: leave the trainers past it unable to attest and, past half the stake, every round
#: without a majority (no reward for anyone).
MAX_REPLAYERS = 4096
#: The spec's readers (at most ``MAX_READERS``) plus every replaying co-trainer.
MAX_RECIPIENTS = MAX_READERS + MAX_REPLAYERS
#: Public metadata (a few hundred bytes) plus ~135 bytes per recipient: 555 KB at
#: ``MAX_RECIPIENTS``; refused beyond, before any JSON is decoded.
MAX_HEADER_BYTES = 1 << 20
#: Most bytes sealing adds to a blob: magic, header length, header, AEAD tag.
MAX_SEAL_OVERHEAD = len(MAGIC) + 4 + MAX_HEADER_BYTES + 16
_WRAP_LABEL = b"ledgerlearn/privacy/wrap/v1"
_ZERO_NONCE = bytes(12)


def is_sealed(data: bytes) -> bool:
    """Whether ``data`` is a sealed envelope (as opposed to a plain blob)."""
    return data[: len(MAGIC)] == MAGIC


def _kid(public: bytes) -> str:
    return hashlib.sha256(public).hexdigest()[:16]


def _kek(shared: bytes, epk: bytes, reader: bytes) -> bytes:
    return hkdf(shared, _WRAP_LABEL + epk + reader)


def seal(inner: bytes, public: Mapping[str, str], readers: Sequence[str], secret: bytes) -> bytes:
    """Encrypt ``inner`` to every reader (hex X25519 public keys); ``public`` travels in
    clear (and authenticated). ``secret`` keys the deterministic derivation (module
    docstring): pass a private, per-node secret, never a public value."""
    if not readers:
        raise ValueError("sealing needs at least one reader key")
    if len(readers) > MAX_RECIPIENTS:
        raise ValueError(f"at most {MAX_RECIPIENTS} readers")
    public = {str(k): str(v) for k, v in public.items()}
    context = hashlib.sha256(inner).digest() + hashlib.sha256(canonical_json(public)).digest()
    content_key = hkdf(secret, b"ledgerlearn/privacy/content/v1" + context)
    ephemeral = X25519PrivateKey.from_private_bytes(hkdf(content_key, b"ephemeral"))
    epk = _raw_public(ephemeral.public_key())
    nonce = hkdf(content_key, b"nonce", 12)
    recipients = []
    for reader_hex in readers:
        reader = bytes.fromhex(reader_hex)
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(reader))
        wrapped = ChaCha20Poly1305(_kek(shared, epk, reader)).encrypt(
            _ZERO_NONCE, content_key, None
        )
        recipients.append({"kid": _kid(reader), "wrap": wrapped.hex()})
    header = canonical_json(
        {
            "v": VERSION,
            "aead": "chacha20poly1305",
            "epk": epk.hex(),
            "nonce": nonce.hex(),
            "public": public,
            "recipients": recipients,
        }
    )
    prefix = MAGIC + len(header).to_bytes(4, "big") + header
    return prefix + ChaCha20Poly1305(content_key).encrypt(nonce, inner, prefix)


@dataclass(frozen=True)
class Envelope:
    """A parsed (not yet opened) sealed blob."""

    prefix: bytes
    epk: bytes
    nonce: bytes
    public: dict[str, str]
    recipients: dict[str, bytes]
    ciphertext: bytes


def _hex(value: Any, length: int, what: str) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * length:
        raise UpdateRejected.because("sealed", f"envelope {what} is not {length} bytes of hex")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise UpdateRejected.because("sealed", f"envelope {what} is not hex") from None


def parse(data: bytes) -> Envelope:
    """Parse an envelope's header, refusing anything malformed (hostile input)."""
    if not is_sealed(data) or len(data) < len(MAGIC) + 4:
        raise UpdateRejected.because("sealed", "not a sealed envelope")
    size = int.from_bytes(data[len(MAGIC) : len(MAGIC) + 4], "big")
    start = len(MAGIC) + 4
    if size > MAX_HEADER_BYTES or start + size > len(data):
        raise UpdateRejected.because(
            "sealed", f"envelope header of {size} bytes is too large or cut short"
        )
    try:
        header = bounded_json(
            data[start : start + size],
            max_bytes=MAX_HEADER_BYTES,
            what="envelope header",
            unique_keys=True,
        )
    except MalformedInput as exc:
        raise UpdateRejected.because("sealed", str(exc)) from None
    if not isinstance(header, dict) or header.get("v") != VERSION:
        raise UpdateRejected.because("sealed", "envelope header is not a version-1 object")
    if header.get("aead") != "chacha20poly1305":
        raise UpdateRejected.because("sealed", f"unknown cipher {header.get('aead')!r}")
    public = header.get("public")
    if not isinstance(public, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in public.items()
    ):
        raise UpdateRejected.because(
            "sealed", "envelope public metadata must map strings to strings"
        )
    raw_recipients = header.get("recipients")
    if not isinstance(raw_recipients, list) or not 1 <= len(raw_recipients) <= MAX_RECIPIENTS:
        raise UpdateRejected.because("sealed", f"envelope must name 1..{MAX_RECIPIENTS} recipients")
    recipients: dict[str, bytes] = {}
    for entry in raw_recipients:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            raise UpdateRejected.because("sealed", "envelope recipient is malformed")
        recipients[entry["kid"]] = _hex(entry.get("wrap"), 48, "wrapped key")
    return Envelope(
        prefix=data[: start + size],
        epk=_hex(header.get("epk"), 32, "ephemeral key"),
        nonce=_hex(header.get("nonce"), 12, "nonce"),
        public=dict(public),
        recipients=recipients,
        ciphertext=data[start + size :],
    )


def open_envelope(data: bytes, reader: ReaderKey | None) -> tuple[bytes, dict[str, str]]:
    """Decrypt a sealed blob with ``reader``; returns ``(inner, public metadata)``.

    Raises :class:`UpdateRejected` with reason ``encrypted`` when ``reader`` is None or not
    a recipient (the blob may be fine: this party just cannot read it), and ``sealed`` when
    the envelope is malformed or fails authentication (the blob is bad)."""
    envelope = parse(data)
    if reader is None:
        raise UpdateRejected.because(
            "encrypted", "sealed to the project's readers; no reader key given"
        )
    public = bytes.fromhex(reader.public_hex)
    wrapped = envelope.recipients.get(_kid(public))
    if wrapped is None:
        raise UpdateRejected.because("encrypted", "not sealed to this reader key")
    try:
        shared = reader.private.exchange(X25519PublicKey.from_public_bytes(envelope.epk))
        content_key = ChaCha20Poly1305(_kek(shared, envelope.epk, public)).decrypt(
            _ZERO_NONCE, wrapped, None
        )
        inner = ChaCha20Poly1305(content_key).decrypt(
            envelope.nonce, envelope.ciphertext, envelope.prefix
        )
    except (InvalidTag, ValueError):
        raise UpdateRejected.because(
            "sealed", "the envelope does not authenticate under its header"
        ) from None
    return inner, envelope.public
