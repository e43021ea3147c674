"""Riding out an RPC node outage: a web3 HTTP provider that retries with backoff.

A node restart, a proxy reload or a dropped connection used to kill ``aggregator run`` and
``trainer run`` with a ``ConnectionError`` traceback on their next poll. Every JSON-RPC
request of a connected chain (:func:`marketplace.chain.connection.connect`) goes through
:class:`RetryingHTTPProvider` instead, which retries a request the node did not answer:

* a refused connection (the request never reached the node) for every method;
* a timeout, a dropped connection or an HTTP 5xx only for read methods (web3's retry
  allowlist): a timed-out ``eth_sendRawTransaction`` may have been accepted, so it is not
  sent twice;

waiting 0.5 s, 1 s, 2 s, ... (at most :data:`MAX_BACKOFF_S`) and logging one warning line
per attempt and one when the node is back. The nodes hold no state between polls (they
re-read the chain), so when the request finally succeeds they continue where the chain
is. After ``max_outage_s`` without an answer the request fails with
:class:`~marketplace.errors.ChainUnreachable`, one line in the CLI, never a traceback.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import requests
from web3 import HTTPProvider
from web3.providers.rpc.utils import REQUEST_RETRY_ALLOWLIST, check_if_retry_on_failure
from web3.types import RPCEndpoint

from marketplace.errors import ChainUnreachable

log = logging.getLogger(__name__)

#: How long a node waits for an RPC node that stopped answering before giving up.
DEFAULT_MAX_OUTAGE_S = 600.0
#: First and longest pause between retries.
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0


def _never_connected(exc: BaseException) -> bool:
    """Whether the request surely never reached the node (connection refused or not made)."""
    text = f"{exc!r} {exc}"
    return isinstance(exc, requests.ConnectTimeout) or any(
        mark in text for mark in ("NewConnectionError", "Connection refused", "ConnectionRefused")
    )


def _retryable(exc: BaseException, method: RPCEndpoint) -> bool:
    """Retry what never reached the node; retry timeouts, drops and 5xx of reads only."""
    if _never_connected(exc):
        return True
    read_only = check_if_retry_on_failure(method, REQUEST_RETRY_ALLOWLIST)
    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        return read_only and status >= 500
    return read_only and isinstance(exc, requests.ConnectionError | requests.Timeout)


class RetryingHTTPProvider(HTTPProvider):
    """web3's HTTP provider, retrying what an RPC outage breaks (see the module docstring)."""

    def __init__(
        self,
        endpoint_uri: str,
        request_kwargs: dict[str, Any] | None = None,
        max_outage_s: float = DEFAULT_MAX_OUTAGE_S,
    ) -> None:
        # exception_retry_configuration=None: this class does the retrying.
        super().__init__(
            endpoint_uri, request_kwargs=request_kwargs, exception_retry_configuration=None
        )
        self.max_outage_s = max_outage_s

    def _make_request(self, method: RPCEndpoint, request_data: bytes) -> bytes:
        down_since: float | None = None
        backoff = FIRST_BACKOFF_S
        attempt = 0
        while True:
            try:
                raw = super()._make_request(method, request_data)
            except (requests.ConnectionError, requests.Timeout, requests.HTTPError) as exc:
                if not _retryable(exc, method):
                    raise
                now = time.monotonic()
                down_since = now if down_since is None else down_since
                down = now - down_since
                if down >= self.max_outage_s:
                    raise ChainUnreachable(
                        f"the RPC node at {self.endpoint_uri} has not answered for "
                        f"{down:.0f} s ({type(exc).__name__}); restart it, then run this "
                        "command again: it resumes from the chain's state"
                    ) from None
                attempt += 1
                pause = min(backoff, MAX_BACKOFF_S, self.max_outage_s - down)
                log.warning(
                    "RPC node %s unreachable (%s on %s); retry %d in %.1f s "
                    "(down %.0f s, giving up after %.0f s)",
                    self.endpoint_uri,
                    type(exc).__name__,
                    method,
                    attempt,
                    pause,
                    down,
                    self.max_outage_s,
                )
                time.sleep(max(pause, 0.0))
                backoff *= 2
                continue
            if down_since is not None:
                log.warning(
                    "RPC node %s answers again after %.1f s; resuming from the chain's state",
                    self.endpoint_uri,
                    time.monotonic() - down_since,
                )
            return raw
