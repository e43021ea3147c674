"""Bring-your-own data: every format read and fitted to a spec, and every way a file can
be wrong given as one line that names the array, its shape or dtype, and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from marketplace.errors import DatasetError
from marketplace.learning import ModelSpec, load_dataset
from marketplace.learning.datafiles import conform, load_for_spec, read_data, save_arrays

DIGITS = ModelSpec.for_data("mlp", (8, 8), 10)
TABULAR = ModelSpec.for_data("mlp", (3,), 2)
RGB = ModelSpec.for_data("cnn", (3, 4, 4), 2)


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def _digits_arrays(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    train, _ = load_dataset("digits", 0)
    return train.x[:n].numpy(), train.y[:n].numpy()


def test_npz_in_the_spec_shape_loads_as_float32_int64(tmp_path: Path) -> None:
    x, y = _digits_arrays()
    data = load_for_spec(
        _npz(tmp_path / "d.npz", x=x.astype(np.float64), y=y.astype(np.int32)), DIGITS
    )
    assert data.x.dtype == torch.float32 and data.y.dtype == torch.int64
    assert tuple(data.x.shape) == (40, 8, 8) and data.num_classes == 10
    assert torch.equal(data.x, torch.from_numpy(x)) and data.y.tolist() == y.tolist()


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"x": np.zeros((100, 64), np.float32), "y": np.zeros(100, np.int64)},
            r"x has shape \(100, 64\) but the spec wants \(N, 8, 8\): reshape it: "
            r"x = x\.reshape\(-1, 8, 8\)",
        ),
        (
            {"x": np.zeros((100, 63), np.float32), "y": np.zeros(100, np.int64)},
            r"x has shape \(100, 63\) but the spec wants \(N, 8, 8\): use data made for this "
            r"project, or make the spec from this data \(`aggregator spec --data FILE`\)",
        ),
        (
            {"x": np.full((5, 8, 8), 16.0, np.float32), "y": np.zeros(5, np.int64)},
            r"x holds whole numbers in \[16, 16\] but the spec's input \(8, 8\) is an image "
            r"whose pixels the model wants in \[0, 1\]: divide x by 16",
        ),
        (
            {"x": np.full((5, 8, 8), 200.0, np.float32), "y": np.zeros(5, np.int64)},
            r"divide x by 255",
        ),
        (
            {"x": np.zeros((5, 8, 8), np.float32), "y": np.full(5, 10, np.int64)},
            r"y holds label 10 but the spec has 10 classes \(0\.\.9\): relabel the data, or "
            r"make the spec with --classes 11",
        ),
    ],
)
def test_npz_that_does_not_fit_the_spec(
    tmp_path: Path, arrays: dict[str, np.ndarray], message: str
) -> None:
    path = _npz(tmp_path / "d.npz", **arrays)
    raw = read_data(path)  # readable for any project...
    with pytest.raises(DatasetError, match=message) as info:
        conform(raw, DIGITS)  # ...but not for this one
    assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"x": np.zeros((5, 8, 8), np.uint8), "y": np.zeros(5, np.int64)},
            r"x has dtype uint8 but features must be floating point: save x\.astype\('float32'\)$",
        ),
        (
            {"x": np.full((5, 8, 8), 16, np.int64), "y": np.zeros(5, np.int64)},
            r"x has dtype int64 .* save x\.astype\('float32'\) / 16 \(pixels scaled to \[0, 1\]\)",
        ),
        (
            {"x": np.zeros((5, 8, 8), np.float32), "y": np.zeros(5, np.float64)},
            r"y has dtype float64 but labels must be integer class ids: save y\.astype\('int64'\)",
        ),
        (
            {"x": np.zeros((5, 8, 8), np.float32), "y": np.zeros((5, 10), np.int64)},
            r"y has shape \(5, 10\) but labels need shape \(N,\).*argmax\(1\) for one-hot",
        ),
        (
            {"x": np.zeros((4, 8, 8), np.float32), "y": np.zeros(5, np.int64)},
            r"x has shape \(4, 8, 8\) but y has shape \(5,\); x needs one row per label",
        ),
        (
            {"x": np.full((5, 8, 8), np.nan, np.float32), "y": np.zeros(5, np.int64)},
            r"320 NaN or infinite value\(s\) in x; drop or impute those samples",
        ),
        (
            {"x": np.zeros((5, 8, 8), np.float32)},
            r"NPZ lacks array\(s\) \['y'\] \(it has \['x'\]\)",
        ),
        (
            {"x": np.zeros((5, 8, 8), np.float32), "y": np.full(5, -1, np.int64)},
            r"y labels must be integers >= 0, found -1",
        ),
        (
            {"x": np.zeros((0, 8, 8), np.float32), "y": np.zeros(0, np.int64)},
            r"no samples",
        ),
    ],
)
def test_npz_that_no_project_can_use(
    tmp_path: Path, arrays: dict[str, np.ndarray], message: str
) -> None:
    with pytest.raises(DatasetError, match=message) as info:
        read_data(_npz(tmp_path / "d.npz", **arrays))
    assert "\n" not in str(info.value)


def test_csv_rows_are_laid_out_into_the_spec_shape(tmp_path: Path) -> None:
    x, y = _digits_arrays(12)
    path = tmp_path / "d.csv"
    save_arrays(path, x, y)
    assert path.read_text().splitlines()[0].endswith(",f63,label")
    raw = read_data(path)
    assert raw.source == "csv" and raw.sample_shape == (64,)
    data = conform(raw, DIGITS)
    assert tuple(data.x.shape) == (12, 8, 8)
    assert torch.equal(data.x, torch.from_numpy(x)) and data.y.tolist() == y.tolist()


def test_csv_errors_name_the_columns_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a,b,label\n1,2,0\n3,4,1\n")
    with pytest.raises(
        DatasetError, match=r"rows have 2 feature columns but the spec wants 64 per sample"
    ):
        load_for_spec(path, DIGITS)
    path.write_text("a,b,c,label\n1,2,3,0\n3,4,5,2\n")
    with pytest.raises(DatasetError, match=r"holds label 2 but the spec has 2 classes"):
        load_for_spec(path, TABULAR)
    path.write_text("a,b,c,label\n1,2,nan,0\n")
    with pytest.raises(DatasetError, match=r"1 NaN or infinite value\(s\) in the feature columns"):
        read_data(path)


def test_tabular_specs_take_any_value_range(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b,c,label\n100,2,-3,0\n40,5,6,1\n")
    data = load_for_spec(path, TABULAR)
    assert data.x.tolist() == [[100.0, 2.0, -3.0], [40.0, 5.0, 6.0]]


def _image_folder(root: Path, size: tuple[int, int], mode: str, labels: list[int]) -> Path:
    rng = np.random.default_rng(0)
    for i, label in enumerate(labels):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        Image.fromarray(pixels, mode).save(folder / f"img{i}.png")
    return root


def test_image_folder_gray_is_scaled_and_labelled_by_folder_name(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "imgs", (8, 8), "L", [0, 3, 3, 9])  # classes 1-2 absent
    data = load_for_spec(root, DIGITS)
    assert tuple(data.x.shape) == (4, 8, 8) and data.y.tolist() == [0, 3, 3, 9]
    assert 0.0 <= float(data.x.min()) and float(data.x.max()) <= 1.0
    first = np.asarray(Image.open(root / "0" / "img0.png"), dtype=np.float32) / 255
    assert np.allclose(data.x[0].numpy(), first)
    with_channel = load_for_spec(root, ModelSpec.for_data("cnn", (1, 8, 8), 10))
    assert tuple(with_channel.x.shape) == (4, 1, 8, 8)


def test_image_folder_rgb_is_channels_first(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "imgs", (4, 4), "RGB", [0, 1])
    raw = read_data(root)
    assert raw.sample_shape == (3, 4, 4)
    data = load_for_spec(root, RGB)
    pixels = np.asarray(Image.open(root / "1" / "img1.png"), dtype=np.float32) / 255
    assert np.allclose(data.x[1].numpy(), pixels.transpose(2, 0, 1))


def test_image_folder_errors(tmp_path: Path) -> None:
    big = _image_folder(tmp_path / "big", (28, 28), "L", [0, 1])
    with pytest.raises(
        DatasetError,
        match=r"images are 28x28 with 1 channel\(s\) but the spec wants \(8, 8\): "
        r"resize them to 8x8",
    ):
        load_for_spec(big, DIGITS)
    named = tmp_path / "named"
    (named / "cat").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"subfolder 'cat' is not a class id"):
        read_data(named)
    with pytest.raises(DatasetError, match=r"one subfolder per class.*found none"):
        read_data(tmp_path / "named" / "cat")
    (tmp_path / "empty" / "0").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"no images"):
        read_data(tmp_path / "empty")
    mixed = _image_folder(tmp_path / "mixed", (8, 8), "L", [0])
    _image_folder(mixed, (9, 9), "L", [1])
    with pytest.raises(DatasetError, match=r"is 9x9 but .* is 8x8: resize all images"):
        read_data(mixed)
    (mixed / "1" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=r"broken\.png: not a readable image"):
        read_data(mixed)


def test_unknown_paths_and_formats(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"no such data file or folder"):
        read_data(tmp_path / "nope.npz")
    (tmp_path / "d.txt").write_text("1,2\n")
    with pytest.raises(DatasetError, match=r"unsupported data format '\.txt'; use \.npz"):
        read_data(tmp_path / "d.txt")
    with pytest.raises(DatasetError, match=r"write \.npz or \.csv"):
        save_arrays(tmp_path / "out.txt", np.zeros((1, 2)), np.zeros(1))
