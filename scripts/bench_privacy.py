"""Leakage benchmark of the update-privacy settings (issue 18); writes
``benchmarks/results/privacy.json``, ``benchmarks/results/privacy.png`` and prints a table.

For every privacy setting, what an observer of one trainer's update gets is attacked
(:mod:`marketplace.privacy.leakage`), beside the accuracy the setting costs:

* settings: ``plain`` (what main published: the update in clear, exact sample count, batch
  order from public values), ``sealed / outside`` (the default, seen by anyone who fetches a
  CID: ciphertext, the public header, the aggregate models), ``sealed / reader`` (the same
  update as the aggregator sees it), ``DP eps=E in clear`` (``public_updates`` with DP-SGD,
  E = 2, 4, 8 over 10 rounds of 16 local steps);
* attacks: the analytic first-layer attack on default shards (6 iid digits shards of ~240)
  and on small shards (1, 4, 8 images), gradient inversion (Geiping et al. 2020) on shards
  of 1 and 4 images, label-histogram inference, loss-threshold membership inference on the
  trainer's model and on the aggregate after 10 rounds, the published sample count, and
  exact replay of the training on the true data with the public seed. An image counts as
  recovered when a reconstruction is closer to it (PSNR) than the nearest image of the
  public same-distribution data (digits' test split);
* accuracy at 10 rounds on digits (6 trainers, the default robust rule, ``simulate``),
  with the DP learning rate, sampling rate and clip tuned at epsilon 8 on seed 0, then
  every row on seeds 0, 1, 2.

Run: ``nice -n 10 .venv/bin/python scripts/bench_privacy.py [--quick]``
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

import torch

from marketplace.learning import (
    Dataset,
    ModelSpec,
    TrainConfig,
    init_params,
    load_dataset,
    local_train,
    partition,
)
from marketplace.learning.privacy_spec import PrivacySettings
from marketplace.nodes.simulate import SimulationConfig, simulate
from marketplace.privacy.declare import project_privacy
from marketplace.privacy.envelope import is_sealed
from marketplace.privacy.keys import ReaderKey
from marketplace.privacy.leakage import (
    class_distribution,
    first_layer_inversion,
    gradient_inversion,
    label_histogram,
    membership_auc,
    psnr,
    recovered_images,
    total_variation,
)
from marketplace.privacy.updates import (
    encode_update,
    open_blob,
    private_train_config,
    update_metadata,
)
from marketplace.rounds.codec import KIND_UPDATE, decode_params, encode_params
from marketplace.rounds.seeds import derive_seed

ROOT = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
TRAINERS, ROUNDS, STEPS = 6, 10, 16
EPSILONS = (2.0, 4.0, 8.0)
BASE = TrainConfig(epochs=2, lr=0.2, batch_size=32)  # `ledgerlearn simulate`/demo recipe
READER = ReaderKey.from_eth_key(b"\x11" * 32)
SMALL = (1, 4, 8)
GI_SIZES = (1, 4)


# ----------------------------------------------------------------- accuracy (simulate)


def accuracy(seed: int, dp: dict[str, float] | None, epsilon: float | None) -> float | None:
    """Validation accuracy after 10 rounds of the whole protocol on the embedded chain."""
    extra: dict[str, Any] = {}
    if dp is not None:
        extra = {
            "dp_epsilon": epsilon,
            "local_steps": STEPS,
            "dp_sample_rate": dp["sample_rate"],
            "dp_clip": dp["clip"],
        }
    config = SimulationConfig(
        trainers=TRAINERS,
        rounds=ROUNDS,
        dataset="digits",
        epochs=BASE.epochs,
        lr=dp["lr"] if dp else BASE.lr,
        seed=seed,
        contribution="equal",  # scores do not change the model; skip their cost
        **extra,
    )
    try:
        return float(simulate(config).rounds[-1].metrics["accuracy"])
    except RuntimeError as exc:  # the default rule can crash when it drops every update
        logging.warning("simulation %s crashed: %s", config.model_dump(), exc)
        return None


def tune(quick: bool) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Grid over (lr, sampling rate, clip) at epsilon 8, seed 0; returns the best."""
    lrs, rates, clips = (
        ((1.0,), (0.2,), (1.0,)) if quick else ((0.5, 1.0, 2.0), (0.1, 0.2, 0.3), (1.0,))
    )
    grid = []
    for lr in lrs:
        for rate in rates:
            for clip in clips:
                dp = {"lr": lr, "sample_rate": rate, "clip": clip}
                grid.append({**dp, "accuracy": accuracy(0, dp, 8.0)})
                logging.info("tune %s", grid[-1])
    best = max(grid, key=lambda g: g["accuracy"] or -1.0)
    if not quick:
        for clip in (0.5, 2.0):
            dp = {"lr": best["lr"], "sample_rate": best["sample_rate"], "clip": clip}
            grid.append({**dp, "accuracy": accuracy(0, dp, 8.0)})
            logging.info("tune %s", grid[-1])
        best = max(grid, key=lambda g: g["accuracy"] or -1.0)
    return {k: best[k] for k in ("lr", "sample_rate", "clip")}, grid


# ----------------------------------------------------------------- leakage (pure)


class Setting:
    """One privacy setting as the trainer applies it and an observer sees it."""

    def __init__(
        self, name: str, privacy: PrivacySettings | None, lr: float, outside: bool
    ) -> None:
        self.name, self.privacy, self.outside = name, privacy, outside
        self.spec = ModelSpec.for_data("mlp", (8, 8), 10, seed=0, privacy=privacy)
        self.base = BASE.model_copy(update={"lr": lr})

    def config(self, index: int, round_: int, n: int) -> TrainConfig:
        if self.privacy is None:  # main: the seed from public values
            return self.base.model_copy(update={"seed": derive_seed("train", 1, round_, index, 0)})
        spec = self.spec
        if n < self.privacy.min_samples:  # attack small shards anyway (the defaults refuse)
            spec = spec.model_copy(
                update={"privacy": self.privacy.model_copy(update={"min_samples": 1})}
            )
        return private_train_config(spec, self.base, b"trainer-%d" % index, 1, round_, index, n)

    def steps(self, n: int) -> int:
        if self.privacy is not None and self.privacy.local_steps is not None:
            return self.privacy.local_steps
        return self.base.epochs * -(-n // self.base.batch_size)

    def observed(
        self, update: torch.Tensor, round_: int, n: int
    ) -> tuple[torch.Tensor | None, str | None]:
        """What an observer decodes from the stored blob, and the sample count it reads."""
        base = {"kind": KIND_UPDATE, "project": "1", "round": str(round_)}
        meta = update_metadata(self.spec, base, min(round_, ROUNDS), n)
        blob = encode_update(self.spec, encode_params(self.spec, update, meta), meta, b"t")
        if self.outside:
            assert is_sealed(blob)
            try:
                decode_params(self.spec, blob)
                raise AssertionError("an outside observer decoded a sealed update")
            except Exception:  # noqa: BLE001 - the expected outcome: ciphertext
                count = meta.get("num_samples")  # the public header says what it says
                return None, count
        inner, _public = open_blob(self.spec, blob, READER)  # the reader opens it
        vector, meta = decode_params(self.spec, inner)
        return vector, meta.get("num_samples")


def fedavg_rounds(
    setting: Setting, start: torch.Tensor, shards: list[Dataset], rounds: int
) -> torch.Tensor:
    params = start.clone()
    for r in range(1, rounds + 1):
        updates = [
            local_train(setting.spec, params, d, setting.config(i, r, len(d)))
            for i, d in enumerate(shards)
        ]
        params = params + torch.stack(updates).mean(dim=0)
    return params


def leakage(setting: Setting, data: dict[str, Any], quick: bool) -> dict[str, Any]:
    spec, shards, public = setting.spec, data["shards"], data["public"]
    start, round_ = data["start"], 3
    out: dict[str, Any] = {"setting": setting.name}
    recovered = total = 0
    best = -float("inf")
    tvs, aucs, exact, replay = [], [], [], []
    for i, shard in enumerate(shards):
        cfg = setting.config(i, round_, len(shard))
        update = local_train(spec, start, shard, cfg)
        seen, count = setting.observed(update, round_, len(shard))
        exact.append(count == str(len(shard)))
        total += len(shard)
        if seen is None:
            continue
        got, top = recovered_images(first_layer_inversion(spec, seen), shard.x, public.x)
        recovered, best = recovered + got, max(best, top)
        lr = cfg.lr
        hist = label_histogram(spec, start, seen, lr, setting.steps(len(shard)), public.x)
        tvs.append(total_variation(hist, class_distribution(shard.y, 10)))
        aucs.append(membership_auc(spec, start + seen, shard, public))
        guess = BASE.model_copy(update={"lr": lr, "seed": derive_seed("train", 1, round_, i, 0)})
        replay.append(float((local_train(spec, start, shard, guess) - seen).abs().max()))
    out["default_shards"] = {
        "images": total,
        "recovered": recovered if setting.outside is False else 0,
        "best_psnr_db": None if best == -float("inf") else round(best, 1),
        "label_tv": None if not tvs else round(sum(tvs) / len(tvs), 3),
        "membership_auc_update": None if not aucs else round(sum(aucs) / len(aucs), 3),
        "exact_count_published": sum(exact) / len(exact),
        "replay_max_abs_diff": None if not replay else max(replay),
    }
    small: dict[str, Any] = {}
    offset = 0
    for size in SMALL:
        shard = data["spare"].subset(list(range(offset, offset + size)))
        offset += size
        update = local_train(spec, start, shard, setting.config(100 + size, round_, size))
        seen, _ = setting.observed(update, round_, size)
        refused = setting.privacy is not None and size < setting.privacy.min_samples
        if seen is None:
            small[str(size)] = {"recovered": 0, "refused_by_defaults": refused}
            continue
        got, top = recovered_images(first_layer_inversion(spec, seen), shard.x, public.x)
        entry: dict[str, Any] = {
            "recovered": got,
            "best_psnr_db": round(top, 1),
            "refused_by_defaults": refused,
        }
        if size in GI_SIZES and setting.name in data["gi_settings"]:
            rec = gradient_inversion(
                spec,
                start,
                seen / max(1, setting.steps(size)),
                shard.y,
                iterations=60 if quick else 150,
            )
            gi_got, gi_top = recovered_images(rec, shard.x, public.x)
            entry["inversion"] = {"recovered": gi_got, "best_psnr_db": round(gi_top, 1)}
        small[str(size)] = entry
    out["small_shards"] = small
    final = fedavg_rounds(setting, data["init"], shards, ROUNDS)
    members = Dataset(
        torch.cat([s.x for s in shards]), torch.cat([s.y for s in shards]), 10, (8, 8)
    )
    out["membership_auc_aggregate"] = round(membership_auc(spec, final, members, public), 3)
    return out


def picture(settings: list[Setting], data: dict[str, Any], path: Path) -> None:
    """Originals of a shard of 8 images and what each observer reconstructs from them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shard = data["spare"].subset(list(range(5, 13)))
    rows = [("training images", shard.x)]
    for s in settings:
        update = local_train(s.spec, data["start"], shard, s.config(200, 3, len(shard)))
        seen, _ = s.observed(update, 3, len(shard))
        if seen is None:
            base = {"kind": KIND_UPDATE, "project": "1", "round": "3"}
            meta = update_metadata(s.spec, base, 3, len(shard))
            blob = encode_update(s.spec, encode_params(s.spec, update, meta), meta, b"t")
            tail = torch.frombuffer(bytearray(blob[-64 * 8 :]), dtype=torch.uint8).float() / 255
            rows.append((f"{s.name}: ciphertext bytes", tail.reshape(8, 8, 8)))
            continue
        candidates = first_layer_inversion(s.spec, seen).clamp(0, 1)
        match = psnr(shard.x, candidates).argmax(dim=1)
        rows.append((s.name, candidates[match]))
    fig, axes = plt.subplots(len(rows), 8, figsize=(8, 1.15 * len(rows)))
    for r, (label, images) in enumerate(rows):
        for c in range(8):
            ax = axes[r][c]
            ax.imshow(images[c].reshape(8, 8).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
    fig.suptitle("first-layer attack: best reconstruction of each training image", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one DP config, one seed")
    parser.add_argument("--table", action="store_true", help="print the tables of the last run")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads((ROOT / "privacy.json").read_text())))
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("marketplace", "absl", "web3", "eth"):
        logging.getLogger(name).setLevel(logging.ERROR)
    torch.manual_seed(0)
    began = time.perf_counter()
    seeds = (0,) if args.quick else (0, 1, 2)

    tuned, grid = ({"lr": 1.0, "sample_rate": 0.2, "clip": 1.0}, []) if args.quick else tune(False)
    logging.info("tuned DP: %s", tuned)
    rows_acc: dict[str, list[float | None]] = {
        "sealed (default, no DP)": [accuracy(s, None, None) for s in seeds]
    }
    for eps in EPSILONS:
        rows_acc[f"DP eps={eps:g}"] = [accuracy(s, tuned, eps) for s in seeds]
    acc_seconds = time.perf_counter() - began

    train, validation = load_dataset("digits", 0)
    shards_idx = partition(train.y, TRAINERS, "iid", 0)
    # 40 images of each shard are held back for the small-shard attacks (never in a shard)
    shards = [train.subset(idx[40:]) for idx in shards_idx]
    spare = train.subset(torch.cat([idx[:40] for idx in shards_idx]))
    init = init_params(ModelSpec.for_data("mlp", (8, 8), 10, seed=0))
    plain = Setting("plain (main)", None, BASE.lr, outside=False)
    start = fedavg_rounds(plain, init, shards, 2)  # round 3 starts here, as in the issue
    sealed = project_privacy([READER.public_hex])
    settings = [
        plain,
        Setting("sealed (default): outside observer", sealed, BASE.lr, outside=True),
        Setting("sealed (default): reader", sealed, BASE.lr, outside=False),
    ]
    for eps in EPSILONS:
        dp = project_privacy(
            [],
            public_updates=True,
            dp_epsilon=eps,
            rounds=ROUNDS,
            local_steps=STEPS,
            sample_rate=tuned["sample_rate"],
            clip_norm=tuned["clip"],
        )
        settings.append(Setting(f"DP eps={eps:g} in clear", dp, tuned["lr"], outside=False))
    data = {
        "shards": shards,
        "spare": spare,
        "public": validation,
        "start": start,
        "init": init,
        "gi_settings": {"plain (main)", "sealed (default): reader", "DP eps=8 in clear"},
    }
    leak = [leakage(s, data, args.quick) for s in settings]
    prior = sum(
        total_variation(torch.full((10,), 0.1, dtype=torch.float64), class_distribution(s.y, 10))
        for s in shards
    ) / len(shards)
    picture([settings[0], settings[1], settings[-1]], data, ROOT / "privacy.png")
    seconds = time.perf_counter() - began

    def mean(values: list[float | None]) -> float:
        """Mean over the runs that finished; a crashed run counts as accuracy 0."""
        return sum(v or 0.0 for v in values) / len(values)

    base_mean = mean(rows_acc["sealed (default, no DP)"])
    accuracy_rows = {
        name: {
            "per_seed": [None if a is None else round(a, 4) for a in accs],
            "mean": round(mean(accs), 4),
            "loss_points": round(100 * (base_mean - mean(accs)), 2),
        }
        for name, accs in rows_acc.items()
    }
    default = leak[1]
    goals = {
        "outside_observer_recovers_no_image": default["default_shards"]["recovered"] == 0
        and all(v["recovered"] == 0 for v in default["small_shards"].values()),
        "membership_auc_default_le_0.55": default["membership_auc_aggregate"] <= 0.55,
        "no_exact_sample_count": default["default_shards"]["exact_count_published"] == 0,
        "dp_eps8_accuracy_loss_le_3_points": accuracy_rows["DP eps=8"]["loss_points"] <= 3.0,
    }
    result = {
        "setup": {
            "dataset": "digits",
            "trainers": TRAINERS,
            "rounds": ROUNDS,
            "model": "mlp (64 hidden)",
            "recipe": BASE.model_dump(),
            "dp_local_steps": STEPS,
            "seeds": list(seeds),
            "public_reference": "digits test split (359 images)",
            "attacked_round": 3,
            "machine": platform.machine(),
            "quick": args.quick,
        },
        "tuned_dp": tuned,
        "tuning_grid_eps8_seed0": grid,
        "accuracy": accuracy_rows,
        "label_tv_prior_guess": round(prior, 3),
        "leakage": leak,
        "goals": goals,
        "seconds": {"accuracy": round(acc_seconds, 1), "total": round(seconds, 1)},
    }
    ROOT.mkdir(parents=True, exist_ok=True)
    (ROOT / "privacy.json").write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value else f"{value:.{digits}f}"
    return str(value)


def table(result: dict[str, Any]) -> str:
    """The README's tables, from the JSON (``--table`` prints them again without a run)."""
    lines = [
        "| what the observer gets | images recovered, default shards (best PSNR) "
        "| small shards of 1/4/8: first-layer / inversion (1/4) | label-histogram TV "
        "| membership AUC: the update / the aggregate | exact sample count | replay diff |",
        "|---|---:|---|---:|---|---:|---:|",
    ]
    for row in result["leakage"]:
        d, s = row["default_shards"], row["small_shards"]
        small = "/".join(str(s[str(k)]["recovered"]) for k in SMALL)
        inv = "/".join(str(s[str(k)].get("inversion", {}).get("recovered", "-")) for k in GI_SIZES)
        psnr_text = "" if d["best_psnr_db"] is None else f" ({d['best_psnr_db']:.0f} dB)"
        lines.append(
            f"| {row['setting']} | {d['recovered']}/{d['images']}{psnr_text} | {small} / {inv} | "
            f"{_fmt(d['label_tv'])} | {_fmt(d['membership_auc_update'])} / "
            f"{_fmt(row['membership_auc_aggregate'])} | {d['exact_count_published']:.0%} | "
            f"{_fmt(d['replay_max_abs_diff'], 2)} |"
        )
    lines += [
        "",
        "| setting | accuracy at 10 rounds, mean of seeds | per seed | loss (points) |",
        "|---|---:|---|---:|",
    ]
    for name, acc in result["accuracy"].items():
        seeds = ", ".join(_fmt(a) for a in acc["per_seed"])
        lines.append(f"| {name} | {acc['mean']:.3f} | {seeds} | {acc['loss_points']:.2f} |")
    lines.append(
        f"\ntuned DP: {result['tuned_dp']}; label TV of guessing uniform: "
        f"{result['label_tv_prior_guess']}; goals: {result['goals']}; seconds: {result['seconds']}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
