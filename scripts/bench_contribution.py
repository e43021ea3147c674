"""Benchmark the contribution estimators on real federated rounds; writes
``benchmarks/results/contribution.json`` and prints a table.

Part 1 (accuracy vs cost, n = 10): a round of 10 trainers of deliberately different
quality on digits and MNIST-1D (the product's MLP, ``marketplace.learning``): data sizes
300..30, two with label noise (30%, 60%), one duplicated-data pair, one free rider
(zero update). Exact Shapley (1024 evaluations) is the reference; every estimator is
scored by its Spearman rank correlation with it, its utility evaluations and seconds,
over several estimator seeds and two round seeds, for both utilities.

Part 2 (scale, n = 100): seconds per round of the default estimator (GTG-Shapley with
the control variate) on MNIST-1D with 100 trainers, on this machine.

Run: ``.venv/bin/python scripts/bench_contribution.py [--seeds 5] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from marketplace.contribution import (
    ContributionResult,
    GTGConfig,
    SubsetUtility,
    TMCConfig,
    estimate,
    exact_shapley,
    gtg_shapley,
    leave_one_out,
    tmc_shapley,
)
from marketplace.learning import (
    Dataset,
    ModelSpec,
    TrainConfig,
    evaluate_many,
    init_params,
    load_dataset,
    local_train,
)
from marketplace.learning.train import single_thread

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "contribution.json"
BUDGET = 153  # 15% of exact Shapley's 1024 evaluations at n = 10
SIZES = [300, 200, 120, 60, 30, 150, 150, 100, 100, 100]
NOISE = [0.0, 0.0, 0.0, 0.0, 0.0, 0.3, 0.6, 0.0, 0.0, 0.0]
DUPLICATE = {8: 7}  # trainer 8 holds trainer 7's data
FREE_RIDER = 9
LABELS = [
    "n=300",
    "n=200",
    "n=120",
    "n=60",
    "n=30",
    "n=150 noise 30%",
    "n=150 noise 60%",
    "n=100",
    "n=100 (copy of 7)",
    "free rider",
]

Round = tuple[ModelSpec, torch.Tensor, torch.Tensor, torch.Tensor, Dataset]
Estimator = Callable[[SubsetUtility, int], ContributionResult]

ESTIMATORS: dict[str, Estimator] = {
    "gtg (default: control variate)": lambda u, s: estimate(u, seed=s),
    "gtg default, capped at 15%": lambda u, s: estimate(
        u, GTGConfig(max_evaluations=BUDGET), seed=s
    ),
    "gtg without control variate, 15%": lambda u, s: gtg_shapley(
        u, GTGConfig(control_variate=False, max_evaluations=BUDGET), seed=s
    ),
    "gtg paper (Liu et al. 2022)": lambda u, s: gtg_shapley(u, GTGConfig.paper(), seed=s),
    "tmc (Ghorbani & Zou 2019)": lambda u, s: tmc_shapley(u, TMCConfig(), seed=s),
    "leave-one-out": lambda u, s: leave_one_out(u),
}


def _noisy(data: Dataset, rate: float, rng: np.random.Generator) -> Dataset:
    y = data.y.clone()
    flip = torch.from_numpy(rng.random(len(y)) < rate)
    y[flip] = torch.from_numpy(rng.integers(0, data.num_classes, int(flip.sum())))
    return Dataset(data.x, y, data.num_classes, data.input_shape)


def ten_trainer_round(dataset: str, seed: int) -> Round:
    """Part 1's round: the previous global model is one warm-up step on 200 samples."""
    train, validation = load_dataset(dataset, seed)
    spec = ModelSpec.for_data("mlp", train.input_shape, train.num_classes, seed=seed)
    rng = np.random.default_rng(seed)
    order = torch.from_numpy(rng.permutation(len(train)))
    g = init_params(spec)
    g = g + local_train(spec, g, train.subset(order[:200]), TrainConfig(lr=0.1, seed=seed))
    offset, shards, updates = 200, [], []
    for i, (size, noise) in enumerate(zip(SIZES, NOISE, strict=True)):
        if i in DUPLICATE:
            data = shards[DUPLICATE[i]]
        else:
            data = train.subset(order[offset : offset + size])
            offset += size
            data = _noisy(data, noise, rng) if noise else data
        shards.append(data)
        cfg = TrainConfig(epochs=2, lr=0.2, seed=seed + i)
        updates.append(torch.zeros_like(g) if i == FREE_RIDER else local_train(spec, g, data, cfg))
    weights = torch.tensor([float(len(d)) for d in shards], dtype=torch.float64)
    return spec, g, torch.stack(updates), weights, validation


def hundred_trainer_round(n: int, seed: int) -> Round:
    """Part 2's round: ``n`` trainers of 10..70 MNIST-1D samples, a tenth of them noisy."""
    train, validation = load_dataset("mnist1d", seed)
    spec = ModelSpec.for_data("mlp", train.input_shape, train.num_classes, seed=seed)
    rng = np.random.default_rng(seed)
    order = torch.from_numpy(rng.permutation(len(train)))
    g = init_params(spec)
    offset, updates, weights = 0, [], []
    for i in range(n):
        size = int(rng.integers(10, 70))
        data = train.subset(order[offset : offset + size])
        offset += size
        data = _noisy(data, 0.5, rng) if i % 10 == 0 else data
        updates.append(local_train(spec, g, data, TrainConfig(lr=0.2, seed=seed + i)))
        weights.append(float(size))
    return spec, g, torch.stack(updates), torch.tensor(weights, dtype=torch.float64), validation


def utility(r: Round, metric: str) -> SubsetUtility:
    spec, g, updates, weights, validation = r

    def evaluate_batch(params: torch.Tensor) -> dict[str, torch.Tensor]:
        accuracy, loss = evaluate_many(spec, params, validation)
        return {"accuracy": accuracy, "loss": loss}

    return SubsetUtility(g, updates, weights, evaluate_batch, metric=metric)  # type: ignore[arg-type]


def part1(seeds: int, round_seeds: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for dataset in ("digits", "mnist1d"):
        for round_seed in range(round_seeds):
            r = ten_trainer_round(dataset, round_seed)
            for metric in ("neg_loss", "accuracy"):
                t0 = time.perf_counter()
                with single_thread():
                    exact = exact_shapley(utility(r, metric))
                exact_s = time.perf_counter() - t0
                rows.append(
                    {
                        "dataset": dataset,
                        "round_seed": round_seed,
                        "metric": metric,
                        "estimator": "exact",
                        "spearman_mean": 1.0,
                        "spearman_min": 1.0,
                        "evaluations_mean": exact.evaluations,
                        "evaluations_max": exact.evaluations,
                        "seconds_mean": exact_s,
                        "exact_values": dict(zip(LABELS, exact.values.tolist(), strict=True)),
                    }
                )
                for name, run in ESTIMATORS.items():
                    rhos, evals, secs = [], [], []
                    for s in range(seeds if name != "leave-one-out" else 1):
                        u = utility(r, metric)
                        t0 = time.perf_counter()
                        with single_thread():  # as the round pipeline runs it
                            res = run(u, s)
                        secs.append(time.perf_counter() - t0)
                        rhos.append(float(spearmanr(res.values, exact.values).statistic))
                        evals.append(res.evaluations)
                    rows.append(
                        {
                            "dataset": dataset,
                            "round_seed": round_seed,
                            "metric": metric,
                            "estimator": name,
                            "spearman_mean": float(np.mean(rhos)),
                            "spearman_min": float(np.min(rhos)),
                            "evaluations_mean": float(np.mean(evals)),
                            "evaluations_max": int(np.max(evals)),
                            "seconds_mean": float(np.mean(secs)),
                        }
                    )
                    logging.info("%s", rows[-1])
    return rows


def part2(n: int) -> dict[str, Any]:
    r = hundred_trainer_round(n, seed=0)
    u = utility(r, "neg_loss")
    t0 = time.perf_counter()
    with single_thread():  # as the round pipeline runs it
        res = estimate(u, seed=0)
    seconds = time.perf_counter() - t0
    return {
        "trainers": n,
        "dataset": "mnist1d",
        "metric": "neg_loss",
        "estimator": "gtg (default: control variate)",
        "seconds_per_round": seconds,
        "evaluations": res.evaluations,
        "permutations": res.details.get("permutations"),
        "stop": res.details.get("stop"),
        "surrogate_r2": res.details.get("surrogate_r2"),
    }


def summary_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (metric, estimator): Spearman mean/min and evaluations over all rounds."""
    out = []
    for metric in ("neg_loss", "accuracy"):
        names = ["exact", *ESTIMATORS]
        for name in names:
            sel = [x for x in rows if x["metric"] == metric and x["estimator"] == name]
            if not sel:
                continue
            out.append(
                {
                    "metric": metric,
                    "estimator": name,
                    "spearman_mean": float(np.mean([x["spearman_mean"] for x in sel])),
                    "spearman_min": float(np.min([x["spearman_min"] for x in sel])),
                    "evaluations_mean": float(np.mean([x["evaluations_mean"] for x in sel])),
                    "evaluations_max": int(np.max([x["evaluations_max"] for x in sel])),
                    "percent_of_exact_max": 100.0
                    * float(np.max([x["evaluations_max"] for x in sel]))
                    / 1024,
                    "seconds_mean": float(np.mean([x["seconds_mean"] for x in sel])),
                }
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="estimator seeds per round")
    parser.add_argument("--round-seeds", type=int, default=2)
    parser.add_argument("--big-n", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="1 seed, 1 round, n = 30")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.quick:
        args.seeds, args.round_seeds, args.big_n = 1, 1, 30
    torch.set_num_threads(2)
    rows = part1(args.seeds, args.round_seeds)
    table = summary_table(rows)
    big = part2(args.big_n)
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_threads": torch.get_num_threads(),
        "budget_15_percent": BUDGET,
        "summary": table,
        "rounds": rows,
        "large_round": big,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    header = f"{'metric':9s} {'estimator':34s} {'rho mean':>8s} {'rho min':>8s} "
    header += f"{'evals':>7s} {'max %':>6s} {'s':>6s}"
    print(header)
    for x in table:
        print(
            f"{x['metric']:9s} {x['estimator']:34s} {x['spearman_mean']:8.3f} "
            f"{x['spearman_min']:8.3f} {x['evaluations_mean']:7.0f} "
            f"{x['percent_of_exact_max']:6.1f} {x['seconds_mean']:6.2f}"
        )
    print(
        f"n={big['trainers']}: default estimator {big['seconds_per_round']:.1f} s/round, "
        f"{big['evaluations']} evaluations, stop={big['stop']}"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
