"""The bounded reader against hostile peers over real sockets: slow drips (body and
headers), a 200 MB answer, redirects, wrong content types and compressed bodies, through
the gateway reader (aggregator, trainer, audit) and the dRAG client's fan-out."""

from __future__ import annotations

import asyncio
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from hostile import RawServer, drip_body, drip_headers, endless_body, respond

from drag.receipts import ReceiptDomain, address_of
from drag.registry import SourceRecord
from drag.retrieve import MAX_ANSWER_BYTES, fan_out
from marketplace.errors import BlobTooLarge, FetchRefused, StorageError
from marketplace.storage import GatewayReader, cid_for
from marketplace.storage.gateway import RAW_MEDIA_TYPE
from marketplace.untrusted.reader import ReadLimits, new_client, read

CID = cid_for(b"block")
DOMAIN = ReceiptDomain(31337, "0x" + "cc" * 20)
SOURCE_KEY = "0x" + "01" * 32


def _finishes_within(seconds: float, call: Callable[[], Any]) -> tuple[bool, Any]:
    """Run ``call`` in a daemon thread; (finished in time, its result or exception)."""
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(call())
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            box.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    return (not thread.is_alive()), (box[0] if box else None)


def _get(url: str, timeout: float = 1.0) -> Callable[[], bytes]:
    return lambda: GatewayReader(url, timeout=timeout).get(CID)


def test_a_body_dripping_one_byte_at_a_time_is_cut_at_the_deadline() -> None:
    with RawServer(drip_body(RAW_MEDIA_TYPE, every_s=0.05)) as server:
        start = time.monotonic()
        done, outcome = _finishes_within(5.0, _get(server.url, timeout=1.0))
    assert done, "the reader waited on the drip past its deadline"
    assert isinstance(outcome, FetchRefused) and outcome.kind == "timeout", outcome
    assert time.monotonic() - start < 2.5


def test_headers_dripping_one_byte_at_a_time_are_cut_at_the_deadline() -> None:
    with RawServer(drip_headers(every_s=0.05)) as server:
        start = time.monotonic()
        done, outcome = _finishes_within(5.0, _get(server.url, timeout=1.0))
    assert done, "the reader waited on dripping headers past its deadline"
    assert isinstance(outcome, StorageError) and "1 s" in str(outcome), outcome
    assert time.monotonic() - start < 2.5


def test_the_raw_reader_stops_a_drip_with_any_deadline() -> None:
    with RawServer(drip_body("application/json", every_s=0.02)) as server, new_client() as c:
        limits = ReadLimits(1 << 20, 0.5, ("application/json",))
        start = time.monotonic()
        with pytest.raises(FetchRefused, match="within 0.5 s") as info:
            read(c, "GET", server.url, limits)
    assert info.value.kind == "timeout" and time.monotonic() - start < 1.5


def test_a_redirect_is_refused_and_never_followed() -> None:
    with RawServer(respond("200 OK", b"secret", RAW_MEDIA_TYPE)) as internal:
        location = f"Location: {internal.url}/ipfs/{CID}\r\n"
        with RawServer(respond("302 Found", b"", "text/plain", location)) as server:
            with pytest.raises(FetchRefused, match="redirect") as info:
                GatewayReader(server.url, timeout=2.0).get(CID)
        assert internal.connections == 0, "the redirect target was fetched"
    assert info.value.kind == "redirect"


def test_a_wrong_content_type_is_refused_before_the_body() -> None:
    with RawServer(respond("200 OK", b"<html>", "text/html")) as server:
        with pytest.raises(FetchRefused, match="content type") as info:
            GatewayReader(server.url, timeout=2.0).get(CID)
    assert info.value.kind == "content type"


def test_a_compressed_answer_is_refused() -> None:
    gzip = "Content-Encoding: gzip\r\n"
    with RawServer(respond("200 OK", b"\x1f\x8b" + b"\0" * 30, RAW_MEDIA_TYPE, gzip)) as server:
        with pytest.raises(FetchRefused, match="encoding"):
            GatewayReader(server.url, timeout=2.0).get(CID)


def test_an_endless_gateway_answer_is_cut_at_the_block_size() -> None:
    with RawServer(endless_body(RAW_MEDIA_TYPE)) as server:
        with pytest.raises(BlobTooLarge):
            GatewayReader(server.url, timeout=5.0, max_block_size=1 << 20).get(CID)


def _source(url: str) -> SourceRecord:
    return SourceRecord(7, address_of(SOURCE_KEY), url)


def _fan_out(url: str, timeout_s: float = 5.0) -> Any:
    return asyncio.run(fan_out("question", 3, [_source(url)], DOMAIN, timeout_s=timeout_s))


def test_a_200_mb_source_answer_is_cut_at_the_cap_with_bounded_memory() -> None:
    with RawServer(endless_body("application/json")) as server:
        tracemalloc.start()
        try:
            result = _fan_out(server.url, timeout_s=20.0)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    [failure] = result.failures
    assert failure.kind == "refused" and f"more than {MAX_ANSWER_BYTES} bytes" in failure.detail
    assert peak < 2 * MAX_ANSWER_BYTES + (4 << 20), f"peak {peak / 2**20:.1f} MiB"


def test_a_dripping_source_is_skipped_at_its_deadline() -> None:
    with RawServer(drip_body("application/json", every_s=0.05)) as server:
        start = time.monotonic()
        result = _fan_out(server.url, timeout_s=1.0)
    assert [f.kind for f in result.failures] == ["timeout"]
    assert time.monotonic() - start < 2.0


def test_a_redirecting_source_is_refused() -> None:
    with RawServer(respond("200 OK", b"{}", "application/json")) as internal:
        location = f"Location: {internal.url}/retrieve\r\n"
        with RawServer(respond("307 Temporary Redirect", b"", "text/plain", location)) as server:
            result = _fan_out(server.url)
        assert internal.connections == 0
    [failure] = result.failures
    assert failure.kind == "refused" and "redirect" in failure.detail


def test_a_deeply_nested_source_answer_is_a_bad_response() -> None:
    with RawServer(respond("200 OK", b"[" * 200_000, "application/json")) as server:
        result = _fan_out(server.url)
    [failure] = result.failures
    assert failure.kind == "bad_response" and "deeper than" in failure.detail
