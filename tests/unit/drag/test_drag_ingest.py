"""Reading a docs folder into passages: chunking, formats, stable ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drag.ingest import ChunkConfig, chunk_words, ingest_dir, list_documents
from marketplace.errors import ConfigError


def test_chunks_have_the_size_and_overlap_asked_for() -> None:
    text = " ".join(f"w{i}" for i in range(25))
    chunks = chunk_words(text, size=10, overlap=3)
    assert [len(c.split()) for c in chunks] == [10, 10, 10, 4]
    assert chunks[0].split()[-3:] == chunks[1].split()[:3]
    assert chunks[-1].split()[-1] == "w24"


@given(
    n=st.integers(min_value=0, max_value=300),
    size=st.integers(min_value=1, max_value=40),
    data=st.data(),
)
def test_chunking_covers_every_word_in_order(n: int, size: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(min_value=0, max_value=size - 1))
    words = [f"w{i}" for i in range(n)]
    chunks = chunk_words(" ".join(words), size, overlap)
    assert all(1 <= len(c.split()) <= size for c in chunks)
    rebuilt = chunks[0].split() if chunks else []
    for c in chunks[1:]:
        rebuilt += c.split()[overlap:]
    assert rebuilt == words


def test_folder_formats_and_stable_ids(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("Alpha beta gamma.", encoding="utf-8")
    (tmp_path / "sub" / "b.md").write_text("# Title\n\nSome markdown text.", encoding="utf-8")
    (tmp_path / "c.jsonl").write_text(
        json.dumps({"id": "q1", "text": "First record."})
        + "\n\n"
        + json.dumps({"text": "Second record."})
        + "\n",
        encoding="utf-8",
    )
    (tmp_path / "ignored.pdf").write_bytes(b"%PDF")
    assert [p.name for p in list_documents(tmp_path)] == ["a.txt", "c.jsonl", "b.md"]
    passages = ingest_dir(tmp_path, ChunkConfig(chunk_words=50, overlap=5))
    ids = [p.chunk_id for p in passages]
    assert ids == ["a.txt:0", "c.jsonl#q1:0", "c.jsonl#3:0", "sub/b.md:0"]
    assert passages[1].doc_id == "c.jsonl#q1" and passages[1].text == "First record."
    assert [p.chunk_id for p in ingest_dir(tmp_path, ChunkConfig(50, 5))] == ids


def test_bad_jsonl_and_settings_are_refused(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text('{"id": 1}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match='x.jsonl:1 has no string "text"'):
        ingest_dir(tmp_path)
    (tmp_path / "x.jsonl").write_text("not json\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="x.jsonl:1 is not valid JSON"):
        ingest_dir(tmp_path)
    with pytest.raises(ConfigError, match="overlap"):
        ChunkConfig(chunk_words=10, overlap=10)
    with pytest.raises(ConfigError, match="does not exist"):
        list_documents(tmp_path / "missing")


def test_sentence_chunks_stay_within_documents_and_carry_the_subject(tmp_path: Path) -> None:
    from drag.ingest import chunk_sentences

    text = (
        "Peru is a country in South America. "
        + " ".join(f"Fact number {i} about it is long enough." for i in range(12))
        + " Its capital is Lima."
    )
    chunks = chunk_sentences(text, size=30, overlap=8)
    assert all(len(c.split()) <= 30 for c in chunks) and len(chunks) > 2
    assert all(c.endswith(".") for c in chunks)  # whole sentences only
    assert chunks[1].startswith("Fact number")  # overlap carries a whole sentence
    # one big .txt of two documents: no passage mixes them; continuations name their subject
    (tmp_path / "big.txt").write_text(
        text + "\n\nSt. Lucia is an island. Its capital is Castries.", encoding="utf-8"
    )
    passages = ingest_dir(tmp_path, ChunkConfig(chunk_words=30, overlap=8))
    assert not any("Peru" in p.text and "Castries" in p.text for p in passages)
    assert passages[-2].text.startswith("(Peru) ") and "Lima" in passages[-2].text
    assert passages[-1].text == "St. Lucia is an island. Its capital is Castries."
    assert [p.chunk_id for p in passages] == [f"big.txt:{i}" for i in range(len(passages))]
    words = ingest_dir(tmp_path, ChunkConfig(chunk_words=30, overlap=8, by="words"))
    assert any("Lima" in p.text and "Lucia" in p.text for p in words)  # what it fixes


def test_a_single_jsonl_file_is_a_corpus(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text('{"id": "Peru", "text": "Peru is a country."}\n', encoding="utf-8")
    (tmp_path / "other.txt").write_text("Not part of it.", encoding="utf-8")
    assert [p.chunk_id for p in ingest_dir(path)] == ["docs.jsonl#Peru:0"]
    (tmp_path / "other.pdf").write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a .txt, .md or .jsonl"):
        list_documents(tmp_path / "other.pdf")
