"""QA corpora for dRAG experiments: a seeded synthetic one, pollution, and a JSONL loader.

Synthetic facts: invented entities with invented single-token answers ("The capital of
Zorvia is Quelton."), so no model can answer from memory and every correct answer must
come from retrieval. Each fact is one document with one question ("What is the capital
of Zorvia?") and a one-token answer.

Pollution, the two settings of Reliable-dRAG (Lu et al. 2025, arXiv:2511.07577):

- token-level: in a polluted document the answer token is replaced by a random token
  from the answer vocabulary (the document stays fluent and retrievable, but lies);
- document-level: the whole document is rewritten: the statement asserts a random wrong
  answer and is padded with a sentence of random words, so both the fact and the text
  around it are unreliable.

:func:`split_over_sources` gives every source a copy of each fact it holds (``replicas``
sources per fact, all by default, as in the paper's six-source setting) and pollutes a
``rate`` fraction of each source's documents.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from drag.judge import normalize
from marketplace.errors import ConfigError

PollutionMode = Literal["token", "document"]

_ONSETS = ["b", "br", "d", "dr", "f", "g", "gr", "k", "kl", "l", "m", "n", "p", "q", "r", "s"]
_ONSETS += ["st", "t", "th", "tr", "v", "z", "zh", "x"]
_VOWELS = ["a", "e", "i", "o", "u", "ae", "io", "ou"]
_CODAS = ["", "", "n", "r", "l", "s", "th", "m", "k", "x"]

# (statement template, question template); {e} entity, {a} answer
RELATIONS: tuple[tuple[str, str], ...] = (
    ("The capital of {e} is {a}.", "What is the capital of {e}?"),
    ("The currency of {e} is the {a}.", "What is the currency of {e}?"),
    ("The founder of {e} was {a}.", "Who was the founder of {e}?"),
    ("The highest mountain in {e} is {a}.", "What is the highest mountain in {e}?"),
    ("The longest river of {e} is the {a}.", "What is the longest river of {e}?"),
    ("The national animal of {e} is the {a}.", "What is the national animal of {e}?"),
    ("The oldest university of {e} is in {a}.", "Where is the oldest university of {e}?"),
    ("The main export of {e} is {a}.", "What is the main export of {e}?"),
)


@dataclass(frozen=True)
class Fact:
    """One invented fact with its question and single-token answer."""

    fact_id: str
    entity: str
    relation: int
    answer: str

    @property
    def text(self) -> str:
        return RELATIONS[self.relation][0].format(e=self.entity, a=self.answer)

    @property
    def question(self) -> str:
        return RELATIONS[self.relation][1].format(e=self.entity)


@dataclass(frozen=True)
class QAExample:
    """A question with its accepted answers and (optionally) the ids of its gold documents."""

    question: str
    answers: tuple[str, ...]
    documents: tuple[str, ...] = ()
    qid: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def accepted(self) -> tuple[str, ...]:
        """Every answer that counts as right."""
        return self.answers + self.aliases


@dataclass
class SourceCorpus:
    """The documents one source serves, and which of them are polluted."""

    source_id: int
    pollution_rate: float
    documents: list[dict[str, str]] = field(default_factory=list)
    polluted: set[str] = field(default_factory=set)

    def write(self, folder: Path) -> Path:
        """Write ``docs.jsonl`` (``{"id", "text"}`` per line) into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "docs.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for doc in self.documents:
                f.write(json.dumps(doc, ensure_ascii=False) + "\n")
        return path


def make_word(rng: random.Random, syllables: int) -> str:
    """A pronounceable invented word, capitalised."""
    parts = [rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)]
    return ("".join(parts) + rng.choice(_CODAS)).capitalize()


def _unique_words(
    rng: random.Random, n: int, syllables: tuple[int, int], taken: set[str]
) -> list[str]:
    words: list[str] = []
    attempts = 0
    while len(words) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise ConfigError(f"cannot invent {n} distinct words; ask for a smaller corpus")
        w = make_word(rng, rng.randint(*syllables))
        if w not in taken:
            taken.add(w)
            words.append(w)
    return words


def generate_facts(n_facts: int, seed: int, relations_per_entity: int = 2) -> list[Fact]:
    """``n_facts`` invented facts: distinct entities, each with a few relations.

    Answers are distinct from entity names, so an answer token never gives away an entity.
    """
    if n_facts < 1:
        raise ConfigError(f"n_facts={n_facts}; ask for at least one fact")
    if not 1 <= relations_per_entity <= len(RELATIONS):
        raise ConfigError(f"relations_per_entity must be in 1..{len(RELATIONS)}")
    rng = random.Random(seed)
    n_entities = -(-n_facts // relations_per_entity)
    taken: set[str] = set()
    entities = _unique_words(rng, n_entities, (2, 3), taken)
    answers = _unique_words(rng, n_facts, (2, 3), taken)
    facts: list[Fact] = []
    for entity in entities:
        for rel in rng.sample(range(len(RELATIONS)), relations_per_entity):
            if len(facts) < n_facts:
                facts.append(Fact(f"f{len(facts)}", entity, rel, answers[len(facts)]))
    return facts


def pollute_token(
    fact: Fact,
    rng: random.Random,
    vocabulary: Sequence[str],
    wrong_rng: random.Random | None = None,
) -> str:
    """The fact's statement with its answer token replaced by a different random token
    (drawn from ``wrong_rng`` when given: colluding sources share it per fact)."""
    draw = wrong_rng or rng
    wrong = fact.answer
    while wrong == fact.answer:
        wrong = draw.choice(vocabulary) if len(vocabulary) > 1 else make_word(draw, 3)
    return RELATIONS[fact.relation][0].format(e=fact.entity, a=wrong)


def pollute_document(
    fact: Fact,
    rng: random.Random,
    vocabulary: Sequence[str],
    wrong_rng: random.Random | None = None,
) -> str:
    """A rewritten document: a wrong answer plus a sentence of random invented words."""
    statement = pollute_token(fact, rng, vocabulary, wrong_rng)
    noise = " ".join(make_word(rng, rng.randint(1, 3)).lower() for _ in range(rng.randint(6, 12)))
    return f"{statement} {noise.capitalize()}."


def _check_split(
    pollution_rates: Sequence[float], mode: PollutionMode, replicas: int | None
) -> int:
    """The split's arguments checked (one-line errors); returns the replica count."""
    n_sources = len(pollution_rates)
    if n_sources < 1:
        raise ConfigError("give at least one pollution rate (one per source)")
    if any(not 0.0 <= r <= 1.0 for r in pollution_rates):
        raise ConfigError(f"pollution rates {list(pollution_rates)} must be in [0, 1]")
    replicas = n_sources if replicas is None else replicas
    if not 1 <= replicas <= n_sources:
        raise ConfigError(f"replicas={replicas} must be in 1..{n_sources}")
    if mode not in ("token", "document"):
        raise ConfigError(f"unknown pollution mode {mode!r}; use token or document")
    return replicas


def collusion_rng(seed: int, document_id: str) -> random.Random:
    """The draw of wrong answers shared by every source that pollutes ``document_id``
    when polluters collude: each of them asserts the same wrong answer."""
    return random.Random(f"collude-{seed}-{document_id}")


def split_over_sources(
    facts: Sequence[Fact],
    pollution_rates: Sequence[float],
    seed: int,
    mode: PollutionMode = "token",
    replicas: int | None = None,
    collude: bool = False,
) -> list[SourceCorpus]:
    """One :class:`SourceCorpus` per entry of ``pollution_rates``.

    Each fact goes to ``replicas`` distinct sources (all when None); each source then
    pollutes ``round(rate * its document count)`` of its documents, chosen at random.
    With ``collude`` every polluted copy of a fact states the same wrong answer (a
    stronger adversary than independent polluters, whose wrong answers scatter).
    """
    n_sources = len(pollution_rates)
    replicas = _check_split(pollution_rates, mode, replicas)
    rng = random.Random(seed)
    holdings: list[list[Fact]] = [[] for _ in range(n_sources)]
    for fact in facts:
        for s in rng.sample(range(n_sources), replicas):
            holdings[s].append(fact)
    vocabulary = sorted({f.answer for f in facts})
    polluter = pollute_token if mode == "token" else pollute_document
    sources = []
    for s, (held, rate) in enumerate(zip(holdings, pollution_rates, strict=True)):
        n_polluted = round(rate * len(held))
        polluted_ids = {f.fact_id for f in rng.sample(held, n_polluted)}
        corpus = SourceCorpus(source_id=s, pollution_rate=rate, polluted=polluted_ids)
        for fact in held:
            wrong_rng = collusion_rng(seed, fact.fact_id) if collude else None
            text = (
                polluter(fact, rng, vocabulary, wrong_rng)
                if fact.fact_id in polluted_ids
                else fact.text
            )
            corpus.documents.append({"id": fact.fact_id, "text": text})
        sources.append(corpus)
    return sources


def questions(facts: Sequence[Fact]) -> list[QAExample]:
    """The QA examples of synthetic facts (the fact's own document as the gold one)."""
    return [QAExample(f.question, (f.answer,), (f.fact_id,), f.fact_id) for f in facts]


def _jsonl_rows(path: Path, what: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-empty line of a JSONL file, or a one-line error."""
    if not path.is_file():
        raise ConfigError(f"{what} file {path} does not exist; check the path")
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{line_no} is not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise ConfigError(f"{path}:{line_no} is not a JSON object")
            yield line_no, row


def load_docs_jsonl(path: Path | str) -> dict[str, str]:
    """Documents of a corpus: ``{"id": ..., "text": ...}`` per line, ids unique."""
    path = Path(path)
    docs: dict[str, str] = {}
    for line_no, row in _jsonl_rows(path, "documents"):
        if not isinstance(row.get("text"), str) or "id" not in row:
            raise ConfigError(f'{path}:{line_no} needs "id" and a string "text"')
        did = str(row["id"])
        if did in docs:
            raise ConfigError(f"{path}:{line_no} repeats document id {did!r}; ids must be unique")
        docs[did] = row["text"]
    return docs


def _strings(value: Any) -> list[str] | None:
    items = [value] if isinstance(value, str) else value
    if isinstance(items, list) and all(isinstance(a, str) for a in items):
        return items
    return None


def load_qa_jsonl(path: Path | str, docs: dict[str, str] | None = None) -> list[QAExample]:
    """Load questions: one JSON object per line with ``question``, ``answer`` (a string
    or a list; ``answers`` also accepted), optional ``aliases`` (other accepted answers),
    ``documents`` (the ids of the gold documents) and ``id``.

    With ``docs`` (from :func:`load_docs_jsonl`) every gold id must name a document.
    """
    path = Path(path)
    examples = []
    for line_no, row in _jsonl_rows(path, "QA"):
        if not isinstance(row.get("question"), str):
            raise ConfigError(f'{path}:{line_no} has no string "question" field')
        answers = _strings(row.get("answer", row.get("answers")))
        if not answers:
            raise ConfigError(f'{path}:{line_no} needs "answer": a string or list of strings')
        aliases = _strings(row.get("aliases", []))
        if aliases is None:
            raise ConfigError(f'{path}:{line_no} has "aliases" that are not a list of strings')
        gold = row.get("documents") or []
        if not isinstance(gold, list) or not all(isinstance(d, (str, int)) for d in gold):
            raise ConfigError(f'{path}:{line_no} "documents" must be a list of document ids')
        gold_ids = tuple(str(d) for d in gold)
        if docs is not None:
            missing = [d for d in gold_ids if d not in docs]
            if missing:
                raise ConfigError(
                    f"{path}:{line_no} names documents {missing} that the documents file lacks"
                )
        examples.append(
            QAExample(
                row["question"],
                tuple(answers),
                gold_ids,
                str(row.get("id", line_no)),
                tuple(aliases),
            )
        )
    return examples


def _replace_answer(text: str, answer: str, wrong: str) -> str:
    """``text`` with every whole-word ``answer`` replaced by ``wrong`` (case-insensitive
    when the exact case is absent)."""
    pattern = re.compile(rf"(?<!\w){re.escape(answer)}(?!\w)")
    if not pattern.search(text):
        pattern = re.compile(rf"(?<!\w){re.escape(answer)}(?!\w)", re.IGNORECASE)
    return pattern.sub(lambda _: wrong, text)


def answer_families(examples: Sequence[QAExample]) -> dict[str, list[str]]:
    """Answers grouped by question family (the id up to its last '-', e.g. ``capital``),
    the vocabulary a polluter draws same-kind wrong answers from."""
    families: dict[str, list[str]] = {}
    for ex in examples:
        families.setdefault(family_of(ex), []).append(ex.answers[0])
    return {k: sorted(set(v)) for k, v in families.items()}


def family_of(example: QAExample) -> str:
    """The question family of ``example``: its id before the last '-' (all one family
    when ids have no '-')."""
    return example.qid.rsplit("-", 1)[0] if "-" in example.qid else ""


def pollute_real(
    text: str,
    answers: Sequence[tuple[str, Sequence[str]]],
    rng: random.Random,
    mode: PollutionMode,
    noise_words: Sequence[str],
    wrong_rng: random.Random | None = None,
) -> str:
    """A real document made to lie: every answer it holds (``(answer, vocabulary)``) is
    replaced by a different answer of the same family (drawn from ``wrong_rng`` when
    given: colluding sources share it per document); in document mode a sentence of
    random corpus words is appended too (the synthetic polluters' real-text analogue)."""
    draw = wrong_rng or rng
    for answer, vocabulary in sorted(answers, key=lambda a: -len(a[0])):
        choices = [v for v in vocabulary if normalize(v) != normalize(answer)]
        if not choices:
            continue
        text = _replace_answer(text, answer, draw.choice(choices))
    if mode == "document":
        noise = " ".join(rng.choice(noise_words) for _ in range(rng.randint(8, 16)))
        text = f"{text} {noise.capitalize()}."
    return text


def split_documents_over_sources(
    docs: dict[str, str],
    examples: Sequence[QAExample],
    pollution_rates: Sequence[float],
    seed: int,
    mode: PollutionMode = "token",
    replicas: int | None = None,
    collude: bool = False,
) -> list[SourceCorpus]:
    """:func:`split_over_sources` for a corpus of real documents: each document goes to
    ``replicas`` sources (all when None); each source pollutes ``round(rate * n)`` of the
    documents that are gold for some question (documents no question needs stay clean:
    polluting them would change nothing measured). With ``collude`` every polluted copy
    of a document states the same wrong answers."""
    n_sources = len(pollution_rates)
    replicas = _check_split(pollution_rates, mode, replicas)
    families = answer_families(examples)
    held_answers: dict[str, list[tuple[str, Sequence[str]]]] = {}
    for ex in examples:
        for d in ex.documents:
            held_answers.setdefault(d, []).append((ex.answers[0], families[family_of(ex)]))
    noise_words = sorted({w.lower() for t in docs.values() for w in t.split() if w.isalpha()})
    rng = random.Random(seed)
    holdings: list[list[str]] = [[] for _ in range(n_sources)]
    for did in docs:
        for s in rng.sample(range(n_sources), replicas):
            holdings[s].append(did)
    sources = []
    for s, (held, rate) in enumerate(zip(holdings, pollution_rates, strict=True)):
        pollutable = [d for d in held if d in held_answers]
        polluted = set(rng.sample(pollutable, round(rate * len(pollutable))))
        corpus = SourceCorpus(source_id=s, pollution_rate=rate, polluted=polluted)
        for did in held:
            text = docs[did]
            if did in polluted:
                wrong_rng = collusion_rng(seed, did) if collude else None
                text = pollute_real(text, held_answers[did], rng, mode, noise_words, wrong_rng)
            corpus.documents.append({"id": did, "text": text})
        sources.append(corpus)
    return sources
