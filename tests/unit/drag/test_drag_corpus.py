"""Synthetic QA corpus, pollution, and the JSONL QA loader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drag.corpus import (
    RELATIONS,
    generate_facts,
    load_docs_jsonl,
    load_qa_jsonl,
    questions,
    split_over_sources,
)
from marketplace.errors import ConfigError


def test_facts_are_seeded_distinct_and_single_token() -> None:
    facts = generate_facts(60, seed=5)
    assert facts == generate_facts(60, seed=5)
    assert facts != generate_facts(60, seed=6)
    assert len({(f.entity, f.relation) for f in facts}) == 60
    assert len({f.answer for f in facts}) == 60
    assert not {f.answer for f in facts} & {f.entity for f in facts}
    for f in facts:
        assert len(f.answer.split()) == 1
        assert f.answer in f.text and f.entity in f.question and f.answer not in f.question
    assert facts[0].text == RELATIONS[facts[0].relation][0].format(
        e=facts[0].entity, a=facts[0].answer
    )


def test_token_pollution_replaces_only_the_answer() -> None:
    facts = generate_facts(40, seed=1)
    sources = split_over_sources(facts, [0.0, 0.25, 1.0], seed=2, mode="token")
    by_id = {f.fact_id: f for f in facts}
    assert [len(s.polluted) for s in sources] == [0, 10, 40]
    for source in sources:
        assert len(source.documents) == 40
        for doc in source.documents:
            fact = by_id[doc["id"]]
            if doc["id"] in source.polluted:
                assert fact.answer not in doc["text"]
                assert doc["text"].split()[:-1] == fact.text.split()[:-1]
            else:
                assert doc["text"] == fact.text


def test_document_pollution_rewrites_the_document_and_replicas_split_facts() -> None:
    facts = generate_facts(30, seed=3)
    sources = split_over_sources(facts, [1.0, 0.0, 0.0], seed=4, mode="document", replicas=2)
    assert sum(len(s.documents) for s in sources) == 60
    for doc in sources[0].documents:
        fact = next(f for f in facts if f.fact_id == doc["id"])
        assert fact.answer not in doc["text"] and len(doc["text"]) > len(fact.text)
    again = split_over_sources(facts, [1.0, 0.0, 0.0], seed=4, mode="document", replicas=2)
    assert [s.documents for s in again] == [s.documents for s in sources]
    with pytest.raises(ConfigError):
        split_over_sources(facts, [1.5], seed=0)


def test_written_source_and_loader(tmp_path: Path) -> None:
    facts = generate_facts(5, seed=0)
    path = split_over_sources(facts, [0.0], seed=0)[0].write(tmp_path / "s0")
    assert len(path.read_text(encoding="utf-8").splitlines()) == 5
    qa = tmp_path / "qa.jsonl"
    rows = [
        {"question": "Q1?", "answer": "A1", "documents": ["d1", 2], "id": "x", "aliases": ["a"]},
        {"question": "Q2?", "answers": ["A2", "a two"]},
    ]
    qa.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    examples = load_qa_jsonl(qa)
    assert examples[0].answers == ("A1",) and examples[0].documents == ("d1", "2")
    assert examples[0].accepted == ("A1", "a")
    assert examples[1].answers == ("A2", "a two") and examples[1].qid == "2"
    assert questions(facts)[0].answers == (facts[0].answer,)
    assert questions(facts)[0].documents == (facts[0].fact_id,)
    # document ids are ids: with the documents file, an unknown id is refused
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"id": "d1", "text": "one"}\n{"id": 2, "text": "two"}\n', encoding="utf-8")
    assert len(load_qa_jsonl(qa, load_docs_jsonl(docs))) == 2
    docs.write_text('{"id": "d1", "text": "one"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"names documents \['2'\]"):
        load_qa_jsonl(qa, load_docs_jsonl(docs))
    docs.write_text(
        '{"id": "d1", "text": "one"}\n{"id": "d1", "text": "again"}\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="repeats document id"):
        load_docs_jsonl(docs)
    qa.write_text('{"question": "Q?"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="answer"):
        load_qa_jsonl(qa)


def test_real_documents_are_polluted_with_same_kind_answers() -> None:
    from drag.corpus import QAExample, split_documents_over_sources

    docs = {
        "Peru": "Peru is a country. Its capital is Lima.",
        "Chile": "Chile is a country. Its capital is Santiago.",
        "Iron": "Iron has symbol Fe.",
        "Zinc": "Zinc is a metal.",  # gold for no question: never polluted
    }
    examples = [
        QAExample("What is the capital of Peru?", ("Lima",), ("Peru",), "capital-PE"),
        QAExample("What is the capital of Chile?", ("Santiago",), ("Chile",), "capital-CL"),
        QAExample("What is the symbol of iron?", ("Fe",), ("Iron",), "symbol-Fe"),
    ]
    clean, half, full = split_documents_over_sources(docs, examples, [0.0, 0.5, 1.0], seed=3)
    assert {d["id"]: d["text"] for d in clean.documents} == docs and not clean.polluted
    assert len(half.polluted) == 2 and len(full.polluted) == 3
    lying = {d["id"]: d["text"] for d in full.documents}
    assert lying["Peru"] == "Peru is a country. Its capital is Santiago."
    assert lying["Chile"] == "Chile is a country. Its capital is Lima."
    assert lying["Zinc"] == docs["Zinc"]
    assert lying["Iron"] == docs["Iron"]  # a family of one answer has no wrong answer to use
    doc_mode = split_documents_over_sources(docs, examples, [1.0], seed=3, mode="document")[0]
    texts = {d["id"]: d["text"] for d in doc_mode.documents}
    assert texts["Peru"].startswith("Peru is a country. Its capital is Santiago. ")
    assert len(texts["Peru"]) > len(lying["Peru"])


def test_colluding_polluters_state_the_same_wrong_answer() -> None:
    from drag.corpus import QAExample, split_documents_over_sources, split_over_sources

    docs = {f"C{i}": f"C{i} is a country. Its capital is Town{i}." for i in range(12)}
    examples = [
        QAExample(f"What is the capital of C{i}?", (f"Town{i}",), (f"C{i}",), f"capital-{i}")
        for i in range(12)
    ]

    def wrong_answers(collude: bool) -> list[set[str]]:
        lying = split_documents_over_sources(docs, examples, [1.0] * 4, 5, collude=collude)
        return [{s.documents[i]["text"] for s in lying} for i in range(12)]

    assert all(len(texts) == 1 for texts in wrong_answers(True))  # one lie per document
    assert any(len(texts) > 1 for texts in wrong_answers(False))  # independent lies scatter
    facts = generate_facts(30, seed=2)
    for mode in ("token", "document"):
        colluding = split_over_sources(facts, [1.0, 1.0], seed=2, mode=mode, collude=True)
        first = [d["text"].split(". ")[0] for d in colluding[0].documents]
        second = [d["text"].split(". ")[0] for d in colluding[1].documents]
        assert first == second
