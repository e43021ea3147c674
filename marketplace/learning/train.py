"""Deterministic local training and fast (batched) evaluation of flat parameter vectors.

Determinism is what lets an auditor replay a round (docs/architecture.md, step 7): every
random choice (batch order) comes from a ``torch.Generator`` seeded by
:class:`TrainConfig`, the model is rebuilt from its spec, and the work runs on one
intra-op thread (:func:`single_thread`). One thread matters twice: CPU kernels may split
reductions differently with another thread count (different last bits), and the
marketplace calls these functions hundreds of times on tiny models, where thread
start-up costs more than it saves. Same inputs on the same machine give the same bytes.

``evaluate_many`` evaluates a stack of flat vectors through ``torch.func.functional_call``
(batched with ``vmap`` where that pays): the contribution module scores hundreds of
coalition models per round (utility U(S) in GTG-Shapley, Liu et al. 2022).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor
from torch.func import functional_call, vmap

from marketplace.errors import ConfigError, DatasetError
from marketplace.learning.datasets import Dataset
from marketplace.learning.models import ModelSpec, build_model, get_flat_params, set_flat_params

_EVAL_MEMORY_BYTES = 256 * 2**20


class TrainConfig(BaseModel):
    """Hyper-parameters of one local training (plain SGD, as in FedAvg).

    ``clip_norm`` bounds the L2 norm of every mini-batch gradient (``None``: no clipping);
    ``seed`` drives the batch order (and the DP noise). ``steps``: run exactly this many
    mini-batch steps (cycling through shuffled epochs) instead of ``epochs`` passes, so the
    work done does not depend on the shard size. ``dp_noise`` (with ``dp_clip`` and
    ``sample_rate``) switches to DP-SGD (:func:`dp_local_train`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(default=1, ge=1)
    batch_size: int = Field(default=32, ge=1)
    lr: float = Field(default=0.05, gt=0)
    momentum: float = Field(default=0.0, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    clip_norm: float | None = Field(default=None, gt=0)
    seed: int = Field(default=0, ge=0, lt=2**63)
    steps: int | None = Field(default=None, ge=1)
    dp_noise: float | None = Field(default=None, gt=0)
    dp_clip: float = Field(default=1.0, gt=0)
    sample_rate: float = Field(default=0.1, gt=0, le=1)


@contextmanager
def single_thread() -> Iterator[None]:
    """Run the block on one torch intra-op thread, then restore the previous count.

    ``torch.set_num_threads`` is process-wide: do not train from several Python threads
    at once (use processes for parallel simulations).
    """
    previous = torch.get_num_threads()
    if previous != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if previous != 1:
            torch.set_num_threads(previous)


def _check_data(spec: ModelSpec, data: Dataset) -> None:
    if len(data) == 0:
        raise DatasetError("the dataset is empty; give each trainer at least one sample")
    if tuple(data.input_shape) != tuple(spec.input_shape):
        raise DatasetError(
            f"data samples have shape {tuple(data.input_shape)} but the model expects "
            f"{tuple(spec.input_shape)}; use data that matches the project's model spec"
        )
    if int(data.y.max()) >= spec.num_classes:
        raise DatasetError(
            f"label {int(data.y.max())} is out of range for a model with {spec.num_classes} classes"
        )


def local_train(spec: ModelSpec, global_params: Tensor, data: Dataset, cfg: TrainConfig) -> Tensor:
    """Train from ``global_params`` on ``data``; return ``new_params - global_params``.

    Mini-batch SGD (McMahan et al. 2017, "Communication-Efficient Learning of Deep
    Networks from Decentralized Data", FedAvg's ClientUpdate) with a fresh optimiser per
    call. The result is a float32 vector of length ``num_params(spec)``. With
    ``cfg.dp_noise`` set it runs :func:`dp_local_train` instead.
    """
    _check_data(spec, data)
    if cfg.dp_noise is not None:
        return dp_local_train(spec, global_params, data, cfg)
    start = global_params.detach().to(torch.float32).reshape(-1).clone()
    with single_thread():
        model = build_model(spec)
        set_flat_params(model, start)
        model.train()
        optimiser = torch.optim.SGD(
            model.parameters(),
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
        )
        gen = torch.Generator().manual_seed(cfg.seed)
        for batch in _batches(len(data), cfg, gen):
            optimiser.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(data.x[batch]), data.y[batch])
            loss.backward()
            if cfg.clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
            optimiser.step()
        return get_flat_params(model) - start


def _batches(n: int, cfg: TrainConfig, gen: torch.Generator) -> Iterator[Tensor]:
    """Mini-batch indices: ``cfg.epochs`` shuffled passes, or exactly ``cfg.steps`` batches
    drawn from as many shuffled passes as they need."""
    done, epoch = 0, 0

    def more() -> bool:
        return epoch < cfg.epochs if cfg.steps is None else done < cfg.steps

    while more():
        for batch in torch.randperm(n, generator=gen).split(cfg.batch_size):
            if cfg.steps is not None and done >= cfg.steps:
                return
            done += 1
            yield batch
        epoch += 1


def dp_local_train(
    spec: ModelSpec, global_params: Tensor, data: Dataset, cfg: TrainConfig
) -> Tensor:
    """DP-SGD (Abadi et al. 2016, "Deep Learning with Differential Privacy"), FedAvg-style.

    ``cfg.steps`` steps (default: ``epochs / sample_rate``); each samples every example with
    probability ``cfg.sample_rate`` (Poisson sampling, what the accountant assumes), clips
    each example's gradient to L2 norm ``cfg.dp_clip``, adds Gaussian noise of standard
    deviation ``cfg.dp_noise * cfg.dp_clip`` to the sum, divides by the expected batch size
    and takes an SGD step. Per-example gradients come from ``torch.func.vmap(grad)``. The
    batch draws and the noise come from ``cfg.seed``: keep that seed private.
    """
    from torch.func import grad

    _check_data(spec, data)
    assert cfg.dp_noise is not None
    start = global_params.detach().to(torch.float32).reshape(-1).clone()
    steps = cfg.steps or max(1, round(cfg.epochs / cfg.sample_rate))
    expected = cfg.sample_rate * len(data)
    with single_thread():
        model = build_model(spec)
        set_flat_params(model, start)
        names = [name for name, _ in model.named_parameters()]
        params = {name: p.detach().clone() for name, p in model.named_parameters()}
        velocity = {name: torch.zeros_like(p) for name, p in params.items()}

        def sample_loss(weights: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
            logits = functional_call(model, weights, (x.unsqueeze(0),))
            return F.cross_entropy(logits, y.unsqueeze(0))

        per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))
        gen = torch.Generator().manual_seed(cfg.seed)
        for _ in range(steps):
            chosen = torch.nonzero(torch.rand(len(data), generator=gen) < cfg.sample_rate)[:, 0]
            total = {name: torch.zeros_like(p) for name, p in params.items()}
            if len(chosen) > 0:
                grads = per_sample(params, data.x[chosen], data.y[chosen])
                norms = torch.sqrt(
                    sum(g.reshape(len(chosen), -1).pow(2).sum(dim=1) for g in grads.values())
                )
                scale = (cfg.dp_clip / (norms + 1e-12)).clamp(max=1.0)
                for name in names:
                    g = grads[name]
                    total[name] = (g * scale.reshape(-1, *[1] * (g.dim() - 1))).sum(dim=0)
            for name in names:
                noise = torch.randn(total[name].shape, generator=gen) * (cfg.dp_noise * cfg.dp_clip)
                step = (total[name] + noise) / expected + cfg.weight_decay * params[name]
                velocity[name] = cfg.momentum * velocity[name] + step
                params[name] = params[name] - cfg.lr * velocity[name]
        flat = torch.cat([params[name].reshape(-1) for name in names]).to(torch.float32)
        return flat - start


def _stack(params: Tensor | Sequence[Tensor], expected: int) -> Tensor:
    if isinstance(params, Tensor):
        stacked = params.reshape(1, -1) if params.dim() == 1 else params
    else:
        if len(params) == 0:
            return torch.empty(0, expected)
        stacked = torch.stack([p.reshape(-1) for p in params])
    if stacked.dim() != 2 or stacked.shape[1] != expected:
        raise ConfigError(
            f"parameter vectors have shape {tuple(stacked.shape)}, expected [m, {expected}]; "
            "evaluate vectors of the same model spec"
        )
    return stacked.detach().to(torch.float32)


def _loop(
    score: Callable[[Tensor], tuple[Tensor, Tensor]],
) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """Apply ``score`` row by row and stack, with the same contract as ``vmap(score)``."""

    def run(rows: Tensor) -> tuple[Tensor, Tensor]:
        pairs = [score(row) for row in rows]
        return torch.stack([c for c, _ in pairs]), torch.stack([loss for _, loss in pairs])

    return run


def evaluate_many(
    spec: ModelSpec,
    params: Tensor | Sequence[Tensor],
    data: Dataset,
    chunk_size: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Accuracy and mean cross-entropy of each of ``m`` flat parameter vectors on ``data``.

    ``params`` is ``[m, d]`` (or a list of ``[d]`` vectors). Returns two float64 tensors of
    shape ``[m]``: accuracies in [0, 1] and losses. Models go ``chunk_size`` at a time
    (default: up to 64, fewer when their activations would pass ~256 MiB) through
    ``vmap`` for linear models and a ``functional_call`` loop for convolutional ones.
    A model's scores do not depend on the chunk it lands in (tested bitwise), so memoised
    coalition utilities are reproducible however they were batched.
    """
    _check_data(spec, data)
    model = build_model(spec).eval()
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    stacked = _stack(params, sum(sizes))
    if stacked.shape[0] == 0:
        return torch.empty(0, dtype=torch.float64), torch.empty(0, dtype=torch.float64)
    x, y = data.x, data.y

    def score(flat: Tensor) -> tuple[Tensor, Tensor]:
        tensors = {
            name: piece.reshape(shape)
            for name, piece, shape in zip(names, flat.split(sizes), shapes, strict=True)
        }
        logits = functional_call(model, tensors, (x,))
        correct = (logits.argmax(dim=1) == y).sum()
        return correct, F.cross_entropy(logits, y)

    if chunk_size is None:
        inputs = math.prod(spec.input_shape)
        spatial = inputs if spec.kind in ("cnn", "cnn1d") else 1
        widest = max(inputs, spec.num_classes, *(w * spatial for w in spec.hidden))
        per_model = len(data) * widest * 4 * 4
        chunk_size = max(1, min(64, _EVAL_MEMORY_BYTES // per_model))
    # vmap batches the linear layers into bmm (~1.2x a plain loop on CPU); for convolutions
    # it builds grouped convolutions that run ~2x slower than a loop, so those loop.
    batched = vmap(score) if spec.kind in ("logreg", "mlp") else _loop(score)
    corrects, losses = [], []
    with torch.no_grad(), single_thread():
        for chunk in stacked.split(chunk_size):
            correct, loss = batched(chunk)
            corrects.append(correct)
            losses.append(loss)
    accuracy = torch.cat(corrects).to(torch.float64) / len(data)
    return accuracy, torch.cat(losses).to(torch.float64)


def evaluate(spec: ModelSpec, params: Tensor, data: Dataset) -> tuple[float, float]:
    """``(accuracy, mean cross-entropy)`` of one flat parameter vector on ``data``.

    Shares :func:`evaluate_many`'s code path so a single model and the same model inside
    a batch score alike.
    """
    accuracy, loss = evaluate_many(spec, params.reshape(1, -1), data)
    return float(accuracy[0]), float(loss[0])
