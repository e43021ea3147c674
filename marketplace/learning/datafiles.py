"""Bring-your-own data: read an owner's or a trainer's file and fit it to a model spec.

Three formats (``docs/data.md``), told apart by the path:

* **NPZ** (``.npz``): arrays ``x`` ``[N, *input_shape]`` (floating point) and ``y``
  ``[N]`` (integer class ids ``0..K-1``).
* **CSV** (``.csv``): one row per sample, numeric feature columns and a label column
  (the column named ``label``, else the last one); an optional header. Features are laid
  out row-major into the spec's input shape (64 columns fit ``(8, 8)``).
* **Image folder** (a directory): one subfolder per class, named by its class id
  (``0/``, ``1/``, ...: a trainer lacking a class must not shift the others' labels),
  holding PNG/JPEG/BMP/GIF images of one size. Grayscale for an ``(H, W)`` or
  ``(1, H, W)`` spec, RGB for ``(3, H, W)``; pixels are scaled from 0..255 to [0, 1].

:func:`read_data` checks what holds for any project (the file parses, ``x`` is
numeric and finite, ``y`` holds integer ids, one label per sample);
:func:`conform` checks the data against one project's :class:`ModelSpec` (shape,
classes, pixel scale) and returns the float32/int64 :class:`Dataset` the model trains on.
Every problem is one :class:`DatasetError` line that names the file, the array and its
shape or dtype, and the fix. Reading is cheap and has no network, so nodes do it before
anything else and a wrong file fails in the first second, not rounds later.
"""

from __future__ import annotations

import csv
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from marketplace.errors import DatasetError
from marketplace.learning.datasets import Dataset
from marketplace.learning.models import ModelSpec

Source = Literal["npz", "csv", "images"]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
FORMATS_HINT = "use .npz (arrays x, y), .csv (features + label column) or an image folder"


@dataclass(frozen=True)
class RawData:
    """What a data file holds before any spec is applied: float32 ``x`` ``[N, ...]`` and
    int64 ``y`` ``[N]``, with the format it came from (it decides what :func:`conform`
    may reshape: a CSV row is flat by nature, an NPZ array has the shape its author gave)."""

    x: np.ndarray
    y: np.ndarray
    source: Source
    path: Path

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x.shape[1:])

    @property
    def num_classes(self) -> int:
        """``max(y) + 1`` (at least 2): the classes a spec made from this file has."""
        return max(int(self.y.max()) + 1 if len(self) else 0, 2)

    def class_counts(self) -> dict[int, int]:
        labels, counts = np.unique(self.y, return_counts=True)
        return {int(label): int(count) for label, count in zip(labels, counts, strict=True)}

    def dataset(self, num_classes: int | None = None) -> Dataset:
        """This data as a :class:`Dataset` in its own shape (no spec)."""
        classes = self.num_classes if num_classes is None else num_classes
        _check_labels(self.y, classes, self.path, "")
        return Dataset(
            torch.from_numpy(self.x), torch.from_numpy(self.y), classes, self.sample_shape
        )


# ------------------------------------------------------------------ reading


def read_data(path: Path | str, channels: int | None = None) -> RawData:
    """Read an NPZ file, a CSV file or an image folder (see the module docstring).

    ``channels`` (1 or 3) picks the colour mode of an image folder; by default
    grayscale unless some image has colour. Raises :class:`DatasetError`.
    """
    where = Path(path)
    if where.is_dir():
        return _read_images(where, channels)
    if not where.is_file():
        raise DatasetError(f"{where}: no such data file or folder; check the path")
    suffix = where.suffix.lower()
    if suffix == ".npz":
        return _read_npz(where)
    if suffix == ".csv":
        return _read_csv(where)
    raise DatasetError(f"{where}: unsupported data format {suffix!r}; {FORMATS_HINT}")


def _finite(x: np.ndarray, path: Path, what: str) -> None:
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise DatasetError(
            f"{path}: {bad} NaN or infinite value(s) in {what}; drop or impute those samples"
        )


def _read_npz(path: Path) -> RawData:
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = {"x", "y"} - set(npz.files)
            if missing:
                raise DatasetError(
                    f"{path}: NPZ lacks array(s) {sorted(missing)} (it has {sorted(npz.files)});"
                    " save features as 'x' and labels as 'y': np.savez(path, x=x, y=y)"
                )
            x_raw, y_raw = npz["x"], npz["y"]
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path}: not a readable NPZ file ({exc}); re-save it") from None
    if y_raw.ndim != 1:
        raise DatasetError(
            f"{path}: y has shape {y_raw.shape} but labels need shape (N,): one class id per "
            "sample (y = y.reshape(-1), or y.argmax(1) for one-hot labels)"
        )
    if x_raw.ndim < 2 or x_raw.shape[0] != y_raw.shape[0]:
        raise DatasetError(
            f"{path}: x has shape {x_raw.shape} but y has shape {y_raw.shape}; x needs one row "
            f"per label: shape ({y_raw.shape[0]}, ...)"
        )
    if not np.issubdtype(y_raw.dtype, np.integer):
        raise DatasetError(
            f"{path}: y has dtype {y_raw.dtype} but labels must be integer class ids: save "
            "y.astype('int64')"
        )
    if not np.issubdtype(x_raw.dtype, np.floating):
        hint = "x.astype('float32')"
        if np.issubdtype(x_raw.dtype, np.integer) and x_raw.size and int(x_raw.max()) > 1:
            hint += f" / {_pixel_scale(float(x_raw.max()))} (pixels scaled to [0, 1])"
        raise DatasetError(
            f"{path}: x has dtype {x_raw.dtype} but features must be floating point: save {hint}"
        )
    x = np.ascontiguousarray(x_raw, dtype=np.float32)
    _finite(x, path, "x")
    y = np.ascontiguousarray(y_raw, dtype=np.int64)
    _check_labels(y, None, path, "y ")
    return RawData(x, y, "npz", path)


def _not_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return True
    return False


def _read_csv(path: Path) -> RawData:
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
        values = []
        for i, cell in enumerate(row):
            try:
                values.append(float(cell.strip()))
            except ValueError:
                raise DatasetError(
                    f"{path}:{line}: column {header[i]!r} holds {cell.strip()!r}, not a number; "
                    "features must be numeric"
                ) from None
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
    _finite(x, path, "the feature columns")
    y = np.asarray(labels, dtype=np.int64)
    _check_labels(y, None, path, "")
    return RawData(x, y, "csv", path)


def _class_folders(root: Path) -> list[tuple[int, Path]]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DatasetError(
            f"{root}: an image folder needs one subfolder per class, named by its class id "
            "(0/, 1/, ...); found none"
        )
    out = []
    for folder in folders:
        if not folder.name.isdigit():
            raise DatasetError(
                f"{root}: subfolder {folder.name!r} is not a class id; name each class folder "
                "by its label (0, 1, ...) so every party numbers classes alike"
            )
        out.append((int(folder.name), folder))
    return sorted(out)


def _read_images(root: Path, channels: int | None) -> RawData:
    from PIL import Image, UnidentifiedImageError

    files: list[tuple[int, Path]] = []
    for label, folder in _class_folders(root):
        files += [
            (label, f)
            for f in sorted(folder.iterdir())
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
        ]
    if not files:
        raise DatasetError(
            f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in its class folders; put each "
            "class's images in its folder"
        )
    images = []
    for _, file in files:
        try:
            with Image.open(file) as opened:
                opened.load()
                images.append(opened.copy())
        except (OSError, UnidentifiedImageError) as exc:
            raise DatasetError(
                f"{file}: not a readable image ({exc}); remove or re-save it"
            ) from None
    if channels is None:
        colour = any(img.mode not in ("1", "L", "LA", "I", "I;16", "F") for img in images)
        channels = 3 if colour else 1
    if channels not in (1, 3):
        raise DatasetError(
            f"{root}: images can be read as 1 (gray) or 3 (RGB) channels, not {channels}"
        )
    mode = "L" if channels == 1 else "RGB"
    arrays = []
    first_size = images[0].size
    for (_, file), img in zip(files, images, strict=True):
        if img.size != first_size:
            raise DatasetError(
                f"{file} is {img.size[0]}x{img.size[1]} but {files[0][1]} is "
                f"{first_size[0]}x{first_size[1]}: resize all images to one size"
            )
        pixels = np.asarray(img.convert(mode), dtype=np.float32) / 255.0
        arrays.append(pixels if channels == 1 else pixels.transpose(2, 0, 1))
    x = np.ascontiguousarray(np.stack(arrays), dtype=np.float32)
    y = np.asarray([label for label, _ in files], dtype=np.int64)
    return RawData(x, y, "images", root)


# ------------------------------------------------------------------ checking against a spec


def _check_labels(y: np.ndarray, num_classes: int | None, path: Path, prefix: str) -> None:
    if not y.size:
        raise DatasetError(f"{path}: no samples; a data file needs at least one labelled sample")
    low, high = int(y.min()), int(y.max())
    if low < 0:
        raise DatasetError(
            f"{path}: {prefix}labels must be integers >= 0, found {low}; number classes 0..K-1"
        )
    if num_classes is not None and high >= num_classes:
        raise DatasetError(
            f"{path}: {prefix}holds label {high} but the spec has {num_classes} classes "
            f"(0..{num_classes - 1}): relabel the data, or make the spec with --classes {high + 1}"
        )


def _pixel_scale(high: float) -> int:
    """What to divide raw pixel values by: 255 for 8-bit, else the maximum found."""
    return 255 if 16 < high <= 255 else math.ceil(high)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(N, " + ", ".join(str(d) for d in shape) + ")"


def conform(raw: RawData, spec: ModelSpec) -> Dataset:
    """Fit ``raw`` to ``spec``: the samples take the spec's input shape (a CSV row or an
    image of the same number of values is laid out row-major; an NPZ array must already
    have it), labels must lie in ``0..num_classes-1``, and image-shaped inputs (rank 2 or
    3) must hold pixels scaled to [0, 1], not raw 0..255 (or 0..16) counts."""
    want = tuple(spec.input_shape)
    got = raw.sample_shape
    x = raw.x
    if got != want:
        per_sample = math.prod(want)
        if raw.source == "csv":
            if got[0] != per_sample:
                raise DatasetError(
                    f"{raw.path}: rows have {got[0]} feature columns but the spec wants "
                    f"{per_sample} per sample (input shape {want}): use data made for this "
                    "project, or make the spec from this data (`aggregator spec --data FILE`)"
                )
            x = x.reshape(len(raw), *want)
        elif raw.source == "images":
            if math.prod(got) != per_sample:
                size = "x".join(str(d) for d in got[-2:])
                wanted = "x".join(str(d) for d in want[-2:])
                raise DatasetError(
                    f"{raw.path}: images are {size} with {got[0] if len(got) == 3 else 1} "
                    f"channel(s) but the spec wants {want}: resize them to {wanted}"
                    + (" in RGB" if len(want) == 3 and want[0] == 3 else "")
                )
            x = x.reshape(len(raw), *want)
        else:
            fix = (
                f"reshape it: x = x.reshape(-1, {', '.join(str(d) for d in want)})"
                if math.prod(got) == per_sample
                else "use data made for this project, or make the spec from this data "
                "(`aggregator spec --data FILE`)"
            )
            raise DatasetError(
                f"{raw.path}: x has shape {(len(raw), *got)} but the spec wants "
                f"{_shape_text(want)}: {fix}"
            )
    _check_labels(raw.y, spec.num_classes, raw.path, "y " if raw.source == "npz" else "")
    if len(want) >= 2 and x.size:
        low, high = float(x.min()), float(x.max())
        if low >= 0 and high > 1 and bool(np.all(x == np.round(x))):
            raise DatasetError(
                f"{raw.path}: x holds whole numbers in [{low:g}, {high:g}] but the spec's input "
                f"{want} is an image whose pixels the model wants in [0, 1]: divide x by "
                f"{_pixel_scale(high)}"
            )
    x = np.ascontiguousarray(x, dtype=np.float32)
    return Dataset(torch.from_numpy(x), torch.from_numpy(raw.y), spec.num_classes, want)


def spec_channels(spec: ModelSpec) -> int | None:
    """The colour channels an image folder is read with for ``spec`` (None: not images)."""
    shape = tuple(spec.input_shape)
    if len(shape) == 3 and shape[0] in (1, 3):
        return shape[0]
    return 1 if len(shape) == 2 else None


def load_for_spec(path: Path | str, spec: ModelSpec) -> Dataset:
    """Read ``path`` and fit it to ``spec`` (:func:`read_data`, then :func:`conform`)."""
    return conform(read_data(path, spec_channels(spec)), spec)


def save_arrays(path: Path | str, x: np.ndarray, y: np.ndarray) -> None:
    """Write ``x``/``y`` as NPZ (atomically) or CSV (flattened features, then ``label``)."""
    target = Path(path)
    if target.suffix.lower() == ".npz":
        from marketplace.learning.datasets import _atomic_savez

        _atomic_savez(target, {"x": np.asarray(x, np.float32), "y": np.asarray(y, np.int64)})
        return
    if target.suffix.lower() != ".csv":
        raise DatasetError(f"{target}: write .npz or .csv, not {target.suffix!r}")
    flat = np.asarray(x, np.float32).reshape(len(y), -1)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([f"f{i}" for i in range(flat.shape[1])] + ["label"])
        for row, label in zip(flat, y, strict=True):
            writer.writerow([f"{v:.9g}" for v in row] + [int(label)])
    tmp.replace(target)
