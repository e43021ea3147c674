"""The CLI as a separate process, the way the e2e tests drive it (pytest puts tests/ on the
path): one command run to completion, or a node left running with its output in a log."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def run_cli(args: list[str], env: dict[str, str], timeout: float = 60) -> str:
    """Run ``ledgerlearn ARGS`` and return its stdout; a non-zero exit fails the test
    with its stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "marketplace.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def spawn_cli(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start ``ledgerlearn ARGS`` in the background, stdout and stderr into ``log``."""
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "marketplace.cli.main", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_all(procs: list[subprocess.Popen], logs: list[Path], timeout: float) -> dict[str, str]:
    """Wait up to ``timeout`` s for every process to end; each must exit 0 (else the test
    fails showing every log's tail). Returns log file name -> its text."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(p.poll() is None for p in procs):
        time.sleep(0.2)
    texts = {log.name: log.read_text() for log in logs}
    assert all(p.returncode == 0 for p in procs), "\n".join(
        f"== {name}\n{text[-2000:]}" for name, text in sorted(texts.items())
    )
    return texts
