"""A finished project stays auditable after its trainers have gone (issue 15): the
aggregator keeps every update blob a commitment refers to (pinned, served by its gateway)
and the audit finds them there. Data missing from every store is reported as "cannot
verify: N blobs unavailable" with its own exit code (4), never as a MISMATCH."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from cli_world import deployed_fixture  # noqa: F401  (the `deployed` fixture)
from federation import Federation, synthetic_federation

from marketplace.audit import audit_project
from marketplace.chain.node import free_port
from marketplace.cli.audit_cmds import EXIT_ENCRYPTED, EXIT_MISMATCH, EXIT_UNAVAILABLE, audit
from marketplace.learning import Dataset
from marketplace.learning.datasets import save_npz
from marketplace.rounds.chainview import round_commit, update_commits
from marketplace.storage import BlobManifest, LocalStore, MemoryStore

pytestmark = pytest.mark.integration


def _finished(world: Any, rounds: int = 2) -> tuple[Federation, Dataset]:
    """Four trainers (one flipping labels) through ``rounds`` rounds; the aggregator
    fetches from the trainers' own stores."""
    fed, validation, _ = synthetic_federation(world, rounds)
    node = fed.aggregator(world, validation)
    for r in range(1, rounds + 1):
        fed.play_round(node, r)
    return fed, validation


def _update_blocks(world: Any, fed: Federation, round_: int) -> list[str]:
    """Every block (manifest and chunks) of the round's committed updates."""
    blocks = []
    for c in update_commits(world.market, fed.project_id, round_).values():
        manifest = BlobManifest.from_bytes(fed.store.get(c.cid), c.cid)
        blocks += [c.cid, *manifest.chunks]
    return blocks


def _gone(_: str) -> None:
    """The trainers have left: no gateway answers for any of them."""
    return None


def test_audit_is_ok_after_the_trainers_leave_and_cannot_verify_without_the_blobs(
    world: Any,
) -> None:
    fed, validation = _finished(world)
    pid = fed.project_id
    for r in (1, 2):  # the aggregator kept (and pinned) every block of every update
        blocks = _update_blocks(world, fed, r)
        assert len(blocks) >= 8
        assert all(fed.store.is_pinned(b) for b in blocks)

    for trainers in (_gone, {a: MemoryStore() for a in fed.stores}.get):  # left, or wiped
        report = audit_project(world.market, pid, fed.store, trainers, validation)
        assert report.ok and report.unavailable == 0, report.to_dict()
        assert all(r.checks["model"] and r.checks["scores"] for r in report.rounds)

    # the aggregator lost its copies of round 2's updates too: cannot verify, no mismatch
    lost = _update_blocks(world, fed, 2)
    for block in lost:
        del fed.store._blocks[block]
    report = audit_project(world.market, pid, fed.store, _gone, validation)
    assert report.ok, report.to_dict()  # missing data is not a finding
    assert report.unavailable == 4
    assert report.rounds[0].checks["model"] is True
    assert all(v is None for k, v in report.rounds[1].checks.items() if k != "report")
    assert any(n.startswith("cannot verify: 4 blobs unavailable") for n in report.notes)

    # ... but the trainers still serve them: the replay finds them there, and it is OK
    report = audit_project(world.market, pid, fed.store, fed.stores.get, validation)
    assert report.ok and report.unavailable == 0


def test_a_lost_round_report_cannot_be_verified(world: Any) -> None:
    fed, validation = _finished(world, rounds=1)
    commit = round_commit(world.market, fed.project_id, 1)
    assert commit is not None and commit.report_cid is not None
    manifest = BlobManifest.from_bytes(fed.store.get(commit.report_cid), commit.report_cid)
    del fed.store._blocks[manifest.chunks[0]]
    report = audit_project(world.market, fed.project_id, fed.store, _gone, validation)
    assert report.ok and report.rounds[0].unavailable == [commit.report_cid]


def _run_audit(pid: int, store: Path, validation: Path) -> int:
    try:
        audit(pid, validation=validation, store=store, rpc_url="embedded", json_out=True)
    except typer.Exit as done:
        return int(done.exit_code)
    return 0


def test_audit_exit_codes_after_everyone_leaves(
    deployed: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ledgerlearn audit`` with the aggregator's store directory only (the trainers
    are gone): 0, then 4 once its update blobs are deleted; never 1."""
    assert len({EXIT_MISMATCH, EXIT_ENCRYPTED, EXIT_UNAVAILABLE, 0}) == 4
    fed, validation = _finished(deployed, rounds=1)
    store = tmp_path / "aggregator"
    local = LocalStore(store)
    for data in fed.store._blocks.values():
        local.put(data)
    save_npz(validation, tmp_path / "validation.npz")
    assert _run_audit(fed.project_id, store, tmp_path / "validation.npz") == 0
    capsys.readouterr()

    for block in _update_blocks(deployed, fed, 1):
        local.path_of(block).unlink()
    code = _run_audit(fed.project_id, store, tmp_path / "validation.npz")
    assert code == EXIT_UNAVAILABLE == 4
    assert '"unavailable": 4' in capsys.readouterr().out

    # the aggregator has gone too (nothing answers at its gateway): still not a mismatch
    with pytest.raises(typer.Exit) as gone:
        audit(
            fed.project_id,
            aggregator_gateway=f"http://127.0.0.1:{free_port()}",
            rpc_url="embedded",
            json_out=True,
        )
    assert gone.value.exit_code == EXIT_UNAVAILABLE
    assert '"unavailable": 1' in capsys.readouterr().out
