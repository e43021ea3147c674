"""The CLI as a separate process, the way the e2e tests drive it (pytest puts tests/ on the
path): one command run to completion, or a node left running with its output in a log,
waited for (its HTTP port, or its exit) and stopped by pid. One copy for every e2e suite,
so a fix to how a process is started, awaited or reported reaches all of them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from marketplace.chain.node import start_anvil, stop

CLI = [sys.executable, "-m", "marketplace.cli.main"]
#: How much of a log an assertion message shows.
TAIL = 4000


def cli_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """This process's environment for a CLI child: ``LEDGERLEARN_HOME`` set to ``home``
    (a test's own deployments and keys), no ``LEDGERLEARN_KEY`` (a developer's key must
    not sign for a dev account), Hugging Face offline (the embedders are cached), plus
    ``extra``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **extra}
    if home is not None:
        env["LEDGERLEARN_HOME"] = str(home)
    env.pop("LEDGERLEARN_KEY", None)
    return env


def complete_cli(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``ledgerlearn ARGS`` to completion, whatever its exit status (for tests of
    refusals: the caller asserts on ``returncode`` and ``stderr``)."""
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)


def run_cli(args: list[str], env: dict[str, str], timeout: float = 60) -> str:
    """Run ``ledgerlearn ARGS`` and return its stdout; a non-zero exit fails the test
    with its stderr (and the end of its stdout)."""
    done = complete_cli(args, env, timeout)
    assert done.returncode == 0, done.stderr + done.stdout[-TAIL:]
    return done.stdout


def spawn_cli(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start ``ledgerlearn ARGS`` in the background, stdout and stderr into ``log`` (a
    file, not a pipe: nobody has to drain it, and a failure shows it)."""
    with log.open("w") as out:
        return subprocess.Popen([*CLI, *args], env=env, stdout=out, stderr=subprocess.STDOUT)


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


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    """Wait until ``GET url`` answers 200 from the server ``proc`` started; the process
    exiting first, or no answer within ``timeout`` s, fails the test with its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{url}: the server exited ({proc.returncode}):\n"
                                 f"{log.read_text()[-TAIL:]}")  # fmt: skip
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    tail = log.read_text()[-TAIL:]
    raise AssertionError(f"nothing answered at {url} within {timeout} s:\n{tail}")


def stop_all(procs: list[subprocess.Popen], timeout: float = 10) -> None:
    """Stop every process still running (SIGTERM, then SIGKILL after ``timeout`` s), by
    pid, and reap it."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(name="anvil_url", scope="module")
def anvil_fixture() -> Iterator[str]:
    """An anvil node for the module's tests (import this fixture by name); stopped with
    SIGINT at the end."""
    process, url = start_anvil()
    yield url
    stop(process)
