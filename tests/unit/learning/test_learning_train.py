"""Local training: determinism, learning, clipping; batched evaluation agrees with single."""

from __future__ import annotations

import pytest
import torch

from marketplace.errors import DatasetError
from marketplace.learning.datasets import Dataset, load_dataset
from marketplace.learning.models import ModelSpec, init_params, num_params
from marketplace.learning.train import (
    TrainConfig,
    evaluate,
    evaluate_many,
    local_train,
    single_thread,
)


@pytest.fixture(scope="module")
def digits() -> tuple[Dataset, Dataset]:
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return ModelSpec(kind="mlp", input_shape=(8, 8), num_classes=10, hidden=(32,), seed=2)


def test_same_seed_gives_identical_update_bytes(
    digits: tuple[Dataset, Dataset], spec: ModelSpec
) -> None:
    train, _ = digits
    shard = train.subset(torch.arange(90))
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.1, momentum=0.9, weight_decay=1e-4, seed=11)
    start = init_params(spec)
    a = local_train(spec, start, shard, cfg)
    b = local_train(spec, start.clone(), shard, cfg)
    assert a.dtype == torch.float32 and a.shape == (num_params(spec),)
    assert a.numpy().tobytes() == b.numpy().tobytes()
    c = local_train(spec, start, shard, cfg.model_copy(update={"seed": 12}))
    assert not torch.equal(a, c)


def test_training_improves_digits_accuracy(
    digits: tuple[Dataset, Dataset], spec: ModelSpec
) -> None:
    train, test = digits
    start = init_params(spec)
    before, loss_before = evaluate(spec, start, test)
    update = local_train(spec, start, train, TrainConfig(epochs=3, lr=0.1, momentum=0.9))
    after, loss_after = evaluate(spec, start + update, test)
    assert before < 0.3
    assert after > 0.85
    assert loss_after < loss_before


def test_cnn_trains_too(digits: tuple[Dataset, Dataset]) -> None:
    train, test = digits
    cnn = ModelSpec(kind="cnn", input_shape=(8, 8), num_classes=10, hidden=(8,), seed=0)
    start = init_params(cnn)
    update = local_train(
        cnn, start, train.subset(torch.arange(600)), TrainConfig(lr=0.1, momentum=0.9)
    )
    assert evaluate(cnn, start + update, test)[0] > evaluate(cnn, start, test)[0] + 0.3


def test_clip_norm_bounds_the_update(digits: tuple[Dataset, Dataset], spec: ModelSpec) -> None:
    train, _ = digits
    shard = train.subset(torch.arange(64))
    cfg = TrainConfig(epochs=1, batch_size=64, lr=1.0, clip_norm=0.01)
    update = local_train(spec, init_params(spec), shard, cfg)
    # one SGD step of a gradient clipped to 0.01 with lr 1 moves at most 0.01
    assert float(update.norm()) <= 0.01 + 1e-6
    free = local_train(spec, init_params(spec), shard, cfg.model_copy(update={"clip_norm": None}))
    assert float(free.norm()) > 0.05


def test_evaluate_many_matches_evaluate(digits: tuple[Dataset, Dataset], spec: ModelSpec) -> None:
    _, test = digits
    gen = torch.Generator().manual_seed(0)
    stack = init_params(spec) + 0.3 * torch.randn(7, num_params(spec), generator=gen)
    accs, losses = evaluate_many(spec, stack, test, chunk_size=3)
    assert accs.shape == losses.shape == (7,)
    for i in range(7):
        acc, loss = evaluate(spec, stack[i], test)
        assert acc == float(accs[i])
        # bitwise: a memoised utility must not depend on which batch computed it
        assert loss == float(losses[i])
    other_accs, other_losses = evaluate_many(spec, stack, test, chunk_size=5)
    assert torch.equal(other_accs, accs) and torch.equal(other_losses, losses)
    as_list, _ = evaluate_many(spec, list(stack), test)
    assert torch.equal(as_list, accs)
    empty, _ = evaluate_many(spec, [], test)
    assert empty.shape == (0,)


def test_evaluate_many_with_a_cnn() -> None:
    train, _ = load_dataset("synthetic", seed=0, num_samples=100)
    cnn = ModelSpec(kind="cnn", input_shape=(20,), num_classes=4, hidden=(4,), seed=0)
    stack = torch.stack([init_params(cnn), init_params(cnn) * 0.5])
    accs, losses = evaluate_many(cnn, stack, train)
    assert float(accs[0]) == evaluate(cnn, stack[0], train)[0]
    assert float(losses[1]) == pytest.approx(evaluate(cnn, stack[1], train)[1], rel=1e-5)


def test_single_thread_restores_thread_count() -> None:
    before = torch.get_num_threads()
    with single_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_mismatched_data_is_refused(spec: ModelSpec) -> None:
    wrong = Dataset(torch.zeros(4, 5), torch.zeros(4, dtype=torch.int64), 10, (5,))
    with pytest.raises(DatasetError, match="model expects"):
        local_train(spec, init_params(spec), wrong, TrainConfig())
    empty = Dataset(torch.zeros(0, 8, 8), torch.zeros(0, dtype=torch.int64), 10, (8, 8))
    with pytest.raises(DatasetError, match="empty"):
        evaluate(spec, init_params(spec), empty)
