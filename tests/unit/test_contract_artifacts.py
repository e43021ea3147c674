"""The committed ABI/bytecode artifacts must be exactly what the sources compile to."""

from __future__ import annotations

from pathlib import Path

from marketplace.chain.compile import build, render_artifact
from marketplace.paths import CONTRACT_BUILD


def test_committed_artifacts_match_a_fresh_compile(tmp_path: Path) -> None:
    fresh = {p.name: p.read_bytes() for p in build(tmp_path)}
    committed = {p.name: p.read_bytes() for p in CONTRACT_BUILD.glob("*.json")}
    assert sorted(fresh) == sorted(committed), (
        "artifact set differs: run `ledgerlearn contracts build`"
    )
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale artifacts {stale}: run `ledgerlearn contracts build` and commit"


def test_artifact_rendering_is_deterministic() -> None:
    art = {"b": 1, "a": [3, 2], "abi": []}
    assert render_artifact(art) == render_artifact(dict(reversed(art.items())))
