"""Sentence splitting that does not break at abbreviations, initials or decimals.

Chunking (:mod:`drag.ingest`) and the extractive generator (:mod:`drag.generate`) both cut
text into sentences; a cut after "St." or "U.S." separates an answer from the words that
locate it ("St. John's is the capital" would become "St." and "John's is the capital").
A boundary is sentence-final punctuation (optionally followed by a closing quote or
bracket), then whitespace, then something that can start a sentence (a capital letter, a
digit, a quote or an opening bracket); it is not a boundary when the word before the
period is a known abbreviation, a single letter (an initial: "J. R. R. Tolkien"), or a
dotted acronym ("U.S.", "e.g."). The rule is the one of Punkt-style splitters without a
trained model (Kiss & Strunk 2006): good on encyclopedic prose, wrong when an
abbreviation truly ends a sentence, which costs one merged sentence, never a lost word.
"""

from __future__ import annotations

import re

ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof sr jr st mt ft gen col lt sgt capt gov sen rep pres rev fr
    vs etc approx ca c no nos vol fig inc ltd co corp bros dept est univ jan feb mar apr
    jun jul aug sep sept oct nov dec al op ed eds p pp ch sec art""".split()
)
SENTENCE_STARTERS = frozenset(
    "The It Its This These That Those He She His Her They Their In On At As A An".split()
)
_BOUNDARY_RE = re.compile(
    r"([.!?]+[\"')\]\u201d\u2019]*)(\s+)(?=[\"'(\[\u201c\u2018]?[A-Z0-9\u00c0-\u024f])"
)
_ACRONYM_RE = re.compile(r"(?:\b[A-Za-z]\.){2,}$")


def _is_abbreviation(before: str) -> bool:
    """True when the text ending just before a period ends in an abbreviation."""
    if _ACRONYM_RE.search(before + "."):
        return True
    match = re.search(r"([^\W\d_]+)$", before)
    if match is None:
        return False
    word = match.group(1)
    return len(word) == 1 or word.lower() in ABBREVIATIONS


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``, stripped, in order (empty text gives none)."""
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY_RE.finditer(text):
        punct = match.group(1)
        if punct.startswith(".") and len(punct.rstrip("\"')]\u201d\u2019")) == 1:
            following = text[match.end() :].split(" ", 1)[0]
            before = text[start : match.start()]
            # "Washington, D.C. The city ..." ends a sentence; "U.S. Army" does not
            acronym_end = following in SENTENCE_STARTERS and _ACRONYM_RE.search(before + ".")
            if _is_abbreviation(before) and not acronym_end:
                continue
        end = match.end(1)
        piece = text[start:end].strip()
        if piece:
            sentences.append(piece)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences
