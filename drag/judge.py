"""Is an answer right? One normalization used by the benchmarks and by ``drag query --truth``.

Exact match after SQuAD-style normalization (Rajpurkar et al. 2016), widened for answers
written by people rather than copied from a span: case folded, accents removed ("Bogotá"
is "Bogota"), punctuation dropped ("St. John's" is "st johns"), thousands separators
removed ("1,000" is "1000", while "2.5" keeps its point), articles dropped ("the Seine" is
"Seine"), whitespace collapsed, and any accepted alias counts. A prediction is right when
its normalized form equals the normalized form of the answer or of one alias; nothing
fuzzier, so a source is never rewarded for a near miss.

Judging decides feedback: a too-strict judge scores a right answer wrong and blames the
sources that supplied it, which is why the benchmark and the CLI share this module.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

ARTICLES = frozenset({"a", "an", "the"})
_THOUSANDS_RE = re.compile(r"(?<=\d)[,\u00a0\u202f ](?=\d{3}\b)")
_DECIMAL_RE = re.compile(r"(?<=\d)\.(?=\d)")
_WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)
_DECIMAL_MARK = "\u2024"  # placeholder so "2.5" survives punctuation stripping


def strip_accents(text: str) -> str:
    """``text`` without combining marks (NFKD, then drop category Mn)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


def normalize(text: str) -> str:
    """The comparable form of an answer (see the module doc)."""
    text = strip_accents(text).casefold()
    text = _THOUSANDS_RE.sub("", text)
    text = _DECIMAL_RE.sub(_DECIMAL_MARK, text)
    text = text.replace("'", "").replace("\u2019", "")  # "John's" -> "johns", not "john s"
    words: list[str] = []
    for token in text.split():
        parts = [
            w.replace(_DECIMAL_MARK, ".") for w in re.findall(r"[^\W_]+(?:\u2024[^\W_]+)*", token)
        ]
        words.extend(parts)
    return " ".join(w for w in words if w not in ARTICLES)


def accepted(answers: Iterable[str], aliases: Iterable[str] = ()) -> set[str]:
    """The normalized forms a prediction may take to be right (empty forms dropped)."""
    return {n for n in (normalize(a) for a in [*answers, *aliases]) if n}


def is_correct(prediction: str, answers: Sequence[str], aliases: Sequence[str] = ()) -> bool:
    """True when ``prediction`` normalizes to an accepted answer or alias."""
    pred = normalize(prediction)
    return bool(pred) and pred in accepted(answers, aliases)
