"""Contribution on a real federated round: softmax regression trained on synthetic data.

The evaluator here is our own small batched logistic-regression model (the product's
models live in ``marketplace.learning``, which this package must not depend on).
"""

from __future__ import annotations

import pytest
import torch

from marketplace.contribution import (
    GTGConfig,
    SubsetUtility,
    estimate,
    exact_shapley,
    leave_one_out,
    to_payable,
)

FEATURES, CLASSES = 5, 2
SIZES = [120, 60, 30, 60, 60, 80]  # trainer 4 duplicates 3's data; trainer 5 free-rides
NOISE = [0.0, 0.0, 0.0, 0.45, 0.45, 0.0]


def _data(count: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(count, FEATURES, generator=gen)
    y = (x @ torch.tensor([1.5, -1.0, 0.5, 0.0, 2.0]) > 0).long()
    return torch.cat([x, torch.ones(count, 1)], dim=1), y


def _train(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    w = g.clone().reshape(CLASSES, FEATURES + 1).requires_grad_(True)
    for _ in range(25):
        loss = torch.nn.functional.cross_entropy(x @ w.T, y)
        (grad,) = torch.autograd.grad(loss, w)
        with torch.no_grad():
            w -= 0.5 * grad
    return w.detach().reshape(-1) - g


def _round(global_params: torch.Tensor, rows: list[torch.Tensor] | None = None):
    gen = torch.Generator().manual_seed(11)
    x_val, y_val = _data(400, gen)
    updates = []
    data: list[tuple[torch.Tensor, torch.Tensor]] = []
    for i, (size, noise) in enumerate(zip(SIZES, NOISE, strict=True)):
        if i == 4:
            x, y = data[3]
        else:
            x, y = _data(size, gen)
            flip = torch.rand(size, generator=gen) < noise
            y = torch.where(flip, 1 - y, y)
        data.append((x, y))
        updates.append(torch.zeros_like(global_params) if i == 5 else _train(global_params, x, y))

    def evaluate_batch(params: torch.Tensor) -> torch.Tensor:
        if rows is not None:
            rows.append(params.clone())
        logits = torch.einsum("vf,mcf->mvc", x_val, params.reshape(-1, CLASSES, FEATURES + 1))
        return (logits.argmax(dim=2) == y_val).double().mean(dim=1)

    weights = torch.tensor(SIZES, dtype=torch.float64)
    return SubsetUtility(global_params, torch.stack(updates), weights, evaluate_batch)


G0 = torch.zeros(CLASSES * (FEATURES + 1))


def test_exact_shapley_on_real_models() -> None:
    res = exact_shapley(_round(G0))
    v = res.values
    gain = res.details["v_all"] - res.details["v_empty"]
    assert gain > 0.2
    assert v.sum().item() == pytest.approx(gain, abs=1e-9)
    assert v[3].item() == pytest.approx(v[4].item(), abs=1e-12)  # identical data, same value
    assert v[5].item() == pytest.approx(0.0, abs=1e-12)  # zero update from g = 0: null player
    assert v[0].item() > v[3].item()  # clean data beats noisy data of similar size


def test_default_estimator_tracks_exact_and_pays_free_rider_nothing() -> None:
    exact = exact_shapley(_round(G0)).values
    u = _round(G0)
    res = estimate(u, GTGConfig(), seed=0)
    assert res.evaluations == u.evaluations <= 64
    assert torch.allclose(res.values, exact, atol=0.03)
    payable = to_payable(res.values)
    assert payable[5].item() <= 0.05 * payable.sum().item()


def test_subset_utility_never_evaluates_a_coalition_twice() -> None:
    rows: list[torch.Tensor] = []
    u = _round(G0, rows)
    estimate(u, seed=1)
    leave_one_out(u)
    exact_shapley(u)
    evaluated = torch.cat(rows)
    assert evaluated.shape[0] == u.evaluations == 64
