"""Sentence splitting: no cut at abbreviations, initials, decimals or "U.S."."""

from __future__ import annotations

from drag.sentences import split_sentences


def test_abbreviations_do_not_end_sentences() -> None:
    text = (
        "St. John's is the capital of Antigua and Barbuda. It was visited by Dr. Smith of "
        "the U.S. Army in 1950. J. R. R. Tolkien wrote about it. Its area is 2.5 km2."
    )
    assert split_sentences(text) == [
        "St. John's is the capital of Antigua and Barbuda.",
        "It was visited by Dr. Smith of the U.S. Army in 1950.",
        "J. R. R. Tolkien wrote about it.",
        "Its area is 2.5 km2.",
    ]


def test_an_acronym_before_a_sentence_starter_ends_the_sentence() -> None:
    assert split_sentences("The capital is Washington, D.C. The city lies on the Potomac.") == [
        "The capital is Washington, D.C.",
        "The city lies on the Potomac.",
    ]
    assert split_sentences("Lima lies in Perú. Bogotá lies in Colombia.") == [
        "Lima lies in Perú.",
        "Bogotá lies in Colombia.",
    ]  # a final accented word is not an initial
    assert split_sentences("  ") == []
