"""Answer judging: one normalization for the benchmark and `drag query --truth`."""

from __future__ import annotations

from drag.generate import answer_matches
from drag.judge import is_correct, normalize


def test_case_accents_punctuation_and_articles_are_folded() -> None:
    # each of these was scored wrong by exact matching
    assert is_correct("bogota", ["Bogotá"])
    assert is_correct("The Seine.", ["Seine"])
    assert is_correct("St Johns", ["St. John's"])
    assert is_correct("SÃO TOMÉ", ["São Tomé"])
    assert is_correct("1000", ["1,000"]) and is_correct("20 000", ["20000"])
    assert normalize("2.5 million") == "2.5 million"  # a decimal point is not punctuation


def test_aliases_count_and_near_misses_do_not() -> None:
    assert is_correct("City of Brussels", ["Brussels"], aliases=["City of Brussels"])
    assert not is_correct("City of Brussels", ["Brussels"])
    assert not is_correct("Lima Peru", ["Lima"])
    assert not is_correct("", ["x"]) and not is_correct("the", ["a"])
    assert not is_correct("25", ["2.5"])
    assert answer_matches("the Quelton.", ["quelton"])  # the generator module's alias
