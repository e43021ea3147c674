"""The one exception hierarchy of LedgerLearn.

Every failure a user can act on is a subclass of :class:`LedgerLearnError`; the CLI turns
it into a one-line message (and exit code 1) instead of a traceback. The message says what
went wrong and how to fix it. ``drag`` and ``zk`` raise these too, so one ``except`` in the
CLI covers the whole product.
"""

from __future__ import annotations


class LedgerLearnError(Exception):
    """Root of all user-actionable LedgerLearn errors."""


class ConfigError(LedgerLearnError):
    """Bad configuration or command-line input (malformed address, missing file, ...)."""


class ChainError(LedgerLearnError):
    """The chain could not be reached or answered unexpectedly."""


class ChainUnreachable(ChainError):
    """No JSON-RPC node answers at the given URL."""


class TransactionReverted(ChainError):
    """A transaction or call reverted; ``error_name`` is the decoded custom error."""

    def __init__(self, message: str, error_name: str | None = None, args: tuple = ()) -> None:
        super().__init__(message)
        self.error_name = error_name
        self.error_args = args


class InsufficientFunds(ChainError):
    """The signing account cannot pay a transaction's value plus its gas."""


class DeploymentNotFound(ChainError):
    """No deployment manifest exists for this chain."""


class InvalidKey(LedgerLearnError):
    """A private key or account selector is invalid."""


class StorageError(LedgerLearnError):
    """Content store failures: unknown CID, hash mismatch, unreachable gateway."""


class CidMismatch(StorageError):
    """Bytes fetched for a CID do not hash to that CID."""


class UpdateRejected(LedgerLearnError):
    """A model update failed validation (shape, NaN/inf, size, CID mismatch)."""

    @classmethod
    def because(cls, reason: str, detail: str) -> UpdateRejected:
        """``update rejected (REASON): DETAIL``: the one form of every rejection, whose
        reason a round report records (truncated, malformed, sealed, encrypted, ...)."""
        return cls(f"update rejected ({reason}): {detail}")


class AssumptionViolated(LedgerLearnError):
    """An algorithm's stated assumption does not hold (e.g. Krum needs n >= 2f + 3)."""


class ZkError(LedgerLearnError):
    """Proving, verification or key management failed."""


class DragError(LedgerLearnError):
    """Decentralized RAG failures (bad source response, bad receipt, no sources)."""


class InvalidCid(StorageError):
    """A CID string is malformed or not the CIDv1 raw sha2-256 kind LedgerLearn uses."""


class BlockNotFound(StorageError):
    """No block with this CID exists in the content store that was asked."""


class BlobTooLarge(StorageError):
    """A block or chunked blob is larger than the caller's limit; refused before download."""


class ReadOnlyStore(StorageError):
    """A write (put, pin) was sent to a store that can only read (an HTTP gateway)."""


class DatasetError(LedgerLearnError):
    """A dataset is unknown, malformed or unusable (bad CSV/NPZ, labels, partition)."""


class QueryIdReused(DragError):
    """A source was asked to sign a second receipt for a query id it already answered."""


class MalformedInput(LedgerLearnError, ValueError):
    """Bytes from another party failed the bounded parser (too deep, too big, not strict
    JSON, not an ASCII integer). A ``ValueError`` too, so a caller that already refused
    malformed values with ``except ValueError`` refuses these the same way."""


class FetchRefused(StorageError):
    """A fetch from an untrusted endpoint was cut off by the bounded reader (deadline,
    redirect, content type); ``kind`` names which limit, for reports and traces."""

    def __init__(self, message: str, kind: str = "refused") -> None:
        super().__init__(message)
        self.kind = kind


class ResponseTooLarge(FetchRefused, BlobTooLarge):
    """An answer grew past the reader's size cap; the rest was never read."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "too large")


class EndpointRefused(StorageError, ConfigError):
    """An endpoint URL (announced by a party, or passed by the operator) is not one a node
    may fetch: bad scheme, userinfo, path tricks, or a private address on a public chain."""
