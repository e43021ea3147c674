"""A question that is not valid UTF-8 (what Python makes of such bytes on the command line:
lone surrogates) is a one-line MalformedInput, not a TypeError from the tokenizer."""

from __future__ import annotations

import pytest

from drag.client import ClientConfig, DragClient
from drag.generate import ExtractiveGenerator
from drag.receipts import ReceiptDomain, address_of
from drag.registry import SourceRecord, StaticDirectory
from marketplace.errors import LedgerLearnError, MalformedInput


def test_a_question_that_is_not_utf8_is_one_clear_error() -> None:
    source = SourceRecord(0, address_of("0x" + "01" * 32), "http://127.0.0.1:9")
    directory = StaticDirectory(ReceiptDomain(31337, "0x" + "cc" * 20), [source])
    client = DragClient(directory, ExtractiveGenerator(), ClientConfig(n_sources=1, k=1))
    question = b"\xff what?".decode("utf-8", "surrogateescape")
    with pytest.raises(MalformedInput, match="the question is not valid UTF-8") as info:
        client.query(question, 0)
    assert isinstance(info.value, LedgerLearnError) and "\n" not in str(info.value)
