"""Node commands on a port that is taken fail with one line naming the port, before any
slow work (connecting, indexing, loading a model); never with a traceback."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_process import cli_env, complete_cli

pytestmark = pytest.mark.e2e

NO_NODE = "--rpc-url=http://127.0.0.1:1"  # nothing listens: a chain error if reached


@pytest.fixture()
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield int(s.getsockname()[1])


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return complete_cli(list(args), cli_env(tmp_path / "home"), 120)


def _assert_port_error(result: subprocess.CompletedProcess[str], port: int) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "--port" in lines[0], lines


def test_trainer_and_aggregator_run_refuse_a_taken_port_first(
    tmp_path: Path, taken_port: int
) -> None:
    data = tmp_path / "data.csv"
    data.write_text("x,label\n1,0\n")
    trainer = _run(
        tmp_path, "trainer", "run", "1", f"--data={data}",
        "--aggregator-gateway=http://127.0.0.1:9", f"--port={taken_port}", NO_NODE,
    )  # fmt: skip
    _assert_port_error(trainer, taken_port)
    aggregator = _run(
        tmp_path, "aggregator", "run", "1", f"--validation={data}",
        f"--port={taken_port}", NO_NODE,
    )  # fmt: skip
    _assert_port_error(aggregator, taken_port)


def test_source_serve_refuses_a_taken_port_before_indexing(tmp_path: Path, taken_port: int) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("a document")
    index = tmp_path / "index"
    result = _run(
        tmp_path, "source", "serve", f"--docs={docs}", f"--index-dir={index}",
        f"--port={taken_port}", NO_NODE,
    )  # fmt: skip
    _assert_port_error(result, taken_port)
    assert not index.exists()  # nothing was indexed


def test_source_serve_refuses_an_empty_folder_before_connecting(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.pdf").write_bytes(b"%PDF")  # not a format a source serves
    index = tmp_path / "index"
    result = _run(tmp_path, "source", "serve", f"--docs={docs}", f"--index-dir={index}", NO_NODE)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no .txt, .md or .jsonl documents" in lines[0], lines
    assert "--docs" in lines[0] and not index.exists()
