"""The bounded parser: deep, big, non-UTF-8, non-strict JSON and non-ASCII integers are
refused with MalformedInput, and py_ecc's recursion limit stays out of node processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from marketplace.errors import MalformedInput
from marketplace.untrusted.parse import MAX_JSON_DEPTH, json_depth, loads, parse_int, utf8_text


@pytest.mark.parametrize(
    ("doc", "depth"),
    [
        (b"1", 0),
        (b"[]", 1),
        (b'[[1,[2]],{"a":[3]}]', 3),
        (b'"[[[["', 0),
        (b'["]\\"]"]', 1),
        (b'{"a":"\\\\"}', 1),
    ],
)
def test_json_depth_ignores_brackets_in_strings(doc: bytes, depth: int) -> None:
    assert json_depth(doc, 64) == depth


def test_200000_nested_brackets_are_refused_without_recursing() -> None:
    for doc in (b"[" * 200_000, b"[" * 200_000 + b"]" * 200_000, b'{"a":' * 100_000):
        with pytest.raises(MalformedInput, match="deeper than the limit of 64"):
            loads(doc, max_bytes=10**7)


def test_depth_at_the_limit_is_accepted() -> None:
    doc = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert loads(doc, max_bytes=1000) == json.loads(doc)
    with pytest.raises(MalformedInput):
        loads(b"[" + doc + b"]", max_bytes=1000)


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (b"[1]" + b" " * 100, "over the limit of 50"),
        (b'"\xff"', "not UTF-8"),
        ('"x"'.encode("utf-16"), "not UTF-8"),
        (b"[NaN]", "not a JSON number"),
        (b"[Infinity]", "not a JSON number"),
        (b"[" + b"9" * 5000 + b"]", "exceeds the 100-character limit"),
        (b'["\\ud800"]', "unpaired UTF-16 surrogate"),
        (b'{"\\udfff":1}', "unpaired UTF-16 surrogate"),
        (b"[1,]", "not valid JSON"),
        (b"", "not valid JSON"),
    ],
)
def test_malformed_documents_are_refused(doc: bytes, reason: str) -> None:
    limit = 50 if reason.startswith("over") else 10**6
    with pytest.raises(MalformedInput, match=reason):
        loads(doc, max_bytes=limit)


def test_paired_surrogates_and_duplicate_keys() -> None:
    assert loads(b'["\\ud83d\\ude00"]', max_bytes=100) == ["\U0001f600"]
    assert loads(b'{"a":1,"a":2}', max_bytes=100) == {"a": 2}
    with pytest.raises(MalformedInput, match="repeats the key"):
        loads(b'{"a":1,"a":2}', max_bytes=100, unique_keys=True)


@pytest.mark.parametrize(
    "text", ["²", "٣", "１", " 7", "7 ", "+5", "-5", "1_000", "007", "", "1e3"]
)
def test_only_ascii_digits_are_integers(text: str) -> None:
    assert not text.isascii() or not text.isdigit() or text.startswith("0")
    with pytest.raises(MalformedInput):
        parse_int(text, "num_samples")


def test_parse_int_bounds_and_types() -> None:
    assert parse_int("0", "x") == 0 and parse_int("123", "x") == 123 and parse_int(5, "x") == 5
    with pytest.raises(MalformedInput, match="outside 1..10"):
        parse_int("11", "x", 1, 10)
    with pytest.raises(MalformedInput, match="boolean"):
        parse_int(True, "x")
    with pytest.raises(MalformedInput, match="not an integer"):
        parse_int("9" * 81, "x")
    with pytest.raises(MalformedInput, match="not float"):
        parse_int(1.0, "x")


def test_text_that_is_not_utf8_is_refused() -> None:
    assert utf8_text("héllo", "q") == "héllo"
    with pytest.raises(MalformedInput, match="not valid UTF-8"):
        utf8_text(b"\xff?".decode("utf-8", "surrogateescape"), "the question")


def test_node_processes_keep_a_sane_recursion_limit() -> None:
    """py_ecc (imported by eth-keys) raises the limit to 100,000 on import, and with it a
    deep recursion overflows the C stack (SIGSEGV) instead of raising RecursionError."""
    code = textwrap.dedent(
        """
        import sys
        import marketplace.nodes.aggregator, marketplace.nodes.trainer, drag.client
        import marketplace.cli.audit_cmds
        assert "py_ecc" in sys.modules
        print(sys.getrecursionlimit())
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) < 100_000


def test_the_py_ecc_verifier_still_has_the_recursion_it_needs() -> None:
    from py_ecc import optimized_bn128 as bn

    from zk.verify_pyecc import _py_ecc_recursion

    before = sys.getrecursionlimit()
    with _py_ecc_recursion():
        one = bn.final_exponentiate(bn.pairing(bn.G2, bn.G1))
    assert one != bn.FQ12.one() and sys.getrecursionlimit() == before
