"""Turn a source's documents folder into passages.

A data owner keeps plain files: ``.txt`` and ``.md`` (one document each) and ``.jsonl``
(one document per line, ``{"id": ..., "text": ...}`` or ``{"text": ...}``). Each document
is split into windows of about ``chunk_words`` words that overlap by ``overlap`` words, so a
fact that straddles a boundary still appears whole in one passage (the usual fixed-size
chunking of RAG pipelines, Lewis et al. 2020 use 100-word passages).

Chunk ids are ``<doc_id>:<n>`` where ``doc_id`` is the file's path relative to the docs
folder (plus ``#<id>`` for a JSONL record): the same file chunked with the same settings
always yields the same ids, which is what lets the index skip unchanged files.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from marketplace.errors import ConfigError

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".txt", ".md", ".jsonl")


@dataclass(frozen=True)
class ChunkConfig:
    """How documents are cut into passages; part of the index manifest."""

    chunk_words: int = 120
    overlap: int = 20

    def __post_init__(self) -> None:
        if self.chunk_words < 1:
            raise ConfigError(f"chunk_words={self.chunk_words}; use a positive number of words")
        if not 0 <= self.overlap < self.chunk_words:
            raise ConfigError(
                f"overlap={self.overlap} must be in [0, chunk_words={self.chunk_words})"
            )


@dataclass(frozen=True)
class Passage:
    """One retrievable unit of text with a stable id."""

    chunk_id: str
    doc_id: str
    text: str


def chunk_words(text: str, size: int, overlap: int) -> list[str]:
    """Split ``text`` into windows of ``size`` words, consecutive windows sharing ``overlap``.

    Whitespace is normalised to single spaces; an empty text gives no chunks; a text no
    longer than ``size`` words is one chunk.
    """
    words = text.split()
    if not words:
        return []
    if len(words) <= size:
        return [" ".join(words)]
    step = size - overlap
    chunks = []
    start = 0
    while True:
        chunks.append(" ".join(words[start : start + size]))
        if start + size >= len(words):
            break
        start += step
    return chunks


def list_documents(docs_dir: Path) -> list[Path]:
    """All supported files under ``docs_dir`` (recursively), in a stable sorted order."""
    if not docs_dir.is_dir():
        raise ConfigError(f"documents folder {docs_dir} does not exist; create it or fix the path")
    return sorted(
        p for p in docs_dir.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES
    )


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes: the manifest key that detects changed files."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def relative_doc_id(path: Path, docs_dir: Path) -> str:
    """The path of ``path`` relative to ``docs_dir`` in POSIX form (stable across OSes)."""
    return path.relative_to(docs_dir).as_posix()


def read_documents(path: Path, docs_dir: Path) -> Iterator[tuple[str, str]]:
    """Yield ``(doc_id, text)`` for each document in one file."""
    rel = relative_doc_id(path, docs_dir)
    if path.suffix.lower() != ".jsonl":
        yield rel, path.read_text(encoding="utf-8", errors="replace")
        return
    with path.open(encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"{rel}:{line_no} is not valid JSON ({exc.msg}); "
                    'each line must be {"id": ..., "text": ...} or {"text": ...}'
                ) from exc
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise ConfigError(
                    f'{rel}:{line_no} has no string "text" field; '
                    'each line must be {"id": ..., "text": ...} or {"text": ...}'
                )
            doc_key = record.get("id", line_no)
            yield f"{rel}#{doc_key}", record["text"]


def ingest_file(path: Path, docs_dir: Path, config: ChunkConfig) -> list[Passage]:
    """All passages of one file, in document order."""
    passages: list[Passage] = []
    for doc_id, text in read_documents(path, docs_dir):
        for n, chunk in enumerate(chunk_words(text, config.chunk_words, config.overlap)):
            passages.append(Passage(chunk_id=f"{doc_id}:{n}", doc_id=doc_id, text=chunk))
    return passages


def ingest_dir(docs_dir: Path, config: ChunkConfig | None = None) -> list[Passage]:
    """All passages of all supported files under ``docs_dir``."""
    config = config or ChunkConfig()
    passages: list[Passage] = []
    for path in list_documents(docs_dir):
        passages.extend(ingest_file(path, docs_dir, config))
    log.debug("ingested %d passages from %s", len(passages), docs_dir)
    return passages
