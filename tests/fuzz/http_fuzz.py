"""Shared pieces of the HTTP fuzz suite: hostile strategies, the property, case counting.

Every target runs one hypothesis property with a fixed budget (``FAST``, 120 cases, in the
default run; ``LONG``, 5,000, in the ``slow`` run; ``LEDGERLEARN_FUZZ_EXAMPLES`` and
``LEDGERLEARN_FUZZ_LONG_EXAMPLES`` change them) and prints how many cases it ran. The
property is the same for every HTTP API: no input may give a 5xx or crash the app, and a
refusal of ours is one line.
"""

from __future__ import annotations

import json
import os
import socket
import string
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FAST = int(os.environ.get("LEDGERLEARN_FUZZ_EXAMPLES", "120"))
LONG = int(os.environ.get("LEDGERLEARN_FUZZ_LONG_EXAMPLES", "5000"))

try:  # the parser fuzz suite's per-target counter (tests/fuzzing.py), summed up per session
    from fuzzing import COUNTS  # type: ignore[import-not-found]
except ImportError:  # that suite is not on this tree: the counts are printed below anyway
    COUNTS: Counter[str] = Counter()

surrogates = st.integers(0xD800, 0xDFFF).map(chr)
hostile_text = st.lists(
    st.one_of(st.characters(), surrogates, st.sampled_from('\x00\n\r"\\{}[]%/\u202e')),
    max_size=40,
).map("".join)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=12,
)
content_types = st.sampled_from(
    [None, "application/json", "text/plain", "application/x-www-form-urlencoded",
     "multipart/form-data; boundary=x", "application/json; charset=latin-1", "*/*"]
)  # fmt: skip
path_text = st.text(
    alphabet=string.ascii_letters + string.digits + "-._~%/:@!$&'()*+,;=?#", max_size=60
)


# integers past Python's 4,300-digit int-string limit, written out (json.dumps cannot)
long_numbers = st.integers(4290, 5000).map(lambda n: b'{"k": ' + b"7" * n + b"}")


def dumps(value: Any, ascii_only: bool) -> bytes:
    """JSON bytes of ``value``; lone surrogates survive as ``\\udXXX`` escapes or raw bytes."""
    text = json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


@st.composite
def mutated(draw: st.DrawFn, body: st.SearchStrategy[bytes]) -> bytes:
    """A body, then maybe truncated, or with one byte replaced."""
    data = draw(body)
    how = draw(st.sampled_from(["keep", "keep", "truncate", "flip"]))
    if data and how == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))]
    if data and how == "flip":
        i = draw(st.integers(0, len(data) - 1))
        return data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1 :]
    return data


def check_response(response: httpx.Response) -> None:
    """The property: never a 5xx; our own refusals carry a one-line ``error``."""
    assert response.status_code < 500, (response.status_code, response.text[:300])
    kind = response.headers.get("content-type", "")
    if response.status_code >= 400 and "json" in kind and response.content:
        body = response.json()
        if isinstance(body, dict) and "error" in body:
            assert isinstance(body["error"], str) and "\n" not in body["error"]


def run_target(
    name: str,
    strategy: st.SearchStrategy[Any],
    check: Callable[[Any], None],
    max_examples: int,
    capsys: pytest.CaptureFixture[str],
    record_property: Callable[[str, object], None],
) -> int:
    """Run ``check`` on ``max_examples`` cases of ``strategy``; print and record the count."""
    count = 0

    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=max_examples <= FAST,  # the default run is reproducible in CI
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def prop(case: Any) -> None:
        nonlocal count
        count += 1
        check(case)

    prop()
    COUNTS[name] += count
    record_property(f"fuzz_cases[{name}]", count)
    with capsys.disabled():
        print(f"\nfuzz {name}: {count} cases, no 5xx")
    return count


def _no_crlf(data: bytes) -> bytes:
    return data.replace(b"\r", b"").replace(b"\n", b"")


@st.composite
def raw_requests(draw: st.DrawFn, targets: list[bytes]) -> bytes:
    """HTTP/1.1 request bytes with hostile request lines, headers and bodies.

    Line breaks are kept out of the parts so every request ends, and the length headers
    are ours, so the server never waits for bytes that will not come: the property is
    about what it answers, not about its read deadline (tested on its own).
    """
    method = draw(st.one_of(st.sampled_from([b"GET", b"POST", b"HEAD", b"OPTIONS"]),
                            st.binary(max_size=12).map(_no_crlf)))  # fmt: skip
    target = draw(st.one_of(st.sampled_from(targets), st.binary(max_size=80).map(_no_crlf)))
    version = draw(st.one_of(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b""]),
                             st.binary(max_size=9).map(_no_crlf)))  # fmt: skip
    headers = draw(
        st.lists(
            st.tuples(
                st.one_of(st.sampled_from([b"Host", b"Content-Type", b"Accept", b"Expect"]),
                          st.binary(max_size=20).map(_no_crlf)),
                st.one_of(st.sampled_from([b"application/json", b"100-continue", b"*/*"]),
                          st.binary(max_size=60).map(_no_crlf)),
            ).filter(lambda h: h[0].strip().lower() not in (b"content-length",
                                                            b"transfer-encoding")),
            max_size=6,
        )
    )  # fmt: skip
    body = draw(st.binary(max_size=300))
    lines = [method + b" " + target + b" " + version]
    lines += [name + b": " + value for name, value in headers]
    lines += [b"Content-Length: %d" % len(body), b"Connection: close", b"", b""]
    return b"\r\n".join(lines) + body


def send_raw(host: str, port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send ``request`` on a fresh connection and read until the server closes it."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused and closed early; read what it said
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
        return data


def check_raw_response(data: bytes) -> None:
    """Wire-level property: an HTTP/1.1 answer that is not a 5xx (or a plain close)."""
    if not data:
        return
    assert data.startswith(b"HTTP/1.1 "), data[:100]
    status = int(data[9:12])
    assert status < 500, data[:300]
