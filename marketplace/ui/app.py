"""The dashboard's ASGI app and server: read-only pages over the chain and a content store.

Read-only by construction: every route accepts only GET and HEAD (anything else gets
405), the app holds clients with no signing account, and the store is only read. Served
on 127.0.0.1 only, behind the same :class:`~marketplace.server.GuardMiddleware` and
uvicorn limits as every LedgerLearn server (rate, body cap, slowloris deadline), with a
Host check (a web page cannot DNS-rebind its way to the dashboard) and a
Content-Security-Policy that allows no script and nothing from another origin.
"""

from __future__ import annotations

import errno
import logging
import socket
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from marketplace.chain.connection import Chain
from marketplace.chain.deploy import Manifest
from marketplace.chain.market import MarketClient
from marketplace.chain.registry import RegistryClient
from marketplace.errors import ConfigError, LedgerLearnError
from marketplace.server import ServerLimits, harden, uvicorn_config
from marketplace.storage import ContentStore
from marketplace.ui.html import STYLESHEET, Html, page, tag
from marketplace.ui.project_page import payouts, project_body, projects_body
from marketplace.ui.sources_page import sources_body
from marketplace.views import ProjectSummary, list_projects, project_history, project_status
from marketplace.views.sources import SourceHistory, source_histories
from marketplace.views.status import trainer_addresses

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
#: A page costs a few chain reads per project; a browser sends a burst of requests at load.
UI_LIMITS = ServerLimits(rate_per_s=10.0, burst=30, max_body_bytes=0)


@dataclass
class DashboardReader:
    """Where the dashboard reads: the market and registry (no signing account) and the
    content store holding the aggregators' round reports (None: chain only)."""

    market: MarketClient | None
    registry: RegistryClient | None
    store: ContentStore | None
    registry_block: int = 0

    def sources(self) -> list[SourceHistory]:
        if self.registry is None:
            return []
        return source_histories(self.registry, self.registry_block)


def reader_for(chain: Chain, manifest: Manifest, store: ContentStore | None) -> DashboardReader:
    """A reader of the contracts in ``manifest`` (those deployed; either may be absent)."""
    contracts = manifest.contracts
    market = contracts.get("ContributionMarket")
    registry = contracts.get("SourceRegistry")
    return DashboardReader(
        market=None if market is None else MarketClient(chain, market.address),
        registry=None if registry is None else RegistryClient(chain, registry.address),
        store=store,
        registry_block=0 if registry is None else registry.block,
    )


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def _error_page(status: int, message: str) -> HTMLResponse:
    return _html(page("Unavailable" if status >= 500 else "Not found",
                      tag("p", message, class_="bad", id="error")), status)  # fmt: skip


def _project_id(request: Request) -> int:
    text = str(request.path_params["project_id"])
    if not text.isdigit() or not 1 <= int(text) < 2**64:
        raise _NotFound(f"no project {text!r}: project ids are whole numbers from 1")
    return int(text)


class _NotFound(Exception):
    pass


def create_app(reader: DashboardReader, refresh_s: int = 15) -> Any:
    """The dashboard as an ASGI app behind the server guard (see the module docstring)."""

    def market() -> MarketClient:
        if reader.market is None:
            raise _NotFound("no ContributionMarket is deployed on this chain")
        return reader.market

    def overview(request: Request) -> Response:
        projects = list_projects(market()) if reader.market is not None else []
        body = projects_body(projects)
        return _html(page("Projects", body, refresh_s))

    def project(request: Request) -> Response:
        pid, m = _project_id(request), market()
        count = m.project_count()
        if pid > count:
            raise _NotFound(f"no project {pid} on this market ({count} projects)")
        summary = ProjectSummary.of(m.project(pid))
        status = project_status(m, pid, reader.store)
        history = project_history(m, reader.store, pid)
        addresses = trainer_addresses(m, pid)
        body = project_body(summary, status, history, addresses, payouts(m, pid, addresses))
        return _html(page(f"Project {pid}", body, refresh_s))

    def sources(request: Request) -> Response:
        if reader.registry is None:
            body = tag("p", "no SourceRegistry is deployed on this chain", class_="muted")
        else:
            body = sources_body(reader.sources())
        return _html(page("dRAG sources", Html(body), refresh_s))

    def api_projects(request: Request) -> Response:
        return JSONResponse([p.to_json() for p in list_projects(market())])

    def api_project(request: Request) -> Response:
        pid, m = _project_id(request), market()
        if pid > m.project_count():
            raise _NotFound(f"no project {pid} on this market")
        return JSONResponse(
            {
                "status": project_status(m, pid, reader.store).to_json(),
                "history": [r.to_json() for r in project_history(m, reader.store, pid)],
            }
        )

    def api_sources(request: Request) -> Response:
        return JSONResponse([s.to_json() for s in reader.sources()])

    def stylesheet(request: Request) -> Response:
        return Response(STYLESHEET, media_type="text/css", headers=SECURITY_HEADERS)

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error_page(404, str(exc) if isinstance(exc, _NotFound) else "no such page")

    async def unavailable(request: Request, exc: Exception) -> Response:
        log.warning("%s: %s", request.url.path, exc)
        return _error_page(503, f"cannot read the chain or the store: {exc}")

    read_only = ["GET", "HEAD"]
    app = Starlette(
        routes=[
            Route("/", overview, methods=read_only),
            Route("/projects/{project_id}", project, methods=read_only),
            Route("/sources", sources, methods=read_only),
            Route("/api/projects", api_projects, methods=read_only),
            Route("/api/projects/{project_id}", api_project, methods=read_only),
            Route("/api/sources", api_sources, methods=read_only),
            Route("/dashboard.css", stylesheet, methods=read_only),
        ],
        exception_handlers={
            404: not_found,
            _NotFound: not_found,
            LedgerLearnError: unavailable,
        },
    )
    guarded = TrustedHostMiddleware(app, allowed_hosts=[HOST, "localhost"])
    return harden(guarded, UI_LIMITS)


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:``port``; a port in use is one clear line."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {HOST} is in use: pass --port with a free port "
                "or stop what listens there"
            ) from exc
        raise ConfigError(f"cannot listen on {HOST}:{port}: {exc.strerror}") from exc
    sock.listen(128)
    return sock


def serve_socket(reader: DashboardReader, sock: socket.socket, refresh_s: int = 15) -> None:
    """Serve the dashboard on ``sock`` (from :func:`bind`) until interrupted."""
    port = int(sock.getsockname()[1])
    config = uvicorn_config(create_app(reader, refresh_s), UI_LIMITS, host=HOST, port=port)
    uvicorn.Server(config).run(sockets=[sock])
