"""The one parser for bytes another party sent: bounded JSON and strict ASCII integers.

Every JSON document a node reads from a trainer, an aggregator, a gateway or a dRAG source
goes through :func:`loads`, and every integer that arrives as text through
:func:`parse_int`. Why a wrapper around :func:`json.loads` is needed:

* **Depth.** CPython's JSON decoder recurses once per nesting level. py_ecc (imported by
  eth-keys, so by every node) raises the interpreter's recursion limit to 100,000 on import,
  so 200,000 nested ``[`` overflow the C stack: SIGSEGV, not an exception. :func:`loads`
  measures the nesting depth before decoding (:func:`json_depth`, no recursion) and
  refuses anything deeper than ``max_depth``. :mod:`marketplace` also restores the
  recursion limit py_ecc raises.
* **Size.** The caller states how many bytes the document may have; bigger is refused
  before any parsing.
* **Strictness.** The bytes must be UTF-8 (``json.loads`` would also guess UTF-16/32), and
  ``NaN``/``Infinity``, numbers of more than :data:`MAX_NUMBER_CHARS` characters (Python
  refuses to convert 4,300+ digit integers with a bare ``ValueError``), duplicate keys
  (when asked) and lone UTF-16 surrogates (they make every later ``.encode()`` fail) are
  refused.
* **Integers.** ``str.isdigit`` and ``int`` accept ``"²"``, ``"٣"``, ``" 7 "`` and
  ``"1_000"``; :func:`parse_int` accepts ``0`` or ASCII digits without a leading zero,
  within a stated range, and nothing else.

Every refusal is a :class:`~marketplace.errors.MalformedInput` naming what was wrong; it is
also a ``ValueError``. Limits are documented in ``docs/untrusted-input.md``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from marketplace.errors import MalformedInput

#: Deepest nesting any LedgerLearn document has is 4 (a report's per-trainer lists); 64
#: leaves room for growth and is far below any recursion limit.
MAX_JSON_DEPTH = 64
#: Longest JSON number token accepted (a uint256 has 78 digits; floats need ~25).
MAX_NUMBER_CHARS = 100
#: Longest integer text :func:`parse_int` reads (a uint256 has 78 digits).
MAX_INT_CHARS = 80

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_ASCII_INT = re.compile(r"0|[1-9][0-9]*", re.ASCII)
_TO_PARENS = bytes.maketrans(b"[{]}", b"(())")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(data: bytes, limit: int) -> int:
    """Nesting depth of ``data``'s ``[``/``{`` (brackets inside strings not counted), or
    some number above ``limit`` as soon as it is known to exceed it.

    Linear passes in C, no recursion: strings are removed with one regular expression,
    the remaining brackets become ``(`` and ``)``, and each pass of ``replace(b"()", b"")``
    removes every innermost pair, so the number of passes is the depth. Unbalanced input
    is over-counted (every unmatched opener adds one), which errs on the side of refusing.
    """
    brackets = _STRING.sub(b"", data).translate(_TO_PARENS, _NOT_BRACKETS)
    depth = 0
    while brackets and depth <= limit:
        reduced = brackets.replace(b"()", b"")
        if len(reduced) == len(brackets):  # unbalanced leftovers
            return depth + brackets.count(b"(")
        brackets, depth = reduced, depth + 1
    return depth


def _refuse_constant(name: str) -> Any:
    raise MalformedInput(f"{name} is not a JSON number; send finite numbers only")


def _bounded_number(text: str, convert: Callable[[str], Any]) -> Any:
    if len(text) > MAX_NUMBER_CHARS:
        raise MalformedInput(
            f"a number of {len(text)} characters exceeds the {MAX_NUMBER_CHARS}-character limit"
        )
    return convert(text)


def _check_strings(value: Any) -> None:
    """Refuse lone surrogates anywhere in a decoded document (keys included)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise MalformedInput(
                    "a string holds an unpaired UTF-16 surrogate; send valid Unicode text"
                ) from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        keys = [k for k, _ in pairs]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        raise MalformedInput(f"an object repeats the key(s) {repeated[:3]}")
    return result


def loads(
    data: bytes | bytearray | memoryview | str,
    *,
    max_bytes: int,
    max_depth: int = MAX_JSON_DEPTH,
    what: str = "document",
    unique_keys: bool = False,
) -> Any:
    """Decode untrusted JSON within ``max_bytes`` and ``max_depth``; strict, UTF-8 only.

    ``what`` names the document in the error (``"safetensors header"``, ``"receipt"``).
    ``unique_keys`` refuses objects that repeat a key (where a lenient reader would keep
    the last one and two parties could read two different documents).
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise MalformedInput(f"{what} is {len(raw)} bytes, over the limit of {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedInput(f"{what} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    depth = json_depth(raw, max_depth)
    if depth > max_depth:
        raise MalformedInput(f"{what} nests deeper than the limit of {max_depth} levels")
    try:
        value = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_int=lambda s: _bounded_number(s, int),
            parse_float=lambda s: _bounded_number(s, float),
            object_pairs_hook=_unique_keys if unique_keys else None,
        )
    except MalformedInput as exc:
        raise MalformedInput(f"{what}: {exc}") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise MalformedInput(f"{what} is not valid JSON ({exc})") from None
    if _SURROGATE_ESCAPE.search(raw):
        _check_strings(value)
    return value


def parse_int(value: object, what: str, lo: int = 0, hi: int | None = None) -> int:
    """A non-negative integer written in ASCII digits (``"0"`` or no leading zero), or an
    ``int`` (not ``bool``) from decoded JSON, within ``lo..hi``.

    Refuses Unicode digits (``"²"``), signs, spaces, underscores, leading zeros, floats
    and anything over :data:`MAX_INT_CHARS` digits, with a :class:`MalformedInput` naming
    ``what``.
    """
    if isinstance(value, bool):
        raise MalformedInput(f"{what} must be an integer, not a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        if len(value) > MAX_INT_CHARS or not _ASCII_INT.fullmatch(value):
            shown = value if len(value) <= 24 else value[:21] + "..."
            raise MalformedInput(f"{what} {shown!r} is not an integer in ASCII digits")
        number = int(value)
    else:
        raise MalformedInput(f"{what} must be an integer, not {type(value).__name__}")
    if number < lo or (hi is not None and number > hi):
        upper = "" if hi is None else f"..{hi}"
        raise MalformedInput(f"{what} {number} is outside {lo}{upper}")
    return number


def utf8_text(value: str, what: str) -> str:
    """``value`` if it is valid Unicode text, else :class:`MalformedInput`.

    Python turns bytes that are not UTF-8 on the command line into lone surrogates
    (``\\udcff``); they pass every ``str`` check and then break the first ``.encode()``,
    deep inside a tokenizer or an HTTP client, with a traceback.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedInput(
            f"{what} is not valid UTF-8 text (bad byte at character {exc.start}); pass it as UTF-8"
        ) from None
    return value
