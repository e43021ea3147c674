"""Read one context and find the answer it gives: the extractive generator's pure core.

Three steps, all regular expressions and word counts (about a millisecond per query):

1. The question (:func:`analyse_question`): its content words, the names it mentions,
   and the type of answer it asks for, from the question word ("how many" -> number,
   "when"/"what year" -> year, "who" -> person, "where"/"which city" -> place, "what
   symbol/code" -> code, otherwise a name or short phrase). The usual answer-type step of
   factoid QA pipelines (Moldovan et al. 2000, Harabagiu et al. 2000).
2. The context (:func:`resolve_references`): "It", "Its", "it" after a semicolon, and
   "The country"/"The city"/... (when the first sentence says the subject is one) are
   replaced by the document's subject (:mod:`drag.subject`), so "Its capital and largest
   city is Lima." becomes "Peru's capital and largest city is Lima.".
3. The span (:func:`read_context`): every sentence is scored by the share of the
   question's content words it contains (its *coverage*); in the best sentences, the
   spans of the asked type are scored by their distance to the question's words found
   there, spans made only of question words ("Peru" for "the capital of Peru") lose to
   any other (so "the city of Singapore" still answers when nothing else does), and the
   best span is the context's nominee.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from drag.sentences import ABBREVIATIONS, split_sentences
from drag.subject import is_continuation, passage_subject, strip_subject_prefix

AnswerType = Literal["number", "year", "person", "place", "code", "entity"]

STOPWORDS = frozenset(
    """a an the of in on at to for from by with and or is are was were be been being what
    which who whom whose when where why how does do did it its this that these those as
    into than then there their his her he she they them name named called has have had
    not no yes can could would should will shall may might must about also known one""".split()
)
_WH_WORDS = frozenset("what which who whom whose when where why how".split())
_CONNECTORS = frozenset(
    "of de del della di da dos das du la le los las von van der den y and upon on-the".split()
)
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_DATE_RE = re.compile(
    rf"\b(?:\d{{1,2}}\s+(?:{_MONTHS})\s+\d{{3,4}}|(?:{_MONTHS})\s+\d{{1,2}},?\s+\d{{3,4}}"
    rf"|(?:{_MONTHS})\s+\d{{3,4}}|\d{{3,4}}\s*(?:BC|BCE|AD|CE)\b|\d{{4}})\b"
)
_NUMBER_RE = re.compile(
    r"(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?:\s(?:million|billion|trillion|thousand))?"
    r"|(?<![\w.])\d+(?:\.\d+)?(?:\s(?:million|billion|trillion|thousand))?"
)
_TOKEN_RE = re.compile(r"[^\W_](?:[\w'\u2019.\-]*[^\W_])?\.?|[,;:]", re.UNICODE)
_MONTH_WORDS = frozenset(_MONTHS.split("|"))
_STRANDED_RE = re.compile(r"\b(?:of|in|from|for|to|on|at|with|by)\s*\?*\s*$")
_POSSESSIVE_RE = re.compile(r"['\u2019]s?$")
_FUNCTION_CAPS = frozenset(
    """The A An In On At It Its This That These Those He She His Her They Their There
    Although However After Before During Since While When Where Which Who What Its As
    From For With By Of To And But Or If Also Today Other Some Many Most Both Each
    Located Situated Known Home Founded Born Until Under Following Despite Together
    According Because Between Within Over Among Formerly Historically""".split()
)

_NUMBER_Q = re.compile(
    r"\bhow (?:many|much|tall|long|high|far|old|large|big|deep|wide|heavy)\b"
    r"|\bwhat (?:is|was|are|were) (?:the |its )?(?:[a-z]+ )?(?:number|population|area|height|"
    r"length|mass|weight|density|temperature|percentage|count|size|depth|elevation)\b"
    r"|\bwhat number\b"
)
_YEAR_Q = re.compile(
    r"\b(?:what|which|in what|in which) (?:year|decade|century|date)\b"
    r"|^when\b|\bwhen (?:was|did|were|is)\b"
)
_PLACE_Q = re.compile(
    r"^where\b|\bwhere (?:is|was|are|were|does|did)\b|\b(?:which|what|in which|in what)\s+"
    r"(?:city|country|continent|state|region|island|town|ocean|sea|river|mountain|capital|"
    r"province|nation|place|county|territory)\b"
)
_CODE_Q = re.compile(r"\b(?:symbol|code|abbreviation|acronym|ticker|initials)\b")
_PERSON_Q = re.compile(r"^(?:who|whom)\b|\bwho (?:was|is|were|discovered|invented|founded)\b")


#: Sentences at the start of a document that get a bonus for stating defining facts.
LEAD_SENTENCES = 5


@dataclass(frozen=True)
class QuestionInfo:
    """What :func:`read_context` needs to know about a question."""

    question: str
    content: frozenset[str]
    names: frozenset[str]
    answer_type: AnswerType
    answer_after: bool = False  # "... the capital of?": the answer follows the anchor
    phrases: frozenset[str] = frozenset()  # the names the question mentions, whole


@dataclass(frozen=True)
class Nominee:
    """One context's answer: the span, its sentence, and how well they fit the question.

    ``coverage`` is the share of the question's content words in the sentence (after
    reference resolution), ``score`` adds the span's fit; ``typed`` is False when no span
    of the asked type was found and the text is a fallback.
    """

    text: str
    sentence: str
    coverage: float
    score: float
    typed: bool


@dataclass(frozen=True)
class _Span:
    text: str
    start: int  # token index
    end: int  # token index, exclusive
    part: bool = False  # one side of "A and B"


def stem(word: str) -> str:
    """A crude comparable form: lower case, no possessive, no plural ``s``."""
    w = _POSSESSIVE_RE.sub("", word.lower()).rstrip(".")
    if len(w) > 4 and w.endswith("s") and not w.endswith("ss"):
        w = w[:-1]
    return w


def tokens(text: str, punct: bool = False) -> list[str]:
    """Word tokens of ``text`` (with ``punct``, commas, semicolons and colons too, which
    end a name: "Toronto, Montreal"); a final period is kept only on abbreviations."""
    out = []
    for tok in _TOKEN_RE.findall(text):
        if tok in ",;:":
            if punct:
                out.append(tok)
            continue
        if tok.endswith(".") and not (
            tok[:-1].lower() in ABBREVIATIONS or len(tok) == 2 or "." in tok[:-1]
        ):
            tok = tok[:-1]
        out.append(tok)
    return out


def question_type(question: str) -> AnswerType:
    """The kind of answer ``question`` asks for (see the module doc)."""
    q = question.strip().lower()
    if _YEAR_Q.search(q):
        return "year"
    if _NUMBER_Q.search(q):
        return "number"
    if _CODE_Q.search(q) and not re.search(
        r"^(?:which|what)(?:\s+[\w-]+){1,3}\s+(?:has|have|had|uses|is|was)\b", q
    ):
        return "code"
    if _PERSON_Q.search(q):
        return "person"
    if _PLACE_Q.search(q):
        return "place"
    return "entity"


_TYPE_NOUN_RE = re.compile(
    r"^(?:in |on |of |from |to |at )?(?:which|what)\s+"
    r"(?!(?:is|was|are|were|does|did|do|has|have|had)\b)"
    r"((?:[a-z-]+\s+){0,2}?[a-z-]+)\s+"
    r"(?:is|was|are|were|has|have|had|does|did|do|of|in|on)\b"
)


def type_nouns(question: str) -> frozenset[str]:
    """The words naming the kind of answer ("country" in "Which country is Lima the
    capital of?"): they describe the answer, the context need not contain them."""
    match = _TYPE_NOUN_RE.search(question.strip().lower())
    if match is None:
        return frozenset()
    return frozenset(stem(w) for w in match.group(1).split()) - STOPWORDS


def analyse_question(question: str) -> QuestionInfo:
    """Content words, mentioned names and answer type of ``question``."""
    toks = tokens(question)
    names = frozenset(
        stem(t)
        for i, t in enumerate(toks)
        if t[:1].isupper() and (i > 0 or t not in _FUNCTION_CAPS)
    ) - {stem(w) for w in _WH_WORDS}
    content = frozenset(stem(t) for t in toks if t.lower() not in STOPWORDS) | names
    content = (content - type_nouns(question)) or content
    after = bool(_STRANDED_RE.search(question.strip().lower()))
    phrases = frozenset(
        " ".join(stem(w) for w in s.text.split()) for s in _proper_spans(toks) if s.start > 0
    )
    return QuestionInfo(question, content, names, question_type(question), after, phrases)


def resolve_references(context: str) -> list[str]:
    """The sentences of ``context`` with references to its subject replaced by the subject."""
    subject = passage_subject(context)
    sentences = split_sentences(strip_subject_prefix(context))
    if not subject or not sentences:
        return sentences
    first = sentences[0].lower()
    kinds: set[str] = set()
    for phrase in re.findall(r"\b(?:is|was) (?:a|an|the)\s+((?:[a-z-]+\s*){1,4})", first):
        kinds |= set(phrase.split()) - STOPWORDS
    out = []
    for i, sentence in enumerate(sentences):
        s = sentence
        if i > 0 or not s.startswith(subject):
            s = re.sub(r"^(?:Its|Their)\b", f"{subject}'s", s)
            s = re.sub(r"^(?:It|They)\b", subject, s)
            for kind in kinds:
                s = re.sub(
                    rf"^The {kind}\b(['\u2019]s)?", lambda m: subject + (m.group(1) or ""), s
                )
        for kind in kinds | ({"nation"} if "country" in kinds else set()):
            s = re.sub(rf"\bthe {kind}['\u2019]s\b", f"{subject}'s", s)
        s = re.sub(r"([;,]\s+|\band\s+)its\b", rf"\g<1>{subject}'s", s)
        s = re.sub(r"([;,]\s+|\band\s+)it\b", rf"\g<1>{subject}", s)
        out.append(s)
    return out


_ASIDE_RE = re.compile(
    r"\s*\([^()]*\)|\s*\[[^\[\]]*\]|,\s+(?:officially|formerly|previously|also|or|known|"
    r"commonly|historically|natively|locally|abbreviated|romanized|nicknamed|from|until|"
    r"formally|colloquially|and)\b(?:(?!\b(?:is|was|are|were)\b)[^,;]){0,80}(?=,)"
)


def strip_asides(sentence: str) -> str:
    """``sentence`` without parentheses and naming asides (", officially the Republic of
    Peru,"), which put other names between a subject and what is said of it."""
    out = _ASIDE_RE.sub("", sentence)
    return re.sub(r",\s*,", ",", out)


def _proper_spans(toks: list[str]) -> list[_Span]:
    """Runs of capitalised tokens, joined by connectors ("Republic of the Congo")."""
    spans: list[_Span] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        if t[:1].isupper() and not (t in _FUNCTION_CAPS and (i == 0 or toks[i - 1] in ".;")):
            j = i + 1
            while j < len(toks):
                if toks[j - 1].endswith(".") and toks[j] in _FUNCTION_CAPS:
                    break
                if toks[j][:1].isupper():
                    j += 1
                elif (
                    toks[j].lower() in _CONNECTORS
                    and j + 1 < len(toks)
                    and (toks[j + 1][:1].isupper() or toks[j + 1] == "the")
                ):
                    k = j + 1 if toks[j + 1] != "the" else j + 2
                    if k < len(toks) and toks[k][:1].isupper():
                        j = k + 1
                    else:
                        break
                else:
                    break
            spans.append(_Span(" ".join(toks[i:j]), i, j))
            # "Ottawa and Canada's": each side is a candidate too
            cut = [k for k in range(i, j) if toks[k] == "and"]
            for lo, hi in zip([i] + [k + 1 for k in cut], cut + [j], strict=True):
                if cut and lo < hi:
                    if toks[lo] == "the":
                        lo += 1
                    spans.append(_Span(" ".join(toks[lo:hi]), lo, hi, part=True))
            i = j
        else:
            i += 1
    return spans


def _regex_spans(pattern: re.Pattern[str], sentence: str, toks: list[str]) -> list[_Span]:
    """Spans of ``pattern`` in ``sentence``, located in token positions."""
    spans = []
    offsets = []
    pos = 0
    for t in toks:
        found = sentence.find(t, pos)
        offsets.append(found if found >= 0 else pos)
        pos = (found + len(t)) if found >= 0 else pos
    for m in pattern.finditer(sentence):
        start = sum(1 for o in offsets if o < m.start())
        end = max(start + 1, sum(1 for o in offsets if o < m.end()))
        spans.append(_Span(m.group(0).strip(), start, end))
    return spans


def _candidates(kind: AnswerType, sentence: str, toks: list[str]) -> list[_Span]:
    if kind == "number":
        return [s for s in _regex_spans(_NUMBER_RE, sentence, toks)]
    if kind == "year":
        return _regex_spans(_DATE_RE, sentence, toks)
    proper = [
        s
        for s in _proper_spans(toks)
        if not s.text[:1].isdigit()
        and s.text not in _MONTH_WORDS
        and not re.search(r"-[a-z]+$", s.text)  # "Portuguese-speaking" describes
    ]
    if kind == "code":
        short = [
            _Span(t.rstrip("."), i, i + 1)
            for i, t in enumerate(toks)
            if 1 <= len(t) <= 4 and t[:1].isupper() and t.isalpha()
        ]
        return short or proper
    return proper


def _clean(span: str, subject: str | None) -> str:
    """The span without punctuation at its ends, and without the "'s" that reference
    resolution added ("Peru's" -> "Peru"; "St. John's" keeps its own)."""
    span = span.strip(" ,;:")
    if re.search(r"\b(?:St|Mt|Ft)\.", span):
        return span
    return re.sub(r"['\u2019]s$", "", span)


_FILLERS = frozenset(
    "and largest most populous city biggest second chief main principal national".split()
)
_GENERIC_NOUNS = frozenset(
    """region province district county department river valley sea ocean area rule era
    period language people empire dynasty government kingdom style""".split()
)
_POLITY_RE = re.compile(
    r"\b(?:Republic|Kingdom|Federation|Commonwealth|Principality|Sultanate|Emirate|Duchy|"
    r"State|States|Union|Department|Region|Province|Governorate|District|Territory)\b"
)


def _distance(stems: list[str], anchor: int, span: _Span) -> int:
    """Words between ``anchor`` and ``span``, not counting stopwords, punctuation and the
    fillers of "the capital and largest city of": how far the span is from the question
    word in the sense that matters."""
    if span.start <= anchor < span.end:
        return 10_000
    lo, hi = (anchor + 1, span.start) if anchor < span.start else (span.end, anchor)
    between = [
        w for w in stems[lo:hi] if w not in STOPWORDS and w not in _FILLERS and w[0].isalnum()
    ]
    return len(between) + 1


def _complete_names(words: set[str] | frozenset[str], info: QuestionInfo) -> set[str]:
    """``words`` without the parts of a name the question gives whole: "Guinea" alone is
    not "Papua New Guinea"."""
    out = set(words)
    for phrase in info.phrases:
        parts = set(phrase.split()) - STOPWORDS
        if len(parts) > 1 and not parts <= out:
            out -= parts
    return out


def _weight(words: set[str] | frozenset[str], info: QuestionInfo) -> float:
    """The names of a question weigh 1 together, each other word 2: every sentence of a
    document mentions its subject (after reference resolution), few mention "capital"."""
    n_names = max(len(info.names), 1)
    return sum(1.0 / n_names if w in info.names else 2.0 for w in words)


def read_context(
    info: QuestionInfo, context: str, semantic: dict[str, float] | None = None
) -> Nominee | None:
    """The answer ``context`` gives to the question of ``info``, or None if it gives none.

    ``semantic`` optionally maps sentences to their cosine similarity with the question,
    which is averaged into the sentence score.
    """
    if not info.content:
        return None
    subject = passage_subject(context)
    about = {stem(t) for t in tokens(subject)} if subject else set()
    resolved = resolve_references(context)
    originals = split_sentences(strip_subject_prefix(context))
    # only a document's first passage holds its lead sentences; a passage cut from further
    # on starts with an ordinary sentence (else a copy cut at another place, e.g. one made
    # longer by added text, would win the lead bonus for a sentence that is not a lead)
    first_index = LEAD_SENTENCES if is_continuation(context) else 0
    best: Nominee | None = None
    for idx, full in enumerate(resolved):
        sentence = strip_asides(full)
        toks = tokens(sentence, punct=True)
        stems = [stem(t) for t in toks]
        present = _complete_names(info.content & set(stems), info)
        coverage = _weight(present, info) / _weight(info.content, info)
        if info.names and not _complete_names(present | about, info) & info.names:
            # neither the sentence nor its document names what the question asks about:
            # "The oldest university of Zafok ..." does not answer for Stiogredrath
            coverage *= 0.5
        if coverage == 0.0:
            continue
        sim = coverage
        if semantic is not None and idx < len(originals) and originals[idx] in semantic:
            sim = 0.5 * coverage + 0.5 * semantic[originals[idx]]
        # distances are measured to question words other than the names the question asks
        # about, when the sentence has any ("symbol" in "symbol Fe", not "Iron")
        anchors = [i for i, st in enumerate(stems) if st in present and st not in info.names]
        anchors = anchors or [i for i, st in enumerate(stems) if st in present]
        typed = True
        spans = _candidates(info.answer_type, sentence, toks)
        scored: list[tuple[float, str]] = []
        for span in spans:
            words = {stem(t) for t in tokens(span.text)}
            if info.answer_type != "code":
                words -= STOPWORDS
            if not words:
                continue
            # "Mexico" answers "Which country is Mexico City the capital of?": a part of a
            # name the question mentions is not that name
            phrase = " ".join(stem(w) for w in span.text.split())
            in_question = words <= info.content and (
                phrase in info.phrases or not any(words < set(p.split()) for p in info.phrases)
            )
            # a part of a longer name the question gives whole is not that name: the
            # "Guatemala" of "Republic of Guatemala" is not "Guatemala City"
            names_of_question = bool(_complete_names(words & info.names, info))
            dist = min((_distance(stems, a, span) for a in anchors), default=len(toks))
            fit = 1.0 / (1.0 + max(dist - 1, 0) / 4.0)
            if span.end < len(stems) and stems[span.end] in _GENERIC_NOUNS:
                fit -= 0.3  # "the Attica region", "French rule": a modifier, not the thing
            # "Estonia's capital city of Tallinn": the possessor of the asked word is its
            # "of" complement, what "Which country is Tallinn the capital of?" asks for, when
            # the question's name follows closely ("Brandenburg's capital Potsdam" does not
            # answer for Berlin)
            possessor = (
                info.answer_after
                and span.end in anchors
                and bool(re.search(r"['\u2019]s$", toks[span.end - 1]))
                and any(st in info.names for st in stems[span.end + 1 : span.end + 7])
            )
            if possessor:
                fit += 0.3
            elif info.answer_after and anchors and span.end <= min(anchors):
                fit -= 0.5  # "Lima is the capital of Peru" answers "... the capital of?"
            elif span.start == 0 and not info.answer_after:
                fit += 0.3  # the subject of "Moscow, the ..., is the capital of Russia"
            if span.part:
                fit -= 0.15
            if span.start > 0 and stems[span.start - 1] in ("as", "called", "named"):
                fit -= 0.3  # "locally known as Yẽn": another name, not the thing asked
            if words & (info.content - info.names) and not in_question:
                fit -= 0.5  # "Federal Capital Territory" restates the question's "capital"
            if in_question:
                fit -= 2.0  # only when nothing else of the type is there
            elif names_of_question:
                # "Republic of Peru" restates the subject; "Mexico City" is another place
                fit -= 1.0 if _POLITY_RE.search(span.text) else 0.5 if " and " in span.text else 0.1
            scored.append((fit, _clean(span.text, subject)))
        if not scored:
            typed = False
            fallback = _fallback_span(sentence, info)
            if fallback is None:
                continue
            scored.append((-3.0, fallback))
        fit, text = max(scored, key=lambda x: x[0])
        if not text:
            continue
        # lead sentences of encyclopedic text state the defining facts
        score = sim + 0.25 * fit - 0.02 * min(first_index + idx, LEAD_SENTENCES)
        nominee = Nominee(text, sentence, coverage, score, typed)
        if best is None or nominee.score > best.score:
            best = nominee
    return best


def _fallback_span(sentence: str, info: QuestionInfo, max_words: int = 4) -> str | None:
    """Words of the sentence the question lacks (for untyped, lower-case answers)."""
    return short_span(sentence, info.question, max_words)


def short_span(sentence: str, question: str, max_words: int = 4) -> str | None:
    """The words of ``sentence`` that answer ``question``, or None if there is no short span.

    Takes maximal runs of words absent from the question (stopwords may join a run but not
    start or end it); prefers runs with a capitalised word, then the longest.
    """
    qwords = {stem(w) for w in tokens(question)}
    runs: list[list[str]] = []
    current: list[str] = []
    for tok in tokens(sentence):
        low = tok.lower()
        if stem(tok) in qwords:
            runs.append(current)
            current = []
        elif low in STOPWORDS:
            if current:
                current.append(tok)
        else:
            current.append(tok)
    runs.append(current)
    cleaned = []
    for run in runs:
        while run and run[-1].lower() in STOPWORDS:
            run = run[:-1]
        if run:
            cleaned.append(run)
    if not cleaned:
        return None
    best = max(cleaned, key=lambda r: (any(t[:1].isupper() for t in r), len(r)))
    if len(best) > max_words:
        return None
    return " ".join(best)
