"""Smoke test of ``scripts/bench_robust.py``: its core runs a tiny grid and returns rows of
the published schema with valid accuracies, and the goal summary reads them."""

from __future__ import annotations

import importlib.util
import json
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
        assert tuple(row) == bench.RUN_KEYS and row["seed"] == 3
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


def test_seeds_are_averaged_and_judged_on_the_mean(bench: ModuleType) -> None:
    settings = bench.BenchSettings(trainers=6, rounds=1, epochs=1)
    grid = bench.scenarios(["digits"], ["iid"], ["sign_flip"], [0.3])
    tasks = bench.tasks_for(grid, ["fedavg"], settings, seeds=[4, 5])
    assert sorted({t.settings.seed for t in tasks}) == [4, 5] and len(tasks) == 6
    runs = bench.run_tasks(tasks, workers=1)
    means = bench.average_seeds(runs)
    assert len(means) == 3
    for row in means:
        assert tuple(row) == bench.MEAN_KEYS and row["seeds"] == [4, 5]
        mine = [
            r["final_accuracy"]
            for r in runs
            if (r["attack"], r["aggregator"]) == (row["attack"], row["aggregator"])
        ]
        assert row["accuracy_by_seed"] == mine
        assert row["final_accuracy"] == pytest.approx(sum(mine) / 2)
    per_seed = bench.summarize_per_seed(runs)
    assert set(per_seed) == {"4", "5"}
    clean = [r for r in means if r["attack"] == "none"][0]["final_accuracy"]
    [entry] = bench.summarize(means)
    assert entry["clean_fedavg"] == clean


def test_goal_reachability_follows_the_honest_only_bound(bench: ModuleType) -> None:
    def row(attack: str, aggregator: str, acc: float) -> dict[str, object]:
        fraction = 0.0 if attack == "none" else 0.3
        return dict(
            dataset="d", partition="p", attack=attack, fraction=fraction,
            aggregator=aggregator, final_accuracy=acc, rounds=1, seconds=1.0,
        )  # fmt: skip

    rows = [row("none", "fedavg", 0.50), row("sign_flip", "fedavg", 0.20)]
    reachable = rows + [row("sign_flip", "honest_only", 0.48), row("sign_flip", "default", 0.47)]
    [entry] = bench.summarize(reachable)
    assert entry["goal_reachable"] and entry["goal_met"]
    assert entry["default_below_honest_only"] == pytest.approx(0.01)
    beyond = rows + [row("sign_flip", "honest_only", 0.46), row("sign_flip", "default", 0.46)]
    [entry] = bench.summarize(beyond)
    assert not entry["goal_reachable"] and not entry["goal_met"]


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


def test_merge_combines_per_seed_runs_and_refuses_seed_means(
    bench: ModuleType, tmp_path: Path
) -> None:
    def run(seed: int, acc: float, attack: str = "none") -> dict[str, object]:
        return dict(
            dataset="digits", partition="iid", attack=attack,
            fraction=0.0 if attack == "none" else 0.3, aggregator="fedavg",
            final_accuracy=acc, rounds=1, seconds=1.0, seed=seed,
        )  # fmt: skip

    first, second = tmp_path / "a.jsonl", tmp_path / "b.json"
    first.write_text("\n".join(json.dumps(r) for r in (run(0, 0.5), run(1, 0.7))) + "\n")
    second.write_text(json.dumps([run(1, 0.9), run(2, 0.4)]))  # seed 1 again: later wins
    out = tmp_path / "out"
    assert bench.main(["--merge", str(first), str(second), "--out", str(out)]) == 0
    [row] = json.loads((out / "robust.json").read_text())
    assert row["seeds"] == [0, 1, 2] and row["accuracy_by_seed"] == [0.5, 0.9, 0.4]
    assert row["final_accuracy"] == pytest.approx(0.6)
    assert len(json.loads((out / "robust_runs.json").read_text())) == 3
    summary = json.loads((out / "robust_summary.json").read_text())
    assert summary["seeds"] == [0, 1, 2] and set(summary["goal_per_seed"]) == {"0", "1", "2"}
    assert (out / "robust.png").stat().st_size > 0
    with pytest.raises(SystemExit, match="without a seed"):
        bench.main(["--merge", str(out / "robust.json"), "--out", str(tmp_path / "bad")])
    with pytest.raises(SystemExit, match="comma list of integers"):
        bench.main(["--seeds", "0,x"])
