"""`ledgerlearn source ingest`: a JSONL corpus in, a persistent index out, by sentences."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from marketplace.cli.main import app


def test_source_ingest_indexes_a_jsonl_corpus_once(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LEDGERLEARN_HOME", str(tmp_path / "home"))
    docs = tmp_path / "docs.jsonl"
    text = "Peru is a country. " + " ".join(f"Sentence {i} is here." for i in range(20))
    docs.write_text(json.dumps({"id": "Peru", "text": text}) + "\n", encoding="utf-8")
    args = ["source", "ingest", f"--docs={docs}", f"--index-dir={tmp_path / 'idx'}"]
    runner = CliRunner()
    first = runner.invoke(app, [*args, "--chunk-words=30", "--json"])
    assert first.exit_code == 0, first.output
    out = json.loads(first.output)
    assert out["documents"] == 1 and out["passages"] > 2 and out["embedded"] == out["passages"]
    again = json.loads(runner.invoke(app, [*args, "--chunk-words=30", "--json"]).output)
    assert again["embedded"] == 0 and again["passages"] == out["passages"]  # nothing re-embedded
    bad = runner.invoke(app, [*args, "--chunk-words=3"])
    assert bad.exit_code != 0 and "too small" in str(bad.exception)
