"""Start-up time of the ``ledgerlearn`` command: ``--help``, ``--version`` and a subcommand's
``--help``, each run as a fresh subprocess (what a user waits for at the prompt).

Each command runs ``--runs`` times (after one untimed warm-up run that fills the OS file
cache); the table and ``benchmarks/results/cli.json`` give the median, min and max wall
time, and the median CPU time (user + system) of the process: on a busy machine the wall
time measures the other processes too, while the CPU time is what an idle machine would
wait (a single-threaded start-up). The goal (issue 15): ``--help`` and ``--version``
return in <= 0.5 s on an idle machine, which is possible only while no heavy module
(torch, web3, eth_account, ...) is imported at start-up
(``tests/unit/cli/test_cli_startup.py`` guards that).

Usage::

    nice -n 10 .venv/bin/python scripts/bench_cli.py            # 7 runs each, ~10 s
    .venv/bin/python scripts/bench_cli.py --runs 3 --out /tmp/cli.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
GOAL_S = 0.5
#: (label, arguments after ``ledgerlearn``); the goal applies to the first two.
COMMANDS: list[tuple[str, list[str]]] = [
    ("--help", ["--help"]),
    ("--version", ["--version"]),
    ("trainer register --help", ["trainer", "register", "--help"]),
]


def time_command(args: list[str], runs: int) -> tuple[list[float], list[float]]:
    """(wall seconds, CPU seconds) of ``runs`` fresh ``python -m marketplace.cli.main ARGS``
    processes."""
    cmd = [sys.executable, "-m", "marketplace.cli.main", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    subprocess.run(cmd, env=env, check=True, capture_output=True)  # warm the file cache
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command")
    parser.add_argument("--out", type=Path, default=RESULTS / "cli.json")
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    for label, argv in COMMANDS:
        times, cpu = time_command(argv, args.runs)
        rows.append(
            {
                "command": f"ledgerlearn {label}",
                "median_s": round(statistics.median(times), 3),
                "min_s": round(min(times), 3),
                "max_s": round(max(times), 3),
                "cpu_median_s": round(statistics.median(cpu), 3),
                "runs": len(times),
                "goal_s": GOAL_S if label in ("--help", "--version") else None,
            }
        )
    table = Table(title=f"ledgerlearn start-up ({args.runs} runs each, median)")
    for col in ("command", "median", "min", "max", "CPU", "goal"):
        table.add_column(col)
    for r in rows:
        goal = "-" if r["goal_s"] is None else f"<= {r['goal_s']} s"
        if r["goal_s"] is not None:
            goal += " ok" if r["median_s"] <= r["goal_s"] else " MISSED"
        table.add_row(
            r["command"],
            f"{r['median_s']:.3f} s",
            f"{r['min_s']:.3f}",
            f"{r['max_s']:.3f}",
            f"{r['cpu_median_s']:.3f} s",
            goal,
        )
    console = Console()
    console.print(table)
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load > cpus / 2:
        console.print(
            f"[yellow]load average {load:.1f} on {cpus} CPUs: the machine is busy, the goal is "
            "for an idle one; rerun when it is quiet[/]"
        )
    out = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
        },
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
