"""Attacks on what an observer of an update gets: the measuring stick of the privacy
settings (``scripts/bench_privacy.py``, ``tests/unit/privacy``).

* :func:`first_layer_inversion`: the analytic attack on a fully connected first layer. For
  a neuron that one sample alone activated, the weight-row update is the bias update times
  that sample (both carry the same backpropagated error), so ``dW_j / db_j`` is the input
  (Phong et al. 2017; Fowl et al. 2022, "Robbing the Fed"). Across several SGD steps a row
  is a mix of the samples that fired it, exact whenever one dominates.
* :func:`gradient_inversion`: optimisation-based reconstruction (Geiping et al. 2020,
  "Inverting Gradients"): find inputs whose one-step update points along the observed one
  (cosine loss, total-variation prior).
* :func:`label_histogram`: the last layer's bias update is ``-lr * sum(softmax - onehot)``,
  so the label counts follow from it and the model's mean prediction.
* :func:`membership_auc`: the loss-threshold attack (Yeom et al. 2018): members of the
  training set have lower loss under the published model than non-members.
* :func:`recovered_images`: the yardstick: a training image counts as recovered when a
  reconstruction is closer to it than the nearest image of public same-distribution data.

Pure functions over tensors: no chain, no storage.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from marketplace.learning.datasets import Dataset
from marketplace.learning.models import ModelSpec, build_model


def _named(spec: ModelSpec, flat: Tensor) -> dict[str, Tensor]:
    model = build_model(spec)
    out, offset = {}, 0
    for name, p in model.named_parameters():
        out[name] = flat[offset : offset + p.numel()].reshape(p.shape)
        offset += p.numel()
    return out


def first_layer_inversion(spec: ModelSpec, update: Tensor, min_bias: float = 1e-7) -> Tensor:
    """Candidate inputs ``dW_j / db_j`` of every first-layer neuron whose bias moved
    (``[k, *input_shape]``). Needs a model whose first layer is fully connected."""
    if spec.kind not in ("mlp", "logreg"):
        raise ValueError("the analytic attack needs a fully connected first layer")
    named = _named(spec, update.detach().to(torch.float64))
    weight, bias = named["1.weight"], named["1.bias"]
    moved = bias.abs() > min_bias
    rows = weight[moved] / bias[moved].unsqueeze(1)
    return rows.reshape(-1, *spec.input_shape).to(torch.float32)


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """Peak signal-to-noise ratio (peak 1: inputs scaled to [0, 1]) of rows of ``a`` and
    ``b``, pairwise ``[len(a), len(b)]``."""
    mse = torch.cdist(a.reshape(len(a), -1).double(), b.reshape(len(b), -1).double()) ** 2
    mse = mse / a[0].numel()
    return -10 * torch.log10(mse.clamp(min=1e-12))


def recovered_images(candidates: Tensor, private: Tensor, public: Tensor) -> tuple[int, float]:
    """How many ``private`` images some candidate matches better than the best ``public``
    image does, and the best candidate PSNR over all of them (``-inf`` without
    candidates)."""
    if len(candidates) == 0 or len(private) == 0:
        return 0, -math.inf
    clean = torch.nan_to_num(candidates.clamp(-10, 10))
    best_rec = psnr(private, clean).max(dim=1).values
    best_pub = psnr(private, public).max(dim=1).values
    return int((best_rec > best_pub).sum()), float(best_rec.max())


def gradient_inversion(
    spec: ModelSpec,
    global_params: Tensor,
    update: Tensor,
    labels: Tensor,
    iterations: int = 200,
    seed: int = 0,
    tv: float = 1e-3,
) -> Tensor:
    """Reconstruct ``len(labels)`` inputs whose one-step update aligns with ``update``
    (Geiping et al. 2020: cosine distance, Adam, total-variation prior, inputs in [0, 1]).
    The labels are the attacker's guess (e.g. from :func:`label_histogram`)."""
    model = build_model(spec)
    params = _named(spec, global_params.detach().clone())
    target = -update.detach()
    gen = torch.Generator().manual_seed(seed)
    dummy = torch.rand(len(labels), *spec.input_shape, generator=gen).requires_grad_(True)
    optimiser = torch.optim.Adam([dummy], lr=0.05)
    weights = {k: v.requires_grad_(True) for k, v in params.items()}
    for _ in range(iterations):
        optimiser.zero_grad()
        x = dummy.clamp(0, 1)
        loss = F.cross_entropy(functional_call(model, weights, (x,)), labels)
        grads = torch.autograd.grad(loss, list(weights.values()), create_graph=True)
        flat = torch.cat([g.reshape(-1) for g in grads])
        objective = 1 - F.cosine_similarity(flat, target, dim=0)
        if x.dim() == 3:
            rows = (x[:, 1:, :] - x[:, :-1, :]).abs().mean()
            cols = (x[:, :, 1:] - x[:, :, :-1]).abs().mean()
            objective = objective + tv * (rows + cols)
        objective.backward()
        optimiser.step()
    return dummy.detach().clamp(0, 1)


def label_histogram(
    spec: ModelSpec, global_params: Tensor, update: Tensor, lr: float, steps: int, public: Tensor
) -> Tensor:
    """Estimated label distribution of a shard from its update: the last bias moves by
    ``-lr * sum_steps mean(softmax - onehot)``, so the label share per class is about the
    mean prediction (estimated on ``public`` inputs) plus ``db / (lr * steps)``."""
    model = build_model(spec)
    named = _named(spec, global_params.detach())
    with torch.no_grad():
        mean_pred = F.softmax(functional_call(model, named, (public,)), dim=1).mean(dim=0)
    last_bias = [k for k in named if k.endswith("bias")][-1]
    delta = _named(spec, update.detach())[last_bias]
    estimate = (mean_pred + delta / (lr * steps)).clamp(min=0)
    total = estimate.sum()
    if total <= 0:
        return torch.full_like(estimate, 1 / len(estimate))
    return estimate / total


def total_variation(p: Tensor, q: Tensor) -> float:
    """Total-variation distance of two distributions."""
    return float(0.5 * (p - q).abs().sum())


def class_distribution(labels: Tensor, num_classes: int) -> Tensor:
    return torch.bincount(labels, minlength=num_classes).double() / max(1, len(labels))


def sample_losses(spec: ModelSpec, params: Tensor, data: Dataset) -> Tensor:
    """Per-sample cross-entropy of ``data`` under the flat ``params``."""
    model = build_model(spec)
    with torch.no_grad():
        logits = functional_call(model, _named(spec, params.detach()), (data.x,))
        return F.cross_entropy(logits, data.y, reduction="none")


def auc(member_scores: Tensor, other_scores: Tensor) -> float:
    """Area under the ROC curve of "higher score means member" (Mann-Whitney U)."""
    scores = torch.cat([member_scores, other_scores]).double()
    ranks = torch.empty_like(scores)
    order = scores.argsort()
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.float64)
    # average ranks of ties
    uniq, inverse = torch.unique(scores, return_inverse=True)
    sums = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inverse, ranks)
    counts = torch.zeros(len(uniq), dtype=torch.float64).index_add_(
        0, inverse, torch.ones_like(ranks)
    )
    ranks = (sums / counts)[inverse]
    m, n = len(member_scores), len(other_scores)
    u = float(ranks[:m].sum()) - m * (m + 1) / 2
    return u / (m * n)


def membership_auc(spec: ModelSpec, params: Tensor, members: Dataset, others: Dataset) -> float:
    """AUC of the loss-threshold membership attack on the model ``params``."""
    return auc(-sample_losses(spec, params, members), -sample_losses(spec, params, others))
