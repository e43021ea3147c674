"""Offline datasets and user data files."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from marketplace.errors import DatasetError
from marketplace.learning import datasets
from marketplace.learning.datasets import Dataset, load_dataset, load_local, save_npz


def test_digits_scaled_split_fixed_and_disjoint() -> None:
    train, test = load_dataset("digits", seed=0)
    assert (len(train), len(test)) == (1438, 359)
    assert train.input_shape == (8, 8) and train.num_classes == 10
    assert float(train.x.min()) == 0.0 and float(train.x.max()) == 1.0
    again, _ = load_dataset("digits", seed=0)
    assert torch.equal(train.x, again.x) and torch.equal(train.y, again.y)
    other, _ = load_dataset("digits", seed=1)
    assert not torch.equal(train.y, other.y)
    train_rows = {tuple(r) for r in train.x.reshape(len(train), -1).tolist()}
    test_rows = [tuple(r) for r in test.x.reshape(len(test), -1).tolist()]
    # digits has a handful of exact duplicate images; the split itself must not leak rows
    assert sum(r in train_rows for r in test_rows) < 5


def test_mnist1d_generated_offline_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("mnist1d tried to open a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    np.random.seed(5)
    before = np.random.get_state()[1].copy()
    train, test = datasets.mnist1d(seed=3, num_samples=200, cache_dir=tmp_path)
    assert np.array_equal(np.random.get_state()[1], before), "global numpy RNG disturbed"
    assert (len(train), len(test)) == (160, 40)
    assert train.input_shape == (40,) and train.x.dtype == torch.float32
    assert (tmp_path / "mnist1d-200-3.npz").is_file()

    def fail(*args: object) -> None:
        raise AssertionError("regenerated despite the cache")

    monkeypatch.setattr(datasets, "_generate_mnist1d", fail)
    cached, _ = load_dataset("mnist1d", seed=3, num_samples=200, cache_dir=tmp_path)
    assert torch.equal(cached.x, train.x) and torch.equal(cached.y, train.y)


def test_mnist1d_default_cache_dir_follows_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGERLEARN_HOME", str(tmp_path))
    assert datasets.default_cache_dir() == tmp_path / "cache"


def test_synthetic_is_seeded_and_sized() -> None:
    a, a_test = load_dataset("synthetic", seed=4, num_samples=300)
    b, _ = load_dataset("synthetic", seed=4, num_samples=300)
    c, _ = load_dataset("synthetic", seed=5, num_samples=300)
    assert len(a) + len(a_test) == 300
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)


def test_unknown_dataset() -> None:
    with pytest.raises(DatasetError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")


def test_csv_with_label_column_and_headerless(tmp_path: Path) -> None:
    named = tmp_path / "named.csv"
    named.write_text("label,a,b\n1,0.5,2\n0,1.5,3\n2,0,0\n")
    data = load_local(named, num_classes=4)
    assert data.y.tolist() == [1, 0, 2] and data.num_classes == 4
    assert data.x.tolist() == [[0.5, 2.0], [1.5, 3.0], [0.0, 0.0]]
    bare = tmp_path / "bare.csv"
    bare.write_text("0.1,0.2,1\n0.3,0.4,0\n")
    data = load_local(bare)
    assert data.y.tolist() == [1, 0] and data.input_shape == (2,) and data.num_classes == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b,label\n1,2,0\n3,4\n", r"bad\.csv:3: row has 2 columns, expected 3"),
        ("a,label\n1,0\nx,1\n", r"bad\.csv:3: column 'a' holds 'x', not a number"),
        ("a,label\n1,0.5\n", r"label '0\.5' is not an integer"),
        ("a,label\n1,-1\n", r"labels must be integers >= 0"),
        ("", "the CSV file is empty"),
        ("a,label\n", "no data rows"),
    ],
)
def test_malformed_csv_gives_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DatasetError, match=message):
        load_local(path)


def test_npz_round_trip_and_errors(tmp_path: Path) -> None:
    data = Dataset(torch.rand(6, 2, 3), torch.tensor([0, 1, 2, 0, 1, 2]), 3, (2, 3))
    save_npz(data, tmp_path / "ok.npz")
    back = load_local(tmp_path / "ok.npz")
    assert torch.equal(back.x, data.x) and torch.equal(back.y, data.y)
    assert back.input_shape == (2, 3)
    np.savez(tmp_path / "nolabels.npz", x=np.zeros((3, 2)))
    with pytest.raises(DatasetError, match=r"lacks array\(s\) \['y'\]"):
        load_local(tmp_path / "nolabels.npz")
    np.savez(tmp_path / "floaty.npz", x=np.zeros((3, 2)), y=np.zeros(3))
    with pytest.raises(DatasetError, match=r"y has dtype float64 but labels must be integer"):
        load_local(tmp_path / "floaty.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="not a readable NPZ"):
        load_local(tmp_path / "junk.npz")
    with pytest.raises(DatasetError, match="unsupported data format"):
        load_local(_touch(tmp_path / "data.txt"))
    with pytest.raises(DatasetError, match="no such data file or folder"):
        load_local(tmp_path / "missing.csv")


def _touch(path: Path) -> Path:
    path.write_text("1,2\n")
    return path


def test_dataset_rejects_inconsistent_tensors() -> None:
    with pytest.raises(DatasetError, match="one label per sample"):
        Dataset(torch.zeros(3, 2), torch.zeros(2, dtype=torch.int64), 2, (2,))
    with pytest.raises(DatasetError, match=r"labels must lie in \[0, 1\]"):
        Dataset(torch.zeros(2, 2), torch.tensor([0, 2]), 2, (2,))
