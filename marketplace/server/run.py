"""One way to run a LedgerLearn ASGI app under uvicorn with the server limits applied."""

from __future__ import annotations

from typing import Any

import uvicorn

from marketplace.server.limits import ServerLimits
from marketplace.server.protocol import guarded_protocol


def uvicorn_config(
    app: Any,
    limits: ServerLimits | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str = "warning",
    **options: Any,
) -> uvicorn.Config:
    """A ``uvicorn.Config`` for ``app`` with the read deadline, keep-alive, header cap and
    per-address connection cap of ``limits``. The app should already be behind
    :class:`~marketplace.server.middleware.GuardMiddleware` (body cap, rate limit).
    """
    limits = limits or ServerLimits()
    options.setdefault("lifespan", "off")
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=guarded_protocol(limits),
        timeout_keep_alive=limits.keep_alive_s,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        **options,
    )


def run(app: Any, limits: ServerLimits | None = None, **kwargs: Any) -> None:
    """Serve ``app`` in the foreground (blocking) with ``limits``; see :func:`uvicorn_config`."""
    uvicorn.Server(uvicorn_config(app, limits, **kwargs)).run()
