"""Measure the contribution estimators on utilities from real logistic-regression models.

Part 1 (accuracy vs cost): a 10-trainer round on synthetic 3-class data with deliberately
different quality (data sizes, label noise, a free-rider with a zero update, a pair with
identical data). Exact Shapley (1024 evaluations) is the reference; the default estimator
(GTG-Shapley, ``marketplace.contribution.estimate``), TMC and leave-one-out are compared by
Spearman rank correlation and evaluation count, over several seeds.

Part 2 (scale): a 100-trainer round with the same batched evaluator; wall-clock seconds of
the default estimator per round.

Run: ``.venv/bin/python scripts/bench_contribution_core.py [--seeds 10] [--big-n 100]``
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.datasets import make_classification

from marketplace.contribution import (
    GTGConfig,
    SubsetUtility,
    TMCConfig,
    estimate,
    exact_shapley,
    leave_one_out,
    tmc_shapley,
    to_payable,
)

logger = logging.getLogger("bench_contribution_core")

FEATURES = 20
CLASSES = 3
BUDGET = 153  # 15% of exact Shapley's 1024 evaluations at n = 10


@dataclass
class Round:
    """One federated round: global params, inlier updates, weights, validation data."""

    global_params: torch.Tensor
    updates: torch.Tensor
    weights: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    labels: list[str]


def _with_bias(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1)


def make_evaluator(x_val: torch.Tensor, y_val: torch.Tensor):
    """Batched softmax-regression evaluator: params ``[m, (F+1)*C]`` -> accuracy and loss."""
    xb = _with_bias(x_val)

    def evaluate_batch(params: torch.Tensor) -> dict[str, torch.Tensor]:
        w = params.reshape(params.shape[0], CLASSES, FEATURES + 1)
        logits = torch.einsum("vf,mcf->mvc", xb, w)
        acc = (logits.argmax(dim=2) == y_val).to(torch.float64).mean(dim=1)
        logp = torch.log_softmax(logits, dim=2)
        loss = -logp.gather(2, y_val.expand(params.shape[0], -1)[:, :, None]).mean(dim=(1, 2))
        return {"accuracy": acc, "loss": loss.to(torch.float64)}

    return evaluate_batch


def local_update(
    g: torch.Tensor, x: torch.Tensor, y: torch.Tensor, steps: int = 30, lr: float = 0.5
) -> torch.Tensor:
    """Full-batch gradient descent on softmax cross-entropy from ``g``; returns local - g."""
    w = g.clone().reshape(CLASSES, FEATURES + 1).requires_grad_(True)
    xb = _with_bias(x)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(xb @ w.T, y)
        (grad,) = torch.autograd.grad(loss, w)
        with torch.no_grad():
            w -= lr * grad
    return w.detach().reshape(-1) - g


def make_round(sizes, noise, dup_pairs, free_riders, seed: int, val: int = 1000) -> Round:
    """Trainers with given data sizes and label-noise rates; duplicates copy a dataset."""
    n = len(sizes)
    total = int(sum(sizes)) + val
    x, y = make_classification(
        n_samples=total,
        n_features=FEATURES,
        n_informative=8,
        n_redundant=4,
        n_classes=CLASSES,
        class_sep=0.8,
        flip_y=0.02,
        random_state=seed,
    )
    x_t = torch.tensor(x, dtype=torch.float32)
    y_t = torch.tensor(y, dtype=torch.int64)
    gen = np.random.default_rng(seed)
    g = torch.zeros(CLASSES * (FEATURES + 1))
    updates, labels, offset = [], [], val
    data: list[tuple[torch.Tensor, torch.Tensor]] = []
    for i in range(n):
        if i in dup_pairs:
            xi, yi = data[dup_pairs[i]]
            labels.append(f"dup-of-{dup_pairs[i]}")
        else:
            xi = x_t[offset : offset + sizes[i]]
            yi = y_t[offset : offset + sizes[i]].clone()
            offset += sizes[i]
            flip = torch.from_numpy(gen.random(sizes[i]) < noise[i])
            yi[flip] = torch.from_numpy(gen.integers(0, CLASSES, int(flip.sum())))
            labels.append(f"n={sizes[i]},noise={noise[i]:.1f}")
        data.append((xi, yi))
        if i in free_riders:
            updates.append(torch.zeros_like(g))
            labels[-1] = "free-rider"
        else:
            updates.append(local_update(g, xi, yi))
    return Round(
        g,
        torch.stack(updates),
        torch.tensor(sizes, dtype=torch.float64),
        x_t[:val],
        y_t[:val],
        labels,
    )


def ten_player_round(seed: int) -> Round:
    """The 10-trainer round of part 1."""
    sizes = [400, 250, 150, 80, 40, 200, 300, 120, 120, 200]
    noise = [0.0, 0.0, 0.0, 0.0, 0.0, 0.3, 0.6, 0.0, 0.0, 0.0]
    return make_round(sizes, noise, dup_pairs={8: 7}, free_riders={9}, seed=seed)


def hundred_player_round(n: int, seed: int) -> Round:
    """A round of ``n`` trainers with random sizes and noise (a tenth are free-riders)."""
    gen = np.random.default_rng(seed + 1)
    sizes = gen.integers(20, 200, n).tolist()
    noise = (gen.random(n) * 0.6).round(1).tolist()
    free = set(gen.choice(n, n // 10, replace=False).tolist())
    return make_round(sizes, noise, dup_pairs={}, free_riders=free, seed=seed, val=2000)


def utility_of(r: Round, metric: str) -> SubsetUtility:
    return SubsetUtility(
        r.global_params, r.updates, r.weights, make_evaluator(r.x_val, r.y_val), metric=metric
    )


def rho(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(spearmanr(a.numpy(), b.numpy()).statistic)


def part1(seeds: int, metric: str, game_seed: int) -> None:
    r = ten_player_round(game_seed)
    exact = exact_shapley(utility_of(r, metric))
    print(
        f"\n== 10 trainers, metric={metric}, game seed {game_seed}: exact Shapley "
        f"({exact.evaluations} evaluations), U(empty)={exact.details['v_empty']:.4f} "
        f"U(all)={exact.details['v_all']:.4f}"
    )
    loo = leave_one_out(utility_of(r, metric))
    for label, e, lo in zip(r.labels, exact.values, loo.values, strict=True):
        print(f"   {label:22s} exact {e:+.5f}  loo {lo:+.5f}")
    print(f"   payable exact: {[round(v, 4) for v in to_payable(exact.values).tolist()]}")
    print(f"   LOO: spearman {rho(loo.values, exact.values):.3f}, {loo.evaluations} evaluations")
    runs = {
        "gtg (default)": lambda u, s: estimate(u, seed=s),
        "gtg default, capped at 15%": lambda u, s: estimate(
            u, GTGConfig(max_evaluations=BUDGET), seed=s
        ),
        "gtg paper (guided, no anti/CI)": lambda u, s: estimate(
            u, GTGConfig(design="guided", antithetic=False, confidence_z=None), seed=s
        ),
        "tmc": lambda u, s: tmc_shapley(u, TMCConfig(), seed=s),
    }
    for name, fn in runs.items():
        rhos, evals, perms = [], [], []
        for s in range(seeds):
            res = fn(utility_of(r, metric), s)
            rhos.append(rho(res.values, exact.values))
            evals.append(res.evaluations)
            perms.append(res.details.get("permutations", 0))
        print(
            f"   {name:30s} spearman mean {np.mean(rhos):.3f} min {np.min(rhos):.3f}; "
            f"evaluations mean {np.mean(evals):.0f} max {np.max(evals)} "
            f"({100 * np.max(evals) / exact.evaluations:.1f}% of exact); "
            f"permutations mean {np.mean(perms):.0f}"
        )


def part2(n: int, metric: str) -> None:
    r = hundred_player_round(n, seed=7)
    u = utility_of(r, metric)
    t0, c0 = time.perf_counter(), time.process_time()
    res = estimate(u, seed=0)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"\n== {n} trainers, metric={metric}: default estimator {dt:.1f} s/round "
        f"(CPU {cpu:.1f} s), "
        f"{res.evaluations} evaluations in {u.batch_calls} batch calls, "
        f"{res.details['permutations']} permutations, stop={res.details['stop']}, "
        f"U(empty)={res.details['v_empty']:.4f} U(all)={res.details['v_all']:.4f}"
    )
    free = [i for i, lab in enumerate(r.labels) if lab == "free-rider"]
    payable = to_payable(res.values)
    print(
        f"   free-riders' payable share {float(payable[free].sum() / payable.sum()):.4f} "
        f"({len(free)} of {n} trainers)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--game-seeds", type=int, default=3)
    parser.add_argument("--big-n", type=int, default=100)
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--only-big", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(2)
    for metric in () if args.only_big else ("accuracy", "neg_loss"):
        for game_seed in range(args.game_seeds):
            part1(args.seeds, metric, game_seed)
    if not args.skip_big:
        for metric in ("accuracy", "neg_loss"):
            part2(args.big_n, metric)


if __name__ == "__main__":
    main()
