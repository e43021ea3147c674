"""The numbers that bound what one client may cost an HTTP server."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ServerLimits(BaseModel):
    """Limits every LedgerLearn HTTP server enforces (see ``SECURITY.md`` for the table).

    The defaults suit a node on the open internet serving a handful of honest peers: an
    honest dRAG client sends one request per query per source, an honest aggregator one
    fetch per trainer per round. Servers that expect bursts (a content gateway read by an
    auditor replaying a whole project) raise ``rate_per_s``/``burst``.
    """

    model_config = ConfigDict(frozen=True)

    max_body_bytes: int = Field(
        default=65_536, ge=0, description="largest request body; larger ones get 413 unread"
    )
    read_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="a request's head and body must arrive within this many seconds of its "
        "first byte (or of the connection opening); slower ones are cut (slowloris)",
    )
    keep_alive_s: int = Field(
        default=5, ge=1, description="an idle keep-alive connection is closed after this"
    )
    max_header_bytes: int = Field(
        default=16_384, ge=1024, description="largest request line + headers (431/400 beyond)"
    )
    rate_per_s: float = Field(
        default=20.0, gt=0, description="sustained requests per second per client address"
    )
    burst: int = Field(default=40, ge=1, description="requests a client may send at once")
    tarpit_s: float = Field(
        default=1.0,
        ge=0,
        description="a client over its rate or share waits this long for its 429, so a flood "
        "costs the server a sleeping task per connection instead of a busy loop",
    )
    max_in_flight_per_client: int = Field(
        default=4,
        ge=1,
        description="requests of one client address being answered at once; more get 429 "
        "(a rate alone lets a few costly requests at a time hold every worker)",
    )
    max_connections_per_client: int = Field(
        default=32, ge=1, description="concurrent connections per client address"
    )
    work_share: float = Field(
        default=1.0,
        gt=0,
        description="seconds of handler time one client address may use per second, "
        "measured after each request; a client in debt gets 429 until it is paid back",
    )
    work_burst_s: float = Field(
        default=10.0, gt=0, description="handler seconds a client may use at once"
    )
    max_json_depth: int = Field(
        default=32, ge=1, description="deepest nesting of arrays/objects in a JSON body"
    )
    tracked_clients: int = Field(
        default=10_000, ge=1, description="rate-limit buckets kept (least recent dropped)"
    )
