"""Keys of the privacy layer, derived from a node's Ethereum key so that no new key file
exists to lose or to leak.

HKDF-SHA256 (RFC 5869) with a distinct label per use turns the 32-byte secp256k1 key into
independent secrets: the X25519 reader key an aggregator's updates are sealed to, and the
trainer's private seed material (batch order, DP noise, content keys). Knowing a derived
value reveals nothing about the Ethereum key (HKDF is one-way), and the same key always
derives the same values, so a restarted node republishes byte-identical blobs.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from marketplace.errors import ConfigError

READER_LABEL = b"ledgerlearn/privacy/x25519-reader/v1"
TRAINER_LABEL = b"ledgerlearn/privacy/trainer-secret/v1"


def hkdf(secret: bytes, label: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 of ``secret`` with ``label`` as its info (no salt: inputs are keys)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label).derive(secret)


def _raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class ReaderKey:
    """An X25519 key pair that may open sealed updates."""

    private: X25519PrivateKey

    @classmethod
    def from_eth_key(cls, eth_key: bytes) -> ReaderKey:
        """The reader key of the node that signs with ``eth_key``."""
        return cls(X25519PrivateKey.from_private_bytes(hkdf(bytes(eth_key), READER_LABEL)))

    @classmethod
    def from_hex(cls, text: str) -> ReaderKey:
        """Parse a 64-hex-character private reader key (``aggregator reader-key`` prints
        it)."""
        raw = text.strip().removeprefix("0x")
        try:
            value = bytes.fromhex(raw)
        except ValueError:
            value = b""
        if len(value) != 32:
            raise ConfigError(
                "a reader key is 64 hex characters (32 bytes): print it with "
                "`ledgerlearn aggregator reader-key --key ...`"
            )
        return cls(X25519PrivateKey.from_private_bytes(value))

    @property
    def public_hex(self) -> str:
        """The public key as the model spec lists it."""
        return _raw_public(self.private.public_key()).hex()

    @property
    def private_hex(self) -> str:
        return self.private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        ).hex()


def trainer_secret(eth_key: bytes) -> bytes:
    """A trainer's private 32-byte secret: seeds its batch order and DP noise and keys its
    sealed updates. Not derivable from anything public, so nobody can replay its training
    on a guessed dataset to confirm the guess bit for bit."""
    return hkdf(bytes(eth_key), TRAINER_LABEL)


def secret_seed(secret: bytes, *parts: int) -> int:
    """A training seed in ``[0, 2**63)`` from a private secret and public coordinates."""
    label = b"ledgerlearn/privacy/seed/v1:" + b":".join(str(int(p)).encode() for p in parts)
    return int.from_bytes(hkdf(secret, label, 8), "big") >> 1
