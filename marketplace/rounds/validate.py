"""Fetch one committed update by CID and decide whether it may enter the round.

The aggregator treats every update as hostile input. Each failure mode becomes a
:class:`CheckedUpdate` with a short machine-readable ``kind`` and a one-line reason that
goes into the round report and the on-chain ``rejectedMask``; nothing a trainer sends can
crash the round:

==============  ==========================================================
kind            meaning
==============  ==========================================================
``missing``     the trainer's gateway does not have the CID (or no endpoint)
``endpoint``    the announced endpoint may not be fetched (private address on a
                public chain, userinfo, path tricks: :mod:`marketplace.untrusted.endpoints`)
``unreachable`` the gateway did not answer, or not within the fetch deadline, or
                answered a redirect or the wrong content type
``cid``         bytes do not hash to the committed CID (or manifest is bad)
``too large``   the blob is over the model's size limit (refused unread)
``truncated``   the safetensors data is cut short
``malformed``   not safetensors, a bad header, or a corrupt blob manifest
``names``       missing or unexpected tensors
``shape``       a tensor has the wrong shape
``dtype``       a tensor is not float32
``non-finite``  NaN or infinity anywhere
``metadata``    not an update for this round, or a bad sample count
``sketch``      (verifiable projects) the published sketch does not open the
                on-chain commitment or is not the update's sketch
``encrypted``   sealed to the project's readers, and this party holds no
                reader key for it (an auditor's "cannot verify", not a fault)
``sealed``      a malformed or unauthenticated envelope, or its public
                metadata differs from the sealed update's
``privacy``     in clear where the spec requires sealing, or a missing,
                wrong or over-budget DP epsilon (:mod:`marketplace.privacy`)
==============  ==========================================================

Architecture step 4 ("fetches each update by CID and verifies it; rejects malformed
updates (shape, NaN/inf, size)").
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace

from torch import Tensor

from marketplace.errors import (
    BlobTooLarge,
    BlockNotFound,
    CidMismatch,
    EndpointRefused,
    FetchRefused,
    InvalidCid,
    MalformedInput,
    StorageError,
    UpdateRejected,
)
from marketplace.learning import ModelSpec
from marketplace.privacy.keys import ReaderKey
from marketplace.privacy.updates import open_blob, privacy_problem
from marketplace.rounds.codec import KIND_UPDATE, decode_params, max_blob_bytes
from marketplace.storage import ContentStore, get_blob
from marketplace.untrusted.parse import parse_int

log = logging.getLogger(__name__)

_REASON = re.compile(r"update rejected \(([^)]+)\)")
#: Largest sample count a trainer may claim (a weight, capped again by the robust rule).
MAX_CLAIMED_SAMPLES = 10**9
#: Longest an update's whole fetch may take (the largest update, 64 MiB, at ~5 Mbit/s);
#: each block also has its reader's own deadline.
UPDATE_DEADLINE_S = 120.0


@dataclass(frozen=True)
class CheckedUpdate:
    """One trainer's update after validation: ``vector`` when accepted, else a reason."""

    index: int
    cid: str
    vector: Tensor | None = None
    num_samples: int = 1
    kind: str | None = None
    reason: str | None = None
    metadata: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def accepted(self) -> bool:
        return self.vector is not None

    def rejected(self, kind: str, detail: str) -> CheckedUpdate:
        """This update, rejected after fetching (e.g. its sketch does not open)."""
        reason = f"{kind}: {detail}"
        log.warning("trainer %d update %s rejected (%s)", self.index, self.cid, reason)
        return replace(self, vector=None, kind=kind, reason=reason)


#: Kinds that say the blob could not be obtained from that store, not that it is wrong:
#: an auditor who meets them has nothing to check ("cannot verify"), which is no finding
#: against the aggregator (``cid``: this store served other bytes than the CID's).
UNAVAILABLE_KINDS = frozenset({"missing", "endpoint", "unreachable", "cid"})


def _rejected(index: int, cid: str, kind: str, detail: str) -> CheckedUpdate:
    reason = f"{kind}: {detail}"
    log.warning("trainer %d update %s rejected (%s)", index, cid, reason)
    return CheckedUpdate(index=index, cid=cid, kind=kind, reason=reason)


def storage_kind(exc: StorageError) -> str:
    """The rejection kind of a failed fetch (module table)."""
    if isinstance(exc, EndpointRefused):
        return "endpoint"
    if isinstance(exc, BlobTooLarge):
        return "too large"
    if isinstance(exc, FetchRefused):
        return "unreachable"
    if isinstance(exc, BlockNotFound):
        return "missing"
    if isinstance(exc, CidMismatch | InvalidCid):
        return "cid"
    text = str(exc)
    if "manifest" in text or "chunks" in text:
        return "malformed"
    return "unreachable"


def check_bytes(
    index: int,
    cid: str,
    data: bytes,
    spec: ModelSpec,
    project_id: int,
    round_: int,
    reader: ReaderKey | None = None,
) -> CheckedUpdate:
    """Validate already-fetched (and CID-verified) bytes as ``round_``'s update, opening a
    sealed one with ``reader`` (:mod:`marketplace.privacy.updates`)."""
    try:
        data, public = open_blob(spec, data, reader)
        vector, meta = decode_params(spec, data)
    except UpdateRejected as exc:
        match = _REASON.match(str(exc))
        kind = match.group(1) if match else "malformed"
        detail = str(exc).split(": ", 1)[-1]
        return _rejected(index, cid, kind, detail)
    if meta.get("kind") != KIND_UPDATE:
        return _rejected(index, cid, "metadata", f"blob kind is {meta.get('kind')!r}, not update")
    if meta.get("project") != str(project_id) or meta.get("round") != str(round_):
        return _rejected(
            index,
            cid,
            "metadata",
            f"made for project {meta.get('project')} round {meta.get('round')}, "
            f"not project {project_id} round {round_}",
        )
    try:
        samples = parse_int(meta.get("num_samples", "1"), "num_samples", 1, MAX_CLAIMED_SAMPLES)
    except MalformedInput as exc:
        return _rejected(index, cid, "metadata", str(exc))
    problem = privacy_problem(spec, meta, public, round_)
    if problem is not None:
        return _rejected(index, cid, *problem)
    return CheckedUpdate(
        index=index, cid=cid, vector=vector, num_samples=samples, metadata=dict(meta)
    )


def fetch_update(
    store: ContentStore | None,
    index: int,
    cid: str,
    spec: ModelSpec,
    project_id: int,
    round_: int,
    reader: ReaderKey | None = None,
) -> CheckedUpdate:
    """Fetch ``cid`` from ``store`` (a trainer's gateway) and validate it (``reader``
    opens sealed updates).

    ``store`` None means the trainer announced no endpoint. Never raises for anything the
    trainer controls; returns a rejected :class:`CheckedUpdate` instead.
    """
    if store is None:
        return _rejected(index, cid, "missing", "the trainer announced no gateway endpoint")
    try:
        data = get_blob(store, cid, max_blob_bytes(spec), UPDATE_DEADLINE_S)
    except StorageError as exc:
        return _rejected(index, cid, storage_kind(exc), str(exc))
    except Exception as exc:  # a hostile gateway must not crash the round
        return _rejected(index, cid, "unreachable", f"{type(exc).__name__}: {exc}")
    return check_bytes(index, cid, data, spec, project_id, round_, reader)
