"""``ledgerlearn data export|split|validate``: bring your own data (formats: docs/data.md).

``export`` writes a real starting dataset offline (scikit-learn's bundled digits, or the
other built-in sets); ``split`` cuts a dataset into per-trainer files and the owner's
validation file (IID or Dirichlet label skew); ``validate`` reads a file and checks it
against a project's model spec, with one line naming what is wrong and the fix.
Heavy imports (numpy, torch, web3) happen inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from marketplace.cli.common import (
    AGGREGATOR_GATEWAY_ENV,
    DEFAULT_URL,
    JsonOut,
    RpcUrl,
    console,
    emit_json,
)
from marketplace.errors import ConfigError

if TYPE_CHECKING:
    from marketplace.learning import ModelSpec
    from marketplace.learning.datafiles import RawData

app = typer.Typer(
    help="Bring your own data: export a starting set, split it among trainers, validate it.",
    no_args_is_help=True,
)

DataPath = Annotated[
    Path,
    typer.Argument(
        metavar="FILE", help="An .npz (x, y), a .csv (features + label) or an image folder."
    ),
]


def _classes_text(counts: dict[int, int]) -> str:
    return " ".join(f"{label}:{count}" for label, count in sorted(counts.items()))


@app.command("export")
def export(
    name: Annotated[str, typer.Argument(help="digits, mnist1d or synthetic.")],
    out: Annotated[Path, typer.Argument(help="File to write: .npz or .csv.")],
    seed: Annotated[int, typer.Option(min=0, help="Seed of mnist1d/synthetic.")] = 0,
    json_out: JsonOut = False,
) -> None:
    """Write a built-in dataset (all its samples) as .npz or .csv, offline: digits is
    scikit-learn's 1,797 real 8x8 handwritten digits, pixels scaled to [0, 1]."""
    import numpy as np

    from marketplace.learning import load_dataset
    from marketplace.learning.datafiles import save_arrays

    train, test = load_dataset(name, seed)
    x = np.concatenate([train.x.numpy(), test.x.numpy()])
    y = np.concatenate([train.y.numpy(), test.y.numpy()])
    save_arrays(out, x, y)
    if json_out:
        emit_json({"path": str(out), "samples": len(y), "shape": list(x.shape[1:])})
        return
    console.print(
        f"wrote {out}: {len(y)} samples of shape {tuple(x.shape[1:])}, {int(y.max()) + 1} classes"
    )


@app.command("split")
def split(
    file: DataPath,
    trainers: Annotated[int, typer.Option(min=1, help="Number of trainer files to write.")],
    out: Annotated[Path, typer.Option(help="Folder for trainer-N.npz and validation.npz.")],
    partition: Annotated[
        str, typer.Option(help="iid, or dirichlet (label skew, see --alpha).")
    ] = "iid",
    alpha: Annotated[
        float, typer.Option(min=0.0, help="Dirichlet concentration (smaller: more skew).")
    ] = 0.5,
    validation_fraction: Annotated[
        float,
        typer.Option(min=0.0, max=0.9, help="Share kept as the owner's validation file (0: none)."),
    ] = 0.2,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the shuffle and the partition.")] = 0,
    json_out: JsonOut = False,
) -> None:
    """Split a dataset into one file per trainer and the owner's validation file."""
    import numpy as np

    from marketplace.learning import partition as cut
    from marketplace.learning.datafiles import read_data, save_arrays

    if partition not in ("iid", "dirichlet"):
        raise ConfigError(f"--partition {partition!r}: choose iid or dirichlet (with --alpha)")
    if partition == "dirichlet" and alpha <= 0:
        raise ConfigError(f"--alpha {alpha}: the Dirichlet concentration must be > 0")
    raw = read_data(file)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(raw))
    n_val = round(len(raw) * validation_fraction)
    if validation_fraction > 0 and n_val == 0:
        raise ConfigError(
            f"{file}: {len(raw)} samples leave none for validation at --validation-fraction "
            f"{validation_fraction}; raise it or pass 0"
        )
    val_idx, pool = np.sort(order[:n_val]), order[n_val:]
    if len(pool) < trainers:
        raise ConfigError(
            f"{file}: {len(pool)} samples cannot give {trainers} trainers one each; "
            "use fewer --trainers or a smaller --validation-fraction"
        )
    scheme = "iid" if partition == "iid" else f"dirichlet:{alpha}"
    parts = cut(raw.y[pool], trainers, scheme, seed)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for i, part in enumerate(parts, start=1):
        idx = np.sort(pool[part.numpy()])
        path = out / f"trainer-{i}.npz"
        save_arrays(path, raw.x[idx], raw.y[idx])
        rows.append(_summary(path, raw.y[idx]))
    if n_val:
        path = out / "validation.npz"
        save_arrays(path, raw.x[val_idx], raw.y[val_idx])
        rows.append(_summary(path, raw.y[val_idx]))
    if json_out:
        emit_json({"files": rows, "partition": scheme, "seed": seed})
        return
    for row in rows:
        counts = _classes_text(row["classes"])
        console.print(
            f"{row['path']}: {row['samples']} samples, classes {counts}",
            highlight=False,
            soft_wrap=True,
        )
    small = [r["path"] for r in rows[:trainers] if r["samples"] < 32]
    if small:
        console.print(
            f"[yellow]note:[/] {', '.join(small)} hold fewer than 32 samples, a spec's default "
            "min_samples: those trainers would refuse to train; use fewer --trainers"
        )


def _summary(path: Path, y: Any) -> dict[str, Any]:
    import numpy as np

    labels, counts = np.unique(y, return_counts=True)
    classes = {int(lab): int(c) for lab, c in zip(labels, counts, strict=True)}
    return {"path": str(path), "samples": int(len(y)), "classes": classes}


def _project_spec(
    project: int, spec_file: Path | None, gateway: str | None, rpc_url: str
) -> tuple[ModelSpec, bytes]:
    """The project's spec (from --spec, checked against the chain, or from the aggregator's
    gateway) and its on-chain validation commitment."""
    from marketplace.chain.connection import connect
    from marketplace.chain.deploy import load_manifest
    from marketplace.chain.market import MarketClient
    from marketplace.nodes.trainer import check_project_spec, fetch_project_spec
    from marketplace.storage import GatewayReader

    chain = connect(rpc_url)
    market = MarketClient(chain, load_manifest(chain).address("ContributionMarket"))
    info = market.project(project)
    if spec_file is not None:
        spec = check_project_spec(_read_spec(spec_file), info, str(spec_file))
        return spec, info.validation_commitment
    if gateway is None:
        raise ConfigError(
            f"to read project {project}'s model spec pass --spec FILE (the owner's spec file) "
            f"or --aggregator-gateway URL (or set {AGGREGATOR_GATEWAY_ENV})"
        )
    reader = GatewayReader(gateway, allow_private=chain.development, what="--aggregator-gateway")
    try:
        spec = fetch_project_spec(reader, info)
    finally:
        reader.close()
    return spec, info.validation_commitment


def _read_spec(path: Path) -> ModelSpec:
    from marketplace.learning import ModelSpec

    if not path.is_file():
        raise ConfigError(
            f"{path}: no such model spec file; `ledgerlearn aggregator spec` writes one"
        )
    return ModelSpec.from_json(path.read_bytes())


def _report(raw: RawData, spec: ModelSpec) -> dict[str, Any]:
    from marketplace.learning.datafiles import conform
    from marketplace.rounds.codec import spec_cid

    data = conform(raw, spec)
    min_samples = spec.privacy.min_samples if spec.privacy is not None else None
    return {
        "path": str(raw.path),
        "format": raw.source,
        "samples": len(data),
        "shape": list(spec.input_shape),
        "classes": raw.class_counts(),
        "num_classes": spec.num_classes,
        "spec_cid": spec_cid(spec),
        "min_samples": min_samples,
        "enough_to_train": min_samples is None or len(data) >= min_samples,
        "_data": data,
    }


@app.command("validate")
def validate(
    file: DataPath,
    project: Annotated[
        int | None,
        typer.Argument(
            metavar="PROJECT_ID",
            min=1,
            help="Check against this project's model spec, and say whether FILE is its "
            "committed validation set.",
            show_default=False,
        ),
    ] = None,
    spec: Annotated[
        Path | None,
        typer.Option(help="A model spec JSON (with PROJECT_ID: checked against its CID)."),
    ] = None,
    aggregator_gateway: Annotated[
        str | None,
        typer.Option(
            envvar=AGGREGATOR_GATEWAY_ENV,
            help="With PROJECT_ID and no --spec: fetch the spec from the aggregator's gateway.",
        ),
    ] = None,
    rpc_url: RpcUrl = DEFAULT_URL,
    json_out: JsonOut = False,
) -> None:
    """Check a data file against a model spec (--spec FILE) or a project's (PROJECT_ID):
    shape, dtype, labels, pixel scale; with PROJECT_ID also whether it is the validation
    set the project committed to."""
    from marketplace.learning.datafiles import read_data, spec_channels
    from marketplace.rounds.codec import validation_commitment

    if project is None and spec is None:
        raise ConfigError(
            "say what the data must fit: a PROJECT_ID (`data validate FILE 1`) or --spec FILE"
        )
    commitment: bytes | None = None
    if project is not None:
        model_spec, commitment = _project_spec(project, spec, aggregator_gateway, rpc_url)
    else:
        assert spec is not None
        model_spec = _read_spec(spec)
    report = _report(read_data(file, spec_channels(model_spec)), model_spec)
    data = report.pop("_data")
    if commitment is not None:
        report["project"] = project
        report["is_validation_set"] = validation_commitment(data) == commitment
    if json_out:
        emit_json(report)
        return
    console.print(
        f"{file}: OK, {report['samples']} samples of shape {tuple(report['shape'])} "
        f"({report['format']}), classes {_classes_text(report['classes'])} of "
        f"{report['num_classes']}, fits spec {report['spec_cid']}",
        highlight=False,
        soft_wrap=True,
    )
    if not report["enough_to_train"]:
        console.print(
            f"[yellow]note:[/] the spec's min_samples is {report['min_samples']}: a trainer "
            "refuses to train on fewer samples than that"
        )
    if commitment is not None:
        verdict = (
            f"it is project {project}'s committed validation set"
            if report["is_validation_set"]
            else f"it is not project {project}'s committed validation set (fine for a "
            "trainer's own data)"
        )
        console.print(verdict)
