"""``ledgerlearn --help`` and ``--version`` must not import the heavy libraries.

Start-up time is what the user waits for at the prompt (``scripts/bench_cli.py`` measures
it: 1.3 s with web3/eth_account imported at start-up, 0.2 s without). Timing is noisy, so
this test checks its cause instead: after importing the CLI app and rendering the help of
every command (which makes typer resolve every option), no heavy module is loaded. It
runs in a fresh interpreter because this pytest process may have imported them already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

#: Top-level packages that each cost 0.1-3 s to import. ``py_ecc`` alone is allowed:
#: ``marketplace/__init__`` imports its (lazy, 20 ms) package on purpose to undo its
#: recursion-limit side effect; its curve modules (``py_ecc.bn128``, ...) are heavy.
HEAVY = ("torch", "web3", "eth_account", "numpy", "sentence_transformers", "eth_tester")

_PROBE = """
import json, sys
import typer
from typer.testing import CliRunner
from marketplace.cli.main import app

def paths(cmd, prefix):
    yield prefix
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from paths(sub, [*prefix, name])

runner = CliRunner()
codes = {}
for path in [["--version"], *(p + ["--help"] for p in paths(typer.main.get_command(app), []))]:
    codes[" ".join(path)] = runner.invoke(app, path).exit_code
print(json.dumps({"codes": codes, "modules": sorted(sys.modules)}))
"""


def _probe() -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_help_of_every_command_imports_no_heavy_module() -> None:
    probe = _probe()
    assert len(probe["codes"]) > 30, "the probe should have walked every command"
    assert set(probe["codes"].values()) == {0}, probe["codes"]
    loaded = [
        m
        for m in probe["modules"]
        if m.split(".")[0] in HEAVY or (m.startswith("py_ecc.") and m != "py_ecc")
    ]
    assert loaded == [], f"imported at start-up (move into the command function): {loaded}"
