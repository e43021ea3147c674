"""The HTTP face of a source node: signed top-k retrieval over its own index.

``POST /retrieve`` answers ``{query, k, query_id}`` with the top-``k`` passages and an
EIP-712 receipt (see :mod:`drag.receipts`) over the query id and the passage hashes,
numbered with the source's next nonce (:mod:`drag.nonces`) and signed with the source's
registered key; a query id the node already answered is refused with 409. ``GET /health``
and ``GET /info`` let clients and operators check the node. FastAPI generates the OpenAPI
schema (``/openapi.json``, ``/docs``).

Bad input is refused with a 4xx whose body is ``{"error": "<one line>", "detail": null}``
and never echoes the input: a body over ``max_body_bytes`` is 413 before it is read whole,
a body that is not UTF-8 JSON of bounded depth, a string with an unpaired surrogate, a
``k`` outside ``1..max_k``, an empty or too long query, a malformed query id, or a bad
``embedding`` is 422; a client over its rate is 429. The shared server guard
(:mod:`marketplace.server`) enforces the HTTP limits; the OpenAPI schema states them.

The request may carry the query's ``embedding`` (unit-norm, the index's dimension), computed
once by the client with the same model (:mod:`drag.embed`) and sent to every source, so a
fan-out to n sources embeds the query once instead of n times. See
:meth:`SourceNode.retrieve` for why that is safe.

:class:`SourceNode` holds the logic with no HTTP, so it can be benchmarked and reused
(e.g. in-process simulations) without a socket.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field, create_model, field_validator
from pydantic.json_schema import JsonDict

from drag.index import PassageIndex
from drag.ingest import ChunkConfig
from drag.nonces import NonceBoundReached, NonceLedger
from drag.receipts import ReceiptDomain, ReceiptSigner, passage_hash
from marketplace.errors import DragError, LedgerLearnError, QueryIdReused
from marketplace.server import GuardMiddleware, ServerLimits, error_response, uvicorn_config

log = logging.getLogger(__name__)

QUERY_ID_RE = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
NORM_TOLERANCE = 1e-3


OPERATOR_CLIENT_LIMITS: dict[str, Any] = {"rate_per_s": 1e6, "burst": 10**6, "work_share": 1e6}
"""SourceConfig limits that never bind: for benchmarks whose only client is the node's own
operator measuring it (a public node keeps the defaults)."""


class SourceConfig(BaseModel):
    """Everything a source node needs besides its index."""

    source_id: int = Field(ge=0, description="id under which the source is registered")
    private_key: str = Field(repr=False, description="hex secp256k1 key registered on-chain")
    chain_id: int = Field(ge=0)
    registry_address: str = Field(description="SourceRegistry contract address")
    max_k: int = Field(default=50, ge=1, le=1000)
    max_query_chars: int = Field(default=2000, ge=1)
    # 32 KiB: a 2,000-character query plus a 384-float embedding (~4-8 KB of JSON)
    max_body_bytes: int = Field(default=32_768, ge=256)
    # per client address; an honest client sends one request per query to each source
    rate_per_s: float = Field(default=10.0, gt=0, description="sustained requests/s per client")
    burst: int = Field(default=20, ge=1, description="requests a client may send at once")
    # one query costs up to an embedding of 2,000 characters: two at a time per client, so
    # a flood of costly queries cannot take every worker (bench_hostile.py)
    max_in_flight: int = Field(default=2, ge=1, description="a client's requests at once")
    # ... and a quarter of one worker's time: 1,800-character queries that the node must
    # embed held its embedding lock most of the time, even at one admitted a second
    work_share: float = Field(default=0.25, gt=0, description="handler seconds/s per client")
    read_timeout_s: float = Field(default=10.0, gt=0, description="to receive a whole request")
    tarpit_s: float = Field(default=1.0, ge=0, description="delay of a 429 for over-rate clients")
    # candidates by cosine + this x the share of the query's words (0: cosine only); the
    # client's rerank default, so the source returns what the client would rank highest
    lexical_weight: float = Field(default=0.5, ge=0, description="word-share weight in search")

    def server_limits(self) -> ServerLimits:
        """The HTTP limits (:mod:`marketplace.server`) this node runs with."""
        return ServerLimits(
            max_body_bytes=self.max_body_bytes,
            rate_per_s=self.rate_per_s,
            burst=self.burst,
            max_in_flight_per_client=self.max_in_flight,
            work_share=self.work_share,
            work_burst_s=5.0,
            read_timeout_s=self.read_timeout_s,
            tarpit_s=self.tarpit_s,
        )


class RetrieveRequest(BaseModel):
    """A retrieval request; limits on ``k`` and ``query`` are enforced by the node."""

    query: str = Field(description="natural-language query")
    k: int = Field(default=5, description="number of passages wanted")
    query_id: str = Field(
        description="32-byte query id, 0x + 64 hex digits",
        json_schema_extra={"pattern": QUERY_ID_RE.pattern},
    )
    embedding: list[float] | None = Field(
        default=None,
        max_length=4096,
        description="optional unit-norm query vector from the index's model; skips embedding",
    )

    @field_validator("query_id")
    @classmethod
    def _hex32(cls, value: str) -> str:
        if not QUERY_ID_RE.match(value):
            raise ValueError("query_id must be 0x followed by 64 hex digits")
        return "0x" + value.removeprefix("0x").lower()


class PassageOut(BaseModel):
    text: str
    score: float
    passage_hash: str
    doc_id: str
    chunk_id: str


class ReceiptOut(BaseModel):
    source_id: int
    nonce: int
    query_id: str
    passages_hash: str
    signature: str


class RetrieveResponse(BaseModel):
    passages: list[PassageOut]
    receipt: ReceiptOut


class InfoResponse(BaseModel):
    source_id: int
    address: str
    passages: int
    chain_id: int
    registry: str
    embedding_model: str
    max_k: int
    max_query_chars: int
    last_nonce: int


class SourceNode:
    """Index + key + limits + nonce ledger: answers retrieval requests and signs receipts.

    The ledger defaults to one in the index folder, so the counter lives with the data it
    serves and survives restarts.
    """

    def __init__(
        self, index: PassageIndex, config: SourceConfig, ledger: NonceLedger | None = None
    ) -> None:
        self.index = index
        self.config = config
        self.signer = ReceiptSigner(
            config.private_key, ReceiptDomain(config.chain_id, config.registry_address)
        )
        self.domain = self.signer.domain
        self.address = self.signer.address
        self.ledger = ledger if ledger is not None else NonceLedger(index.index_dir)

    @classmethod
    def from_dirs(
        cls,
        docs_dir: Path | str,
        index_dir: Path | str,
        config: SourceConfig,
        chunk: ChunkConfig | None = None,
    ) -> SourceNode:
        """Open (or build) the index in ``index_dir``, sync it with ``docs_dir``, wrap it."""
        index = PassageIndex(index_dir, chunk=chunk)
        index.sync(docs_dir)
        return cls(index, config)

    def check(self, query: str, k: int) -> None:
        """Raise :class:`DragError` if the request breaks the node's limits."""
        if not 1 <= k <= self.config.max_k:
            raise DragError(f"k={k} is out of range; ask for 1..{self.config.max_k} passages")
        if not query.strip():
            raise DragError("query is empty; send a non-empty query")
        if not query.isascii():
            try:
                query.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise DragError(
                    f"query has an unpaired surrogate at character {exc.start}; "
                    "send valid Unicode text"
                ) from None
        if len(query) > self.config.max_query_chars:
            raise DragError(
                f"query has {len(query)} characters; the limit is {self.config.max_query_chars}"
            )

    def retrieve(
        self,
        query: str,
        k: int,
        query_id: bytes,
        embedding: Sequence[float] | None = None,
    ) -> RetrieveResponse:
        """Top-``k`` passages for ``query`` with a receipt signed over ``query_id``,
        found by :meth:`drag.index.PassageIndex.search_hybrid` (cosine and word share).

        With ``embedding`` (checked by :func:`check_embedding`) the node searches with that
        vector and does not embed ``query`` itself. This is safe for the node and for
        everyone else: the vector only steers the search of the client that sent it, so a
        client that sends a vector unrelated to its query only gets worse passages for
        itself; it cannot make the node sign anything false, because the receipt (as
        before) binds the query id and the hashes of the passages actually returned, and
        the node still enforces its limits on ``query``, ``k`` and the query id.

        Raises :class:`QueryIdReused` if ``query_id`` was answered before (by this node,
        before or after a restart), :class:`DragError` for a bad request.
        """
        self.check(query, k)
        vector = (
            check_embedding(embedding, self.index.embedder.dim) if embedding is not None else None
        )
        if query_id in self.ledger:
            raise QueryIdReused(
                f"query id 0x{query_id.hex()} was already answered; send a fresh random query id"
            )
        hits = self.index.search_hybrid(query, k, vector, self.config.lexical_weight)
        texts = [h.passage.text for h in hits]
        nonce = self.ledger.issue(query_id)
        receipt = self.signer.sign(self.config.source_id, nonce, query_id, texts).to_json()
        return RetrieveResponse(
            passages=[
                PassageOut(
                    text=h.passage.text,
                    score=h.score,
                    passage_hash="0x" + passage_hash(h.passage.text).hex(),
                    doc_id=h.passage.doc_id,
                    chunk_id=h.passage.chunk_id,
                )
                for h in hits
            ],
            receipt=ReceiptOut(**receipt),
        )

    def info(self) -> InfoResponse:
        return InfoResponse(
            source_id=self.config.source_id,
            address=self.address,
            passages=len(self.index),
            chain_id=self.config.chain_id,
            registry=self.domain.verifying_contract,
            embedding_model=self.index.embedder.name,
            max_k=self.config.max_k,
            max_query_chars=self.config.max_query_chars,
            last_nonce=self.ledger.last,
        )


def check_embedding(embedding: Sequence[float], dim: int) -> np.ndarray:
    """``embedding`` as a ``[1, dim]`` float32 query for :meth:`PassageIndex.search_vectors`.

    Raises :class:`DragError` unless it has exactly ``dim`` finite entries and an L2 norm
    within :data:`NORM_TOLERANCE` of 1 (the index ranks by inner product of unit vectors,
    so any other vector gives scores that are not cosines).
    """
    vec = np.asarray(embedding, dtype=np.float64)
    if vec.ndim != 1 or len(vec) != dim:
        raise DragError(
            f"embedding has {vec.size} values, the index has dimension {dim}; "
            "send a vector from the model GET /info names, or omit embedding"
        )
    if not np.isfinite(vec).all():
        raise DragError("embedding has NaN or infinite values; send finite floats or omit it")
    norm = float(np.linalg.norm(vec))
    if abs(norm - 1.0) > NORM_TOLERANCE:
        raise DragError(
            f"embedding has L2 norm {norm:.6g}, not 1; L2-normalise it or omit embedding"
        )
    return vec.astype(np.float32).reshape(1, dim)


def request_model(node: SourceNode) -> type[RetrieveRequest]:
    """:class:`RetrieveRequest` whose OpenAPI schema states ``node``'s limits.

    The limits are enforced by :meth:`SourceNode.check` and :func:`check_embedding` (whose
    messages say how to fix the request); the schema only publishes them so that clients
    and the fuzz suite see the same contract.
    """
    config = node.config
    dim = node.index.embedder.dim
    k_range: JsonDict = {"minimum": 1, "maximum": config.max_k}
    query_len: JsonDict = {"minLength": 1, "maxLength": config.max_query_chars}
    vector: JsonDict = {"minItems": dim, "maxItems": dim}
    return create_model(
        "RetrieveRequest",
        __base__=RetrieveRequest,
        query=(str, Field(description="natural-language query", json_schema_extra=query_len)),
        k=(int, Field(default=5, description="passages wanted", json_schema_extra=k_range)),
        embedding=(
            Annotated[list[float] | None, Field(max_length=max(dim, 1))],
            Field(
                default=None,
                description="optional unit-norm query vector from the index's model",
                json_schema_extra=vector,
            ),
        ),
    )


def _reason(exc: RequestValidationError) -> str:
    """One line naming the first invalid field; the input itself is never echoed back."""
    errors = exc.errors()
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return f"invalid request: {where or 'body'}: {first.get('msg', 'malformed')}"


def create_app(node: SourceNode) -> FastAPI:
    """FastAPI app serving ``node`` behind the shared server guard (see :mod:`marketplace.server`).

    ``serve`` runs it under uvicorn with the node's :meth:`SourceConfig.server_limits`.
    """
    app = FastAPI(
        title="LedgerLearn dRAG source node",
        version="1",
        description="Signed top-k passage retrieval for the decentralized RAG.",
    )
    app.state.node = node

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        return error_response(422, _reason(exc))

    @app.exception_handler(LedgerLearnError)
    async def _user_error(_: Request, exc: LedgerLearnError) -> Response:
        if isinstance(exc, NonceBoundReached):  # a state of the source, not a bad request
            return error_response(503, str(exc))
        return error_response(409 if isinstance(exc, QueryIdReused) else 422, str(exc))

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "passages": len(node.index)}

    @app.get("/info", response_model=InfoResponse)
    def info() -> InfoResponse:
        return node.info()

    async def retrieve(request: RetrieveRequest) -> RetrieveResponse:
        query_id = bytes.fromhex(request.query_id[2:])
        if request.embedding is None:
            # embedding the query is milliseconds of torch: keep it off the event loop
            return await run_in_threadpool(node.retrieve, request.query, request.k, query_id, None)
        # with the client's vector the work is a one-thread search and a signature, well
        # under a millisecond for a flat index: a thread hop would cost more than it does
        return node.retrieve(request.query, request.k, query_id, request.embedding)

    # the body model is made per node (its schema states this node's limits), so the
    # annotation is set here: a string annotation naming a local could not be resolved
    retrieve.__annotations__["request"] = request_model(node)
    app.post(
        "/retrieve",
        response_model=RetrieveResponse,
        responses={
            409: {"description": "query id already answered"},
            413: {"description": "body too large"},
            422: {"description": "bad input"},
            429: {"description": "too many requests from this client; see Retry-After"},
        },
    )(retrieve)
    app.add_middleware(GuardMiddleware, limits=node.config.server_limits())
    return app


def serve(
    node: SourceNode, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info"
) -> None:
    """Serve ``node`` over HTTP until interrupted (blocking).

    The embedding model is loaded before the port opens: a reopened index needs no
    embedding, and a first query that waits seconds for the model would time out clients.
    """
    node.index.embedder.embed(["warm-up"])
    log.info(
        "source %d (%s) serving %d passages on http://%s:%d",
        node.config.source_id,
        node.address,
        len(node.index),
        host,
        port,
    )
    config = uvicorn_config(
        create_app(node), node.config.server_limits(), host=host, port=port, log_level=log_level
    )
    uvicorn.Server(config).run()


class BackgroundServer:
    """A uvicorn server for one app on a background thread (simulations, demos, tests).

    Binds ``host:port`` (port 0 picks a free port) before starting, so :attr:`url` is
    known at once; :meth:`stop` asks uvicorn to exit and joins the thread. The server
    enforces ``limits`` (default: those of the source node the app serves, if any).
    """

    def __init__(
        self, app: Any, host: str = "127.0.0.1", port: int = 0, limits: ServerLimits | None = None
    ) -> None:
        node = getattr(getattr(app, "state", None), "node", None)
        if limits is None and isinstance(node, SourceNode):
            limits = node.config.server_limits()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # accepted sockets inherit this; asyncio only sets it itself for sockets it creates,
        # and without it a keep-alive request waits ~40 ms on Nagle + delayed ACK
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.bind((host, port))
        self.host = host
        self.port = int(self._sock.getsockname()[1])
        config = uvicorn_config(app, limits, timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise DragError(f"source server on {self.url} did not start; is the port free?")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
