"""The subject of a document: what "it", "its" and "the country" refer to.

Encyclopedic prose names its subject at the start of the first sentence ("Peru,
officially the Republic of Peru, is a country in western South America.") and then
refers to it by pronoun or by a definite description ("Its capital and largest city is
Lima.", "The country has ..."). Taking the words before the first verb or comma of the
first sentence recovers the subject without a coreference model; passages cut from the
middle of a document carry it in brackets (:mod:`drag.ingest`), which
:func:`passage_subject` reads back.
"""

from __future__ import annotations

import re

from drag.sentences import split_sentences

MAX_SUBJECT_WORDS = 8
_HEADING_RE = re.compile(r"^\s*#+\s*(.+?)\s*#*\s*$", re.MULTILINE)
_BRACKET_RE = re.compile(r"^\(([^()]{1,120})\)\s+")
_STOP_RE = re.compile(r",|;|\s\(|\s(?:is|was|are|were|has|had|refers|became|may|can|means|lies)\b")


def document_subject(text: str) -> str | None:
    """The subject named at the start of ``text`` (a Markdown title wins), or None."""
    stripped = text.lstrip()
    if stripped.startswith("#"):
        heading = _HEADING_RE.match(stripped.splitlines()[0])
        if heading:
            return heading.group(1)
    sentences = split_sentences(stripped[:2000])
    if not sentences:
        return None
    first = sentences[0]
    stop = _STOP_RE.search(first)
    if stop is None:
        return None
    subject = first[: stop.start()].strip()
    words = subject.split()
    if not words or len(words) > MAX_SUBJECT_WORDS or not words[0][:1].isupper():
        if not words or not words[0][:1].isdigit():
            return None
    return subject


def passage_subject(passage: str) -> str | None:
    """The subject of a passage: its bracketed prefix, else its own first sentence's."""
    match = _BRACKET_RE.match(passage)
    if match:
        return match.group(1)
    return document_subject(passage)


def is_continuation(passage: str) -> bool:
    """True for a passage cut from past the start of its document (it carries the
    bracketed subject :mod:`drag.ingest` prepends to those)."""
    return _BRACKET_RE.match(passage) is not None


def strip_subject_prefix(passage: str) -> str:
    """``passage`` without the bracketed subject that :mod:`drag.ingest` prepends."""
    return _BRACKET_RE.sub("", passage, count=1)
