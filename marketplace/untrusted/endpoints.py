"""Which endpoint URLs a node may fetch: the check on every URL another party announces.

A trainer announces its gateway's URL on-chain and the aggregator and auditors GET it; a
source registers its URL and every dRAG client POSTs to it. Fetched as written, such a URL
makes the node request anything the announcing party likes (server-side request forgery):
the operator's router, a cloud metadata service, a database port on localhost.
:func:`check_endpoint` accepts only

* scheme ``http`` or ``https``, an explicit or default port in 1..65535;
* a host that is an IP literal or a DNS name of letters, digits, ``-`` and ``.``;
* no userinfo (``user:pass@``), query, fragment, percent-escapes, backslashes or dot
  segments; an optional path prefix of plain segments (a gateway behind a reverse proxy);
* and, unless private addresses are allowed, a host that is not loopback, private,
  link-local, multicast, reserved or unspecified (``localhost`` included), where a DNS name
  is resolved once and every address it gives must be public.

Private addresses are allowed on a local development chain (the embedded chain, anvil's
31337, 1337: everything runs on one machine there, see :data:`DEV_CHAIN_IDS`) or when the
operator passes ``--allow-private-endpoints``. The resolution check is a guard, not a
pin: a name that resolves differently later (DNS rebinding) is out of its reach; an
operator who fears it runs the node without access to private networks.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from marketplace.errors import EndpointRefused

#: Chain ids of local development chains: anvil/hardhat, ganache/geth --dev, and
#: eth-tester's default (the embedded chain; a dRAG client knows only the chain id).
DEV_CHAIN_IDS = frozenset({31337, 1337, 131277322940537})
#: Longest endpoint URL accepted (the contract stores it; 2 KiB is generous).
MAX_ENDPOINT_CHARS = 2048

_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?",
    re.ASCII,
)
_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+", re.ASCII)


def private_allowed(chain_id: int | None, embedded: bool = False, flag: bool = False) -> bool:
    """Whether private and loopback endpoints are fetched: dev chains or the operator's flag."""
    return flag or embedded or chain_id in DEV_CHAIN_IDS


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (address.is_multicast or address.is_reserved)


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []  # unresolvable now: the fetch itself will fail
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def check_endpoint(url: str, allow_private: bool, what: str = "endpoint") -> str:
    """``url`` (scheme in lower case, no trailing ``/``) if a node may fetch it, else
    :class:`EndpointRefused`.

    ``what`` names the URL in the error (``"trainer 0x12..'s gateway"``).
    """

    def refuse(reason: str) -> EndpointRefused:
        shown = url if len(url) <= 80 else url[:77] + "..."
        return EndpointRefused(f"{what} {shown!r} refused: {reason}")

    if not isinstance(url, str) or not url or len(url) > MAX_ENDPOINT_CHARS:
        raise refuse(f"must be a URL of 1..{MAX_ENDPOINT_CHARS} characters")
    if not url.isascii() or any(c in url for c in "\\%@?#;\x7f") or not url.isprintable():
        raise refuse(
            "only plain ASCII http(s)://host:port[/path] without userinfo, "
            "query, fragment or escapes is fetched"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise refuse(f"not a URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise refuse("the scheme must be http or https")
    host = parts.hostname or ""
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    if not 1 <= port <= 65535:
        raise refuse("the port must be 1..65535")
    path = parts.path.rstrip("/")
    segments = path.split("/")[1:] if path else []
    if any(s in (".", "..") or not _SEGMENT.fullmatch(s) for s in segments):
        raise refuse("the path may only hold plain segments (no '..', no empty segments)")
    try:
        literal: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
        if not _HOSTNAME.fullmatch(host) or host.replace(".", "").isdigit():
            raise refuse("the host is not a DNS name or an IP address") from None
    if not allow_private:
        name = host.lower().rstrip(".")
        if name == "localhost" or name.endswith(".localhost"):
            raise refuse(_PRIVATE_HINT)
        addresses = [literal] if literal is not None else _resolve(host, port)
        if any(not _is_public(a) for a in addresses):
            raise refuse(_PRIVATE_HINT)
    return f"{parts.scheme}://{parts.netloc}{path}"


_PRIVATE_HINT = (
    "it is a loopback, private or reserved address; such endpoints are fetched only on a "
    "local development chain or with --allow-private-endpoints"
)
