"""Fuzz the bounded JSON parser and the strict integer parser: valid documents decode as
``json.loads`` decodes them, anything else is a MalformedInput, never another error."""

from __future__ import annotations

import json
from typing import Any

from fuzzing import fuzz_pair, json_values, mutated
from hypothesis import strategies as st

from marketplace.errors import MalformedInput
from marketplace.untrusted.parse import MAX_INT_CHARS, json_depth, loads, parse_int


def _agrees_with_json(value: Any) -> None:
    doc = json.dumps(value).encode()
    assert loads(doc, max_bytes=len(doc)) == json.loads(doc)


def _refuses_cleanly(data: bytes) -> None:
    try:
        value = loads(data, max_bytes=4096, max_depth=16)
    except MalformedInput:
        return
    json.dumps(value).encode("utf-8")  # what it accepts is valid, encodable JSON
    assert json_depth(data, 16) <= 16


def _nesting(args: tuple[int, bool]) -> None:
    depth, objects = args
    opener, closer = ('{"a":', "}") if objects else ("[", "]")
    doc = (opener * depth + "1" + closer * depth).encode()
    try:
        loads(doc, max_bytes=10**6, max_depth=64)
    except MalformedInput:
        assert depth > 64
    else:
        assert depth <= 64


def _integer(text: str) -> None:
    try:
        number = parse_int(text, "n", 0, 10**40)
    except MalformedInput:
        return
    assert text.isascii() and text.isdigit() and len(text) <= MAX_INT_CHARS
    assert str(number) == text


documents = json_values()
noise = st.binary(max_size=200) | json_values().map(lambda v: json.dumps(v).encode()).flatmap(
    mutated
)
nesting = st.tuples(st.integers(0, 300), st.booleans())
texts = (
    st.text(max_size=30)
    | st.integers(0, 10**40).map(str)
    | st.sampled_from(["²", "٣", "007", " 5", "1_0", "+1", "𝟗", "0"])
)

test_fuzz_json_roundtrip, test_fuzz_json_roundtrip_long = fuzz_pair(
    "json: valid documents", documents, _agrees_with_json
)
test_fuzz_json_noise, test_fuzz_json_noise_long = fuzz_pair("json: noise", noise, _refuses_cleanly)
test_fuzz_json_nesting, test_fuzz_json_nesting_long = fuzz_pair("json: nesting", nesting, _nesting)
test_fuzz_ints, test_fuzz_ints_long = fuzz_pair("ascii integers", texts, _integer)
