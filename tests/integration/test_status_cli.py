"""``ledgerlearn project list|status|history`` and ``model get`` on the embedded chain,
with a real simulated project: the commands the README shows, in the positional style."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from cli_world import deployed_fixture  # noqa: F401  (the `deployed` fixture)
from federation import open_federation, synthetic_federation
from typer.testing import CliRunner

from marketplace.cli.main import app
from marketplace.learning import ModelSpec, load_dataset
from marketplace.learning.models import build_model, get_flat_params
from marketplace.rounds import RoundConfig
from marketplace.storage import LocalStore
from marketplace.views import project_history

pytestmark = pytest.mark.integration


def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, [*args, "--rpc-url", "embedded"])


def _run_project(world: Any, rounds: int, store_dir: Path) -> Any:
    fed, validation, spec = synthetic_federation(world, rounds)
    node = fed.aggregator(world, validation)
    for r in range(1, rounds + 1):
        fed.play_round(node, r)
    local = LocalStore(store_dir)  # the aggregator's store as a directory
    for data in fed.store._blocks.values():
        local.put(data)
    return fed, spec


def test_status_list_history_and_model_get(deployed: Any, tmp_path: Path) -> None:
    store = tmp_path / "agg"
    fed, spec = _run_project(deployed, rounds=2, store_dir=store)
    pid = str(fed.project_id)

    listed = _cli("project", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [p["project_id"] for p in json.loads(listed.output)] == [fed.project_id]
    human = _cli("project", "list")
    assert human.exit_code == 0 and "1 ETH" in human.output  # amounts in ether, with units

    status = _cli("project", "status", pid, "--store", str(store), "--json")
    assert status.exit_code == 0, status.output
    view = json.loads(status.output)
    assert view["phase"] == "done" and view["rounds_committed"] == 2
    assert view["last_accuracy"] is not None and 0 < view["last_accuracy"] <= 1
    watched = _cli("project", "status", pid, "--watch")  # finished: returns at once
    assert watched.exit_code == 0 and "phase done" in watched.output

    history = _cli("project", "history", pid, "--store", str(store), "--json")
    assert history.exit_code == 0, history.output
    rounds = json.loads(history.output)
    expected = project_history(deployed.market, LocalStore(store), fed.project_id)
    assert rounds == [r.to_json() for r in expected]
    assert all(r["excluded"]["3"].startswith("excluded: ") for r in rounds)
    text = _cli("project", "history", pid, "--store", str(store))
    assert text.exit_code == 0 and "round 1: trainer 3" in text.output

    out = tmp_path / "model.pt"
    got = _cli("model", "get", pid, "-o", str(out), "--store", str(store), "--json")
    assert got.exit_code == 0, got.output
    meta = json.loads(got.output)
    assert meta["round"] == 2 and meta["cid"] == expected[-1].global_model_cid
    model = build_model(spec)
    model.load_state_dict(torch.load(out, weights_only=True))
    first = tmp_path / "r1.pt"
    again = _cli("model", "get", pid, "-o", str(first), "--round", "1", "--store", str(store))
    assert again.exit_code == 0, again.output
    earlier = build_model(spec)
    earlier.load_state_dict(torch.load(first, weights_only=True))
    assert not torch.equal(get_flat_params(model), get_flat_params(earlier))
    assert not torch.equal(get_flat_params(model), get_flat_params(build_model(spec)))


def test_model_get_refuses_a_tampered_blob_and_a_missing_round(
    deployed: Any, tmp_path: Path
) -> None:
    store = tmp_path / "agg"
    fed, _ = _run_project(deployed, rounds=1, store_dir=store)
    pid = str(fed.project_id)
    missing = _cli("model", "get", pid, "--round", "2", "--store", str(store))
    assert missing.exit_code == 1 and "round 2" in str(missing.exception)
    no_store = _cli("model", "get", pid)
    assert no_store.exit_code == 1 and "--aggregator-gateway" in str(no_store.exception)

    cid = project_history(deployed.market, None, fed.project_id)[0].global_model_cid
    blob = LocalStore(store)
    # the model blob's bytes swapped for other bytes: the CID check refuses them
    path = blob.path_of(cid)
    assert path.exists()  # one block: the logreg model is small
    path.write_bytes(b"not the model")
    tampered = _cli("model", "get", pid, "-o", str(tmp_path / "x.pt"), "--store", str(store))
    assert tampered.exit_code == 1
    assert not (tmp_path / "x.pt").exists()


def test_status_watch_prints_each_change_until_the_project_is_done(
    deployed: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``project status ID --watch --json``: one document per change (a commitment, an
    opening, a phase), none for a poll that saw nothing new; it returns once done."""
    from marketplace.cli import status_cmds

    train, validation = load_dataset("synthetic", 1, num_samples=300)
    spec = ModelSpec.for_data("logreg", train.input_shape, train.num_classes, seed=0)
    fed = open_federation(deployed, train, validation, spec, trainers=3, rounds=1)
    node = fed.aggregator(deployed, validation, RoundConfig(rule="fedavg"))
    actions = [
        *(t.step for t in fed.trainers),  # three commitments
        lambda: None,  # a poll with nothing new
        *(t.step for t in fed.trainers),  # three openings
        lambda: node.commit(node.prepare(1)),
    ]
    monkeypatch.setattr(status_cmds.time, "sleep", lambda _: actions.pop(0)())
    watched = _cli("project", "status", str(fed.project_id), "--watch", "--json")
    assert watched.exit_code == 0, watched.output
    docs, text, at = [], watched.output, 0
    decoder = json.JSONDecoder()
    while text[at:].strip():
        doc, at = decoder.raw_decode(text, at + len(text[at:]) - len(text[at:].lstrip()))
        docs.append(doc)
    seen = [(d["phase"], len(d["committed"]), len(d["revealed"])) for d in docs]
    assert seen == [
        ("commit", 0, 0),
        ("commit", 1, 0),
        ("commit", 2, 0),
        ("reveal", 3, 0),
        ("reveal", 3, 1),
        ("reveal", 3, 2),
        ("aggregate", 3, 3),
        ("done", 0, 0),
    ]
    assert actions == []
