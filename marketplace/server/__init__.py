"""Hardening every LedgerLearn HTTP server shares: limits, rate limits, timeouts.

A server is an ASGI app (the dRAG source node, the content gateway, any later one) run by
uvicorn. Two pieces bound what a stranger can make it do, configured by one
:class:`ServerLimits`:

- :func:`harden` wraps the app in :class:`GuardMiddleware`: a per-client token bucket (429),
  a request body cap checked before the body is read (413), and a JSON guard (400/422 for
  bodies that are not UTF-8, not JSON, nested too deep, or carry unpaired surrogates), so
  malformed input gets a 4xx with a one-line reason, never a 500.
- :func:`uvicorn_config` runs it with :func:`guarded_protocol`: a deadline for a request's
  head and body to arrive (slowloris), a keep-alive limit, a header size cap and a cap on
  concurrent connections per client address.

Import from here: ``from marketplace.server import ServerLimits, harden, uvicorn_config``.
"""

from marketplace.server.limits import ServerLimits
from marketplace.server.middleware import GuardMiddleware, error_response, harden
from marketplace.server.protocol import guarded_protocol
from marketplace.server.ratelimit import TokenBuckets
from marketplace.server.run import run, uvicorn_config

__all__ = [
    "GuardMiddleware",
    "ServerLimits",
    "TokenBuckets",
    "error_response",
    "guarded_protocol",
    "harden",
    "run",
    "uvicorn_config",
]
