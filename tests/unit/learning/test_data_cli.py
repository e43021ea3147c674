"""``ledgerlearn data export|split|validate`` and ``aggregator spec --data``, in process:
a real starting dataset offline, per-trainer files that partition it exactly, and
validation against a spec that names what is wrong in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from marketplace.cli.main import app
from marketplace.learning import ModelSpec

KEY = "0x" + "42" * 32


def _cli(*args: str) -> tuple[int, str]:
    done = CliRunner().invoke(app, list(args))
    # main.run() prints a LedgerLearnError in one line; invoke() keeps it as the exception
    return done.exit_code, done.output + str(done.exception or "")


@pytest.fixture(scope="module")
def digits_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    code, output = _cli("data", "export", "digits", str(path))
    assert code == 0, output
    return path


def _rows(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as npz:
        return npz["x"], npz["y"]


def test_export_digits_is_the_real_bundled_set(digits_file: Path, tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    x, y = _rows(digits_file)
    assert x.shape == (1797, 8, 8) and x.dtype == np.float32 and y.dtype == np.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    bunch = load_digits()
    real = {img.astype(np.float32).tobytes() for img in bunch.images / 16.0}
    assert {row.tobytes() for row in x} <= real
    assert sorted(np.bincount(y).tolist()) == sorted(np.bincount(bunch.target).tolist())
    code, output = _cli("data", "export", "digits", str(tmp_path / "digits.csv"))
    assert code == 0, output
    assert len((tmp_path / "digits.csv").read_text().splitlines()) == 1798


@pytest.mark.parametrize("partition", ["iid", "dirichlet"])
def test_split_partitions_every_sample_exactly_once(
    digits_file: Path, tmp_path: Path, partition: str
) -> None:
    out = tmp_path / "shards"
    code, output = _cli(
        "data", "split", str(digits_file), "--trainers", "3", "--partition", partition,
        "--alpha", "0.3", "--validation-fraction", "0.25", "--seed", "7", "--out", str(out),
    )  # fmt: skip
    assert code == 0, output
    files = [out / f"trainer-{i}.npz" for i in (1, 2, 3)] + [out / "validation.npz"]
    parts = [_rows(f) for f in files]
    x_all, y_all = _rows(digits_file)
    assert sum(len(y) for _, y in parts) == len(y_all)
    assert len(parts[-1][1]) == round(0.25 * len(y_all))
    pooled = sorted(
        row.tobytes() + bytes([label]) for x, y in parts for row, label in zip(x, y, strict=True)
    )
    everything = sorted(
        row.tobytes() + bytes([label]) for row, label in zip(x_all, y_all, strict=True)
    )
    assert pooled == everything  # disjoint and complete, labels kept with their rows
    shares = np.array([np.bincount(y, minlength=10) / len(y) for _, y in parts[:3]])
    spread = float(np.abs(shares - shares.mean(0)).max())
    assert spread > 0.15 if partition == "dirichlet" else spread < 0.1
    again = tmp_path / "again"
    _cli(
        "data", "split", str(digits_file), "--trainers", "3", "--partition", partition,
        "--alpha", "0.3", "--validation-fraction", "0.25", "--seed", "7", "--out", str(again),
    )  # fmt: skip
    assert (again / "trainer-2.npz").read_bytes() == (out / "trainer-2.npz").read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--partition", "quantile"], "--partition 'quantile': choose iid or dirichlet"),
        (["--trainers", "2000"], "cannot give 2000 trainers one each"),
    ],
)
def test_split_refuses_bad_options_in_one_line(
    digits_file: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    base = {"--trainers": "3", "--partition": "iid"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    flat = [item for pair in base.items() for item in pair]
    code, output = _cli("data", "split", str(digits_file), *flat, "--out", str(tmp_path / "o"))
    assert code == 1 and message in output, output


def test_spec_from_data_and_validate_against_it(digits_file: Path, tmp_path: Path) -> None:
    spec_file = tmp_path / "spec.json"
    code, output = _cli(
        "aggregator", "spec", "--data", str(digits_file), "--out", str(spec_file), "--key", KEY
    )
    assert code == 0, output
    spec = ModelSpec.from_json(spec_file.read_bytes())
    assert spec.input_shape == (8, 8) and spec.num_classes == 10
    code, output = _cli("data", "validate", str(digits_file), "--spec", str(spec_file))
    assert code == 0 and "OK, 1797 samples of shape (8, 8)" in output, output

    x, y = _rows(digits_file)
    flat = tmp_path / "flat.npz"
    np.savez(flat, x=x.reshape(-1, 64), y=y)
    code, output = _cli("data", "validate", str(flat), "--spec", str(spec_file))
    assert code == 1
    assert "x has shape (1797, 64) but the spec wants (N, 8, 8): reshape it" in output
    raw_pixels = tmp_path / "raw.npz"
    np.savez(raw_pixels, x=x * 16, y=y)
    code, output = _cli("data", "validate", str(raw_pixels), "--spec", str(spec_file))
    assert code == 1 and "divide x by 16" in output

    code, output = _cli("data", "validate", str(digits_file))
    assert code == 1 and "a PROJECT_ID (`data validate FILE 1`) or --spec FILE" in output


def test_nodes_read_their_data_file_before_anything_else(tmp_path: Path) -> None:
    """A wrong file fails at once, not after the chain, the port or the gateway wait: here
    no node answers at the RPC URL, and the error is still the file's."""
    bad = tmp_path / "mine.npz"
    np.savez(bad, x=np.zeros((40, 8, 8), np.uint8), y=np.zeros(40, np.int64))
    no_chain = "--rpc-url=http://127.0.0.1:1"
    for args in (
        ["trainer", "run", "1", "--data", str(bad), "--account", "2"],
        ["aggregator", "run", "1", "--validation", str(bad), "--account", "1"],
    ):
        code, output = _cli(*args, no_chain)
        assert code == 1 and "x has dtype uint8 but features must be floating point" in output
