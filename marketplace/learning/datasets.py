"""Offline datasets: bundled digits, procedural MNIST-1D, synthetic blobs, user files.

Nothing here downloads. ``digits`` ships inside scikit-learn; ``mnist1d`` is generated
from its templates with the package's ``make_dataset`` (Greydanus & Steinbach, "Scaling
down deep learning with MNIST-1D", ICML 2024) and cached as ``.npz``; we never call
``mnist1d.get_dataset``, whose default path fetches a pickle from GitHub. The same
``(name, seed)`` always gives byte-identical tensors, so an auditor rebuilds the exact
validation set the owner committed to.
"""

from __future__ import annotations

import csv
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


def _labels_to_classes(y: np.ndarray, where: str, num_classes: int | None) -> int:
    if y.size and y.min() < 0:
        raise DatasetError(f"{where}: labels must be integers >= 0, found {int(y.min())}")
    found = int(y.max()) + 1 if y.size else 0
    classes = max(found, 2) if num_classes is None else num_classes
    if found > classes:
        raise DatasetError(f"{where}: label {found - 1} >= num_classes {classes}")
    return classes


def _parse_float(cell: str, path: Path, line: int, column: str) -> float:
    try:
        return float(cell)
    except ValueError:
        raise DatasetError(
            f"{path}:{line}: column {column!r} holds {cell!r}, not a number; "
            "features must be numeric"
        ) from None


def _load_csv(path: Path, num_classes: int | None) -> Dataset:
    with path.open(newline="") as fh:
        rows = [row for row in csv.reader(fh) if row and any(c.strip() for c in row)]
    if not rows:
        raise DatasetError(f"{path}: the CSV file is empty; add rows of features and a label")
    first = [c.strip() for c in rows[0]]
    has_header = any(_not_number(c) for c in first)
    header = first if has_header else [f"col{i}" for i in range(len(first))]
    body = rows[1:] if has_header else rows
    start_line = 2 if has_header else 1
    if len(header) < 2:
        raise DatasetError(f"{path}: need at least one feature column and one label column")
    lowered = [h.lower() for h in header]
    label_col = lowered.index("label") if "label" in lowered else len(header) - 1
    feats: list[list[float]] = []
    labels: list[int] = []
    for offset, row in enumerate(body):
        line = start_line + offset
        if len(row) != len(header):
            raise DatasetError(
                f"{path}:{line}: row has {len(row)} columns, expected {len(header)}; "
                "every row needs the same columns"
            )
        values = [_parse_float(c.strip(), path, line, header[i]) for i, c in enumerate(row)]
        label = values.pop(label_col)
        if not float(label).is_integer():
            raise DatasetError(
                f"{path}:{line}: label {row[label_col].strip()!r} is not an integer class id"
            )
        feats.append(values)
        labels.append(int(label))
    if not labels:
        raise DatasetError(f"{path}: the CSV has a header but no data rows")
    x = np.asarray(feats, dtype=np.float32)
    y = np.asarray(labels, dtype=np.int64)
    if not np.isfinite(x).all():
        raise DatasetError(f"{path}: features contain NaN or infinity; clean the file")
    classes = _labels_to_classes(y, str(path), num_classes)
    return Dataset(torch.from_numpy(x), torch.from_numpy(y), classes, (x.shape[1],))


def _not_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return True
    return False


def _load_npz(path: Path, num_classes: int | None) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = {"x", "y"} - set(npz.files)
            if missing:
                raise DatasetError(
                    f"{path}: NPZ lacks array(s) {sorted(missing)}; save features as 'x' "
                    "and labels as 'y'"
                )
            x_raw, y_raw = npz["x"], npz["y"]
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path}: not a readable NPZ file ({exc}); re-save it") from None
    if x_raw.ndim < 2 or y_raw.ndim != 1 or x_raw.shape[0] != y_raw.shape[0]:
        raise DatasetError(
            f"{path}: x has shape {x_raw.shape} and y {y_raw.shape}; need x [N, ...] and y [N]"
        )
    if not np.issubdtype(x_raw.dtype, np.number) or not np.issubdtype(y_raw.dtype, np.integer):
        raise DatasetError(
            f"{path}: x must be numeric and y integer, got {x_raw.dtype} and {y_raw.dtype}"
        )
    x = np.ascontiguousarray(x_raw, dtype=np.float32)
    if not np.isfinite(x).all():
        raise DatasetError(f"{path}: x contains NaN or infinity; clean the data")
    y = np.ascontiguousarray(y_raw, dtype=np.int64)
    classes = _labels_to_classes(y, str(path), num_classes)
    return Dataset(torch.from_numpy(x), torch.from_numpy(y), classes, tuple(x.shape[1:]))


def load_local(path: Path | str, num_classes: int | None = None) -> Dataset:
    """A trainer's own data from CSV or NPZ; it never leaves the trainer's machine.

    CSV: numeric columns, an optional header; the label is the column named ``label``
    or else the last column. NPZ: arrays ``x`` ``[N, ...]`` and integer ``y`` ``[N]``.
    ``num_classes`` defaults to ``max(label) + 1``; pass the project's value so that a
    trainer lacking the top classes still matches the model. Raises
    :class:`DatasetError` naming the file, line and fix.
    """
    file = Path(path)
    if not file.is_file():
        raise DatasetError(f"{file}: no such data file; check the path")
    suffix = file.suffix.lower()
    if suffix == ".csv":
        return _load_csv(file, num_classes)
    if suffix == ".npz":
        return _load_npz(file, num_classes)
    raise DatasetError(f"{file}: unsupported data format {suffix!r}; use .csv or .npz")


def save_npz(data: Dataset, path: Path | str) -> None:
    """Write ``x``/``y`` in the NPZ layout :func:`load_local` reads."""
    _atomic_savez(Path(path), {"x": data.x.numpy(), "y": data.y.numpy()})
