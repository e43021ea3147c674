"""The CLI as a separate process, the way the e2e tests drive it (pytest puts tests/ on the
path): one command run to completion, or a node left running with its output in a log."""

from __future__ import annotations

import subprocess
import sys
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
