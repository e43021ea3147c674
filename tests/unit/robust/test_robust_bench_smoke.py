"""Smoke test of ``scripts/bench_robust.py``: its core runs a tiny grid and returns rows of
the published schema with valid accuracies, and the goal summary reads them."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "bench_robust.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_robust", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_robust"] = module
    spec.loader.exec_module(module)
    return module


def test_tiny_grid_rows_and_summary(bench: ModuleType) -> None:
    settings = bench.BenchSettings(trainers=6, rounds=2, epochs=1, seed=3)
    grid = bench.scenarios(["digits"], ["iid"], ["sign_flip"], [0.3])
    tasks = bench.tasks_for(grid, ["fedavg", "default"], settings)
    rows = bench.run_tasks(tasks, workers=1)

    assert len(rows) == 5  # 2 scenarios x 2 rules + the honest-only reference under attack
    for row in rows:
        assert tuple(row) == bench.ROW_KEYS
        assert 0.0 <= row["final_accuracy"] <= 1.0 and not math.isnan(row["final_accuracy"])
        assert row["rounds"] == 2 and row["seconds"] > 0
    assert {(r["attack"], r["aggregator"]) for r in rows} == {
        ("none", "fedavg"),
        ("none", "default"),
        ("sign_flip", "fedavg"),
        ("sign_flip", "default"),
        ("sign_flip", "honest_only"),
    }
    [entry] = bench.summarize(rows)
    assert set(entry["worst_at_30"]) == {"fedavg", "default", "honest_only"}
    assert entry["clean_fedavg"] == next(
        r["final_accuracy"] for r in rows if r["attack"] == "none" and r["aggregator"] == "fedavg"
    )
    assert isinstance(entry["goal_met"], bool)


def test_rule_params_follow_the_declared_fraction(bench: ModuleType) -> None:
    settings = bench.BenchSettings()
    assert bench.rule_params("krum", settings) == {"f": 6}
    assert bench.rule_params("trimmed_mean", settings) == {"beta": 0.3}
    # the default's trust anchor trains like the trainers do (FLTrust's assumption)
    assert bench.rule_params("default", settings) == {
        "anchor_epochs": settings.epochs,
        "anchor_lr": settings.lr,
        "anchor_momentum": settings.momentum,
        "anchor_batch_size": settings.batch_size,
    }
