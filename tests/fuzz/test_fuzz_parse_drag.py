"""Fuzz what the dRAG client parses from a source (the ``/retrieve`` answer and its
receipt) and the endpoint check every announced URL goes through."""

from __future__ import annotations

import json
from typing import Any

from fuzzing import fuzz_pair, json_values, mutated
from hypothesis import strategies as st

from drag.receipts import Receipt, ReceiptDomain, address_of
from drag.registry import SourceRecord
from drag.retrieve import MAX_ANSWER_BYTES, parse_response
from marketplace.errors import DragError, EndpointRefused
from marketplace.untrusted.endpoints import check_endpoint
from marketplace.untrusted.parse import loads

DOMAIN = ReceiptDomain(31337, "0x" + "cc" * 20)
SOURCE = SourceRecord(3, address_of("0x" + "01" * 32), "http://127.0.0.1:1")
QID = bytes(32)
GOOD = json.dumps(
    {
        "passages": [{"text": "a passage", "score": 0.5, "doc_id": "d", "chunk_id": "c"}],
        "receipt": {
            "source_id": 3,
            "nonce": 1,
            "query_id": "0x" + "00" * 32,
            "passages_hash": "0x" + "11" * 32,
            "signature": "0x" + "22" * 65,
        },
    }
).encode()


def _answer(data: bytes) -> None:
    """Bytes off the wire: the bounded parser, then the answer's validation."""
    try:
        payload = loads(data, max_bytes=MAX_ANSWER_BYTES, what="the answer")
        passages, receipt = parse_response(payload, SOURCE, DOMAIN, QID, 5)
    except (ValueError, DragError):  # MalformedInput is a ValueError
        return
    assert len(passages) <= 5 and all(isinstance(p.score, float) for p in passages)
    assert receipt.source_id >= 0 and 1 <= receipt.nonce < 2**64


@st.composite
def answers(draw: st.DrawFn) -> bytes:
    def field(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return values | json_values(3)

    passage = st.fixed_dictionaries(
        {},
        optional={
            "text": field(st.text(max_size=20)),
            "score": field(st.floats() | st.sampled_from(["1", "nan", "١"])),
            "passage_hash": field(st.text(max_size=66)),
            "doc_id": json_values(2),
        },
    )
    receipt = st.fixed_dictionaries(
        {},
        optional={
            "source_id": field(st.integers(-1, 2**257) | st.sampled_from(["3", "²", "٣"])),
            "nonce": field(st.integers(-1, 2**65) | st.sampled_from(["1", "²"])),
            "query_id": field(st.text(max_size=70)),
            "passages_hash": field(st.text(max_size=70)),
            "signature": field(st.text(max_size=140)),
        },
    )
    doc = {
        "passages": draw(st.lists(passage, max_size=7) | json_values(2)),
        "receipt": draw(receipt),
    }
    return json.dumps(doc).encode()


def _receipt(data: Any) -> None:
    try:
        Receipt.from_json(data)
    except DragError:
        pass


def _endpoint(url: str) -> None:
    try:
        checked = check_endpoint(url, allow_private=True)
    except EndpointRefused:
        return
    assert checked.startswith(("http://", "https://")) and "@" not in checked
    assert ".." not in checked.split("/", 3)[-1] and "%" not in checked


def _ip_endpoint(args: tuple[str, int]) -> None:
    host, port = args
    url = f"http://{host}:{port}"
    try:
        check_endpoint(url, allow_private=False)  # IP literals: no DNS lookup
    except EndpointRefused:
        return
    assert port >= 1


urls = st.builds(
    lambda scheme, user, host, port, path: f"{scheme}{user}{host}{port}{path}",
    st.sampled_from(["http://", "https://", "ftp://", "HTTP://", "", "http:/"]),
    st.sampled_from(["", "u:p@", "@"]),
    st.sampled_from(["example.org", "1.2.3.4", "[::1]", "localhost", "ex ample", "é.org", ""]),
    st.sampled_from(["", ":80", ":0", ":65536", ":x"]),
    st.sampled_from(["", "/", "/a/b", "/../x", "/%2e", "?q", "#f", "//", "\\x"]),
) | st.text(max_size=40)
ips = st.tuples(
    st.ip_addresses().map(lambda a: f"[{a}]" if a.version == 6 else str(a)),
    st.integers(0, 70000),
)

test_fuzz_answer_bytes, test_fuzz_answer_bytes_long = fuzz_pair(
    "drag answer: mutated bytes", mutated(GOOD), _answer
)
test_fuzz_answer_fields, test_fuzz_answer_fields_long = fuzz_pair(
    "drag answer: drawn fields", answers(), _answer
)
test_fuzz_receipt, test_fuzz_receipt_long = fuzz_pair("drag receipt", json_values(6), _receipt)
test_fuzz_endpoint, test_fuzz_endpoint_long = fuzz_pair("endpoint url", urls, _endpoint)
test_fuzz_ip_endpoint, test_fuzz_ip_endpoint_long = fuzz_pair(
    "endpoint ip literal", ips, _ip_endpoint
)
