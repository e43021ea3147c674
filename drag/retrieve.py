"""Query the chosen sources in parallel and keep only answers they provably signed.

Step 3 of the dRAG query (docs/architecture.md). Each source gets its own deadline; a source
that is down, slow, answers garbage, or returns a receipt that does not verify against its
*registered* address is skipped and reported in :attr:`FanOutResult.failures`, never an
exception for the whole query: one bad source must not deny service to the client.

The query may be embedded once by the client and the vector sent to every source
(``embedding`` in the ``/retrieve`` body, see :mod:`drag.server`), so n sources do not each
embed the same text: on one shared machine that was most of the fan-out latency. A source
that refuses the vector (422 naming ``embedding``: another model or dimension) is asked
again without it; a source that predates the field ignores it.

The request body is the same for every source (one query id per fan-out), so it is
JSON-encoded once, not once per source; pass one long-lived ``client`` (see
:class:`drag.client.DragClient` used as a context manager) to reuse keep-alive connections
across queries.

The receipt check recomputes every passage hash from the text received, so a source (or a
man in the middle) cannot return one text and sign another.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import numpy as np

from drag.receipts import (
    Receipt,
    ReceiptDomain,
    combined_passage_hash,
    new_query_id,
    passage_hash,
    verify_receipt,
)
from drag.registry import SourceRecord
from marketplace.errors import ConfigError, DragError, EndpointRefused, FetchRefused
from marketplace.untrusted.endpoints import check_endpoint, private_allowed
from marketplace.untrusted.parse import loads
from marketplace.untrusted.reader import Fetched, ReadLimits, aread

log = logging.getLogger(__name__)

FailureKind = Literal[
    "timeout", "unreachable", "http_status", "bad_response", "bad_receipt", "refused"
]
#: Largest ``/retrieve`` answer read from a source (k passages of a few KB each, plus the
#: receipt); the rest of a bigger answer is never read.
MAX_ANSWER_BYTES = 4 << 20
#: Largest passage score accepted (similarities are in [-1, 1]; rerankers give logits).
MAX_SCORE = 1e6


@dataclass(frozen=True)
class RetrievedPassage:
    """A passage as received from a source, after verification."""

    text: str
    score: float
    passage_hash: bytes
    doc_id: str
    chunk_id: str
    source_id: int


@dataclass(frozen=True)
class SourceResponse:
    """A verified answer of one source."""

    source: SourceRecord
    passages: list[RetrievedPassage]
    receipt: Receipt
    latency_s: float


@dataclass(frozen=True)
class SourceFailure:
    """Why one source contributed nothing to this query."""

    source_id: int
    endpoint: str
    kind: FailureKind
    detail: str
    latency_s: float


@dataclass
class FanOutResult:
    """Verified responses and failures of one fan-out, under one query id."""

    query_id: bytes
    responses: list[SourceResponse] = field(default_factory=list)
    failures: list[SourceFailure] = field(default_factory=list)

    def passages(self) -> list[RetrievedPassage]:
        """All verified passages, in source then rank order."""
        return [p for r in self.responses for p in r.passages]

    def receipts(self) -> dict[int, Receipt]:
        """Receipt per source id (what feedback for this query must carry)."""
        return {r.source.source_id: r.receipt for r in self.responses}


def parse_response(
    payload: Any, source: SourceRecord, domain: ReceiptDomain, query_id: bytes, k: int
) -> tuple[list[RetrievedPassage], Receipt]:
    """Validate a ``/retrieve`` body; raise :class:`DragError` naming what is wrong."""
    if not isinstance(payload, dict):
        raise DragError("response is not a JSON object")
    raw_passages = payload.get("passages")
    if not isinstance(raw_passages, list):
        raise DragError("response has no passages list")
    if len(raw_passages) > k:
        raise DragError(f"response has {len(raw_passages)} passages, more than k={k}")
    receipt = Receipt.from_json(payload.get("receipt") or {})
    passages = []
    for item in raw_passages:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise DragError("a passage has no text")
        text = item["text"]
        digest = passage_hash(text)
        claimed = str(item.get("passage_hash", ""))
        if claimed and claimed.removeprefix("0x").lower() != digest.hex():
            raise DragError("a passage_hash does not match its text")
        score = item.get("score", 0.0)
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise DragError("a passage score is not a number")
        if not math.isfinite(score) or abs(score) > MAX_SCORE:
            raise DragError(f"a passage score is not a finite number within +-{MAX_SCORE:g}")
        passages.append(
            RetrievedPassage(
                text=text,
                score=float(score),
                passage_hash=digest,
                doc_id=str(item.get("doc_id", "")),
                chunk_id=str(item.get("chunk_id", "")),
                source_id=source.source_id,
            )
        )
    return passages, receipt


def request_body(
    query: str, k: int, query_id: bytes, embedding: list[float] | None = None
) -> bytes:
    """The JSON body of ``POST /retrieve`` (compact; ``embedding`` only when given)."""
    body: dict[str, Any] = {"query": query, "k": k, "query_id": "0x" + query_id.hex()}
    if embedding is not None:
        body["embedding"] = embedding
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


async def query_source(
    client: httpx.AsyncClient,
    source: SourceRecord,
    domain: ReceiptDomain,
    query: str,
    k: int,
    query_id: bytes,
    timeout_s: float,
    embedding: list[float] | None = None,
    body: bytes | None = None,
    allow_private: bool = True,
) -> SourceResponse | SourceFailure:
    """One source's verified answer, or the reason there is none (never raises).

    ``embedding`` (a JSON-ready list, see :func:`embedding_payload`) is sent along; if the
    source refuses it, the query is sent once more without it, within the same deadline.
    ``body``: the request already encoded by :func:`request_body` with the same arguments
    (a fan-out encodes it once for all sources). ``allow_private``: whether a source on a
    loopback or private address is asked (see :mod:`marketplace.untrusted.endpoints`).
    """
    start = time.perf_counter()
    if body is None:
        body = request_body(query, k, query_id, embedding)
    headers = {"content-type": "application/json"}

    def failure(kind: FailureKind, detail: str) -> SourceFailure:
        log.info("source %d skipped (%s): %s", source.source_id, kind, detail)
        return SourceFailure(
            source.source_id, source.endpoint, kind, detail, time.perf_counter() - start
        )

    try:
        what = f"source {source.source_id}'s endpoint"
        url = check_endpoint(source.endpoint, allow_private, what) + "/retrieve"
    except EndpointRefused as exc:
        return failure("refused", str(exc))

    async def post(content: bytes) -> Fetched:
        left = timeout_s - (time.perf_counter() - start)
        if left <= 0:
            raise TimeoutError
        limits = ReadLimits(MAX_ANSWER_BYTES, left, ("application/json",), read_timeout_s=left)
        return await aread(client, "POST", url, limits, headers=headers, content=content)

    try:
        response = await post(body)
        if response.status == 422 and embedding is not None and b"embedding" in response.body:
            log.info("source %d refused the query embedding; asking without it", source.source_id)
            response = await post(request_body(query, k, query_id))
    except FetchRefused as exc:
        if exc.kind == "timeout":
            return failure("timeout", f"no complete answer within {timeout_s:.3g} s")
        return failure("refused", str(exc))
    except (TimeoutError, httpx.TimeoutException):
        return failure("timeout", f"no answer within {timeout_s:.3g} s")
    except httpx.HTTPError as exc:
        return failure("unreachable", f"{type(exc).__name__}: {exc}")
    if response.status != 200:
        return failure("http_status", f"HTTP {response.status}: {response.text}")
    try:
        payload = loads(response.body, max_bytes=MAX_ANSWER_BYTES, what="the answer")
        passages, receipt = parse_response(payload, source, domain, query_id, k)
    except (ValueError, DragError) as exc:
        return failure("bad_response", str(exc))
    # parse_response hashed every passage text received; the receipt must sign exactly those
    if combined_passage_hash([p.passage_hash for p in passages]) != receipt.passages_hash:
        return failure("bad_receipt", "receipt does not sign the passages returned")
    if not verify_receipt(
        receipt,
        domain,
        source.address,
        expected_query_id=query_id,
        expected_source_id=source.source_id,
    ):
        return failure("bad_receipt", "receipt does not verify against the registered address")
    return SourceResponse(source, passages, receipt, time.perf_counter() - start)


def embedding_payload(embedding: np.ndarray | Sequence[float]) -> list[float]:
    """A query vector as the JSON list ``/retrieve`` takes: one row, finite, 8 decimals.

    Eight decimals keep the search identical in practice (float32 holds ~7 significant
    digits; MiniLM components are ~0.05) and halve the body against full ``repr`` floats.
    """
    vec = np.asarray(embedding, dtype=np.float64)
    if vec.ndim == 2 and vec.shape[0] == 1:
        vec = vec[0]
    if vec.ndim != 1 or vec.size == 0:
        raise ConfigError(f"embedding has shape {vec.shape}; pass one query vector")
    if not np.isfinite(vec).all():
        raise ConfigError("embedding has NaN or infinite values; embed the query again")
    return [round(float(x), 8) for x in vec]


def new_http_client(
    n_sources: int = 10, endpoints: Sequence[str] | None = None
) -> httpx.AsyncClient:
    """The HTTP client a fan-out uses: enough keep-alive connections for every source.

    Loading the system's CA certificates costs 20-30 ms, more than a whole fan-out on
    localhost. When ``endpoints`` are given and none is ``https``, the client gets a TLS
    context with no trusted CA instead: it is never used (redirects are not followed), and
    if it were, every certificate check would fail, so it fails closed.
    """
    limits = httpx.Limits(max_connections=max(10, n_sources))
    if endpoints is not None and not any(e.lower().startswith("https:") for e in endpoints):
        return httpx.AsyncClient(limits=limits, verify=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    return httpx.AsyncClient(limits=limits)


async def fan_out(
    query: str,
    k: int,
    sources: Sequence[SourceRecord],
    domain: ReceiptDomain,
    query_id: bytes | None = None,
    timeout_s: float = 5.0,
    client: httpx.AsyncClient | None = None,
    embedding: np.ndarray | Sequence[float] | None = None,
    allow_private: bool | None = None,
) -> FanOutResult:
    """Query all ``sources`` concurrently, each with its own ``timeout_s`` deadline.

    ``embedding``: the query's unit-norm vector from the sources' model, computed once by
    the caller and sent to every source so none embeds the query again.
    ``allow_private``: ask sources on loopback or private addresses; by default only on a
    local development chain (the receipt domain's chain id).
    """
    if allow_private is None:
        allow_private = private_allowed(domain.chain_id)
    if k < 1:
        raise ConfigError(f"k={k}; ask each source for at least one passage")
    if timeout_s <= 0:
        raise ConfigError(f"timeout_s={timeout_s}; use a positive per-source timeout")
    vector = embedding_payload(embedding) if embedding is not None else None
    qid = query_id if query_id is not None else new_query_id()
    body = request_body(query, k, qid, vector)
    own_client = client is None
    http = client or new_http_client(len(sources), [s.endpoint for s in sources])
    try:
        outcomes = await asyncio.gather(
            *(
                query_source(http, s, domain, query, k, qid, timeout_s, vector, body, allow_private)
                for s in sources
            )
        )
    finally:
        if own_client:
            await http.aclose()
    result = FanOutResult(query_id=qid)
    for outcome in outcomes:
        if isinstance(outcome, SourceResponse):
            result.responses.append(outcome)
        else:
            result.failures.append(outcome)
    return result


def fan_out_sync(
    query: str,
    k: int,
    sources: Sequence[SourceRecord],
    domain: ReceiptDomain,
    query_id: bytes | None = None,
    timeout_s: float = 5.0,
    embedding: np.ndarray | Sequence[float] | None = None,
) -> FanOutResult:
    """:func:`fan_out` for callers without an event loop (CLI, simulations)."""
    return asyncio.run(
        fan_out(
            query, k, sources, domain, query_id=query_id, timeout_s=timeout_s, embedding=embedding
        )
    )
