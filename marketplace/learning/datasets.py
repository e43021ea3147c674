"""Offline datasets: bundled digits, procedural MNIST-1D, synthetic blobs, user files.

Nothing here downloads. ``digits`` ships inside scikit-learn; ``mnist1d`` is generated
from its templates with the package's ``make_dataset`` (Greydanus & Steinbach, "Scaling
down deep learning with MNIST-1D", ICML 2024) and cached as ``.npz``; we never call
``mnist1d.get_dataset``, whose default path fetches a pickle from GitHub. The same
``(name, seed)`` always gives byte-identical tensors, so an auditor rebuilds the exact
validation set the owner committed to.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from marketplace.errors import DatasetError

log = logging.getLogger(__name__)

DATASETS: tuple[str, ...] = ("digits", "mnist1d", "synthetic")


@dataclass(frozen=True)
class Dataset:
    """Features ``x`` (float32, ``[N, *input_shape]``) and labels ``y`` (int64, ``[N]``)."""

    x: Tensor
    y: Tensor
    num_classes: int
    input_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.x.dtype != torch.float32 or self.y.dtype != torch.int64:
            raise DatasetError(
                f"dataset needs float32 x and int64 y, got {self.x.dtype} and {self.y.dtype}; "
                "convert before building a Dataset"
            )
        if self.y.dim() != 1 or self.x.shape[0] != self.y.shape[0]:
            raise DatasetError(
                f"x has {self.x.shape[0]} rows but y has shape {tuple(self.y.shape)}; "
                "give one label per sample"
            )
        if tuple(self.x.shape[1:]) != tuple(self.input_shape):
            raise DatasetError(
                f"samples have shape {tuple(self.x.shape[1:])}, not input_shape "
                f"{tuple(self.input_shape)}"
            )
        if self.num_classes < 2:
            raise DatasetError(f"num_classes is {self.num_classes}; a classifier needs >= 2")
        if len(self.y) and (int(self.y.min()) < 0 or int(self.y.max()) >= self.num_classes):
            raise DatasetError(
                f"labels must lie in [0, {self.num_classes - 1}], found "
                f"[{int(self.y.min())}, {int(self.y.max())}]"
            )

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, indices: Tensor) -> Dataset:
        """The samples at ``indices`` (e.g. one client's partition), same classes/shape."""
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return Dataset(self.x[idx], self.y[idx], self.num_classes, self.input_shape)


def default_cache_dir() -> Path:
    """``$LEDGERLEARN_HOME/cache`` (``LEDGERLEARN_HOME`` defaults to ``~/.ledgerlearn``)."""
    home = os.environ.get("LEDGERLEARN_HOME") or str(Path.home() / ".ledgerlearn")
    return Path(home).expanduser() / "cache"


def _split(data: Dataset, test_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"test_fraction is {test_fraction}; pick a value in (0, 1)")
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(data), generator=gen)
    n_test = max(1, round(len(data) * test_fraction))
    return data.subset(perm[n_test:].sort().values), data.subset(perm[:n_test].sort().values)


def digits(seed: int = 0, test_fraction: float = 0.2) -> tuple[Dataset, Dataset]:
    """scikit-learn's 1,797 8x8 handwritten digits, pixels scaled from 0..16 to [0, 1]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32) / 16.0)
    y = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    return _split(Dataset(x, y, 10, (8, 8)), test_fraction, seed)


def _generate_mnist1d(num_samples: int, seed: int) -> dict[str, np.ndarray]:
    """Run mnist1d's procedural generator, restoring the global RNGs it reseeds."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    args.seed = seed
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        raw = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {
        "x": raw["x"].astype(np.float32),
        "y": raw["y"].astype(np.int64),
        "x_test": raw["x_test"].astype(np.float32),
        "y_test": raw["y_test"].astype(np.int64),
    }


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write via a temp file + rename so concurrent writers never leave half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def mnist1d(
    seed: int = 0, num_samples: int = 5000, cache_dir: Path | str | None = None
) -> tuple[Dataset, Dataset]:
    """MNIST-1D: 40-long 1-D signals of 10 classes, the package's own 80/20 split.

    Generation takes ~0.7 s for 5,000 samples, so arrays are cached under
    ``cache_dir/mnist1d-<num_samples>-<seed>.npz`` (default :func:`default_cache_dir`).
    """
    if num_samples < 20:
        raise DatasetError(f"mnist1d num_samples is {num_samples}; use at least 20")
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"mnist1d-{num_samples}-{seed}.npz"
    arrays: dict[str, np.ndarray] | None = None
    if path.exists():
        try:
            with np.load(path) as npz:
                arrays = {k: npz[k] for k in ("x", "y", "x_test", "y_test")}
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            log.warning("mnist1d cache %s is unreadable; regenerating it", path)
    if arrays is None:
        log.info("generating mnist1d (%d samples, seed %d) into %s", num_samples, seed, path)
        arrays = _generate_mnist1d(num_samples, seed)
        _atomic_savez(path, arrays)
    length = arrays["x"].shape[1]
    train = Dataset(torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"]), 10, (length,))
    test = Dataset(
        torch.from_numpy(arrays["x_test"]), torch.from_numpy(arrays["y_test"]), 10, (length,)
    )
    return train, test


def synthetic(
    seed: int = 0,
    num_samples: int = 1000,
    num_features: int = 20,
    num_classes: int = 4,
    separation: float = 3.0,
    test_fraction: float = 0.2,
) -> tuple[Dataset, Dataset]:
    """Gaussian blobs: class centres ~ N(0, separation^2 I), samples ~ N(centre, I)."""
    if num_samples < 2 or num_features < 1 or num_classes < 2:
        raise DatasetError(
            "synthetic needs num_samples >= 2, num_features >= 1 and num_classes >= 2"
        )
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, num_features, generator=gen) * separation
    y = torch.arange(num_samples, dtype=torch.int64) % num_classes
    y = y[torch.randperm(num_samples, generator=gen)]
    x = centres[y] + torch.randn(num_samples, num_features, generator=gen)
    return _split(Dataset(x, y, num_classes, (num_features,)), test_fraction, seed)


def load_dataset(
    name: str,
    seed: int = 0,
    *,
    cache_dir: Path | str | None = None,
    num_samples: int | None = None,
) -> tuple[Dataset, Dataset]:
    """``(train, test)`` of a built-in dataset; the split is a fixed function of ``seed``.

    ``num_samples`` resizes ``mnist1d`` (default 5,000) and ``synthetic`` (default 1,000);
    ``digits`` has a fixed size and refuses it.
    """
    if name == "digits":
        if num_samples is not None:
            raise DatasetError("digits has a fixed size (1,797); drop num_samples")
        return digits(seed)
    if name == "mnist1d":
        return mnist1d(seed, num_samples or 5000, cache_dir)
    if name == "synthetic":
        return synthetic(seed, num_samples or 1000)
    raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def load_local(path: Path | str, num_classes: int | None = None) -> Dataset:
    """A party's own data (NPZ, CSV or an image folder) in its own shape, with no spec;
    it never leaves the party's machine. ``num_classes`` defaults to ``max(label) + 1``.
    Nodes fit data to the project's model spec instead
    (:func:`marketplace.learning.datafiles.load_for_spec`); the formats and their errors
    live in :mod:`marketplace.learning.datafiles`."""
    from marketplace.learning.datafiles import read_data

    return read_data(path).dataset(num_classes)


def save_npz(data: Dataset, path: Path | str) -> None:
    """Write ``x``/``y`` in the NPZ layout :func:`load_local` reads."""
    _atomic_savez(Path(path), {"x": data.x.numpy(), "y": data.y.numpy()})
