"""``ledgerlearn drag serve-client``: the dRAG client as a local HTTP API.

A process that keeps the embedding model, the generator and the keep-alive connections to
the sources open, and answers on 127.0.0.1:

- ``POST /query`` ``{"question", "truth"?: [..], "correct"?: bool, "seed"?: int}`` -> the
  payload of ``drag query --json`` (answer, confidence, passages, sources, feedback);
- ``GET /feedback``: the feedback queue of this client's account (pending deltas, where it
  is kept, whether this account may flush it);
- ``POST /feedback/flush``: send the queued deltas now;
- ``GET /health``.

Deliberately small: one app factory over a :class:`drag.service.QueryService`, pydantic
limits on the body, errors as ``{"error": "..."}`` with 4xx. Questions are answered one at
a time (a lock): the client is single-user, and serial answers keep the generator's cache
and the feedback queue consistent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from drag.service import MAX_QUESTION_CHARS, QueryService
from marketplace.errors import LedgerLearnError

log = logging.getLogger(__name__)


class QueryRequest(BaseModel):
    """Body of ``POST /query``."""

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    truth: list[str] = Field(default_factory=list, max_length=32)
    correct: bool | None = None
    seed: int | None = Field(default=None, ge=0, lt=2**63)


def create_client_app(
    service: QueryService,
    feedback_status: Callable[[], dict[str, Any]] | None = None,
    flush: Callable[[], int] | None = None,
) -> FastAPI:
    """The serve-client app over an open ``service`` (see the module doc)."""
    app = FastAPI(title="LedgerLearn dRAG client", version="1")
    lock = asyncio.Lock()
    opened = False

    @app.exception_handler(LedgerLearnError)
    async def user_error(request: Request, exc: LedgerLearnError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"error": str(exc)})

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "answered": service.answered}

    @app.post("/query")
    async def query(body: QueryRequest) -> dict[str, Any]:
        nonlocal opened
        async with lock:
            if not opened:  # the HTTP pool must belong to the server's event loop
                await service.__aenter__()
                opened = True
            return await service.ask(body.question, body.truth, body.correct, body.seed)

    @app.get("/feedback")
    def feedback() -> dict[str, Any]:
        if feedback_status is None:
            return {"queue": None}
        return feedback_status()

    @app.post("/feedback/flush")
    async def flush_now() -> dict[str, Any]:
        if flush is None:
            return JSONResponse(status_code=409, content={"error": "this client has no queue"})  # type: ignore[return-value]
        async with lock:
            return {"flushed": flush()}

    return app
