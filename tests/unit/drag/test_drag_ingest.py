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
