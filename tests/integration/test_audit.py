"""``ledgerlearn audit`` on the embedded chain: a clean project replays exactly; a
tampered score, inlier mask or model CID (committed through MarketClient) is caught."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from federation import open_federation

from marketplace.audit import audit_project
from marketplace.cli.project_cmds import project_view
from marketplace.learning import Dataset, ModelSpec, load_dataset
from marketplace.nodes.aggregator import AggregatorNode, PreparedRound
from marketplace.rounds import RoundConfig
from marketplace.storage import MemoryStore, cid_for, digest_of

pytestmark = pytest.mark.integration

Tamper = Callable[[PreparedRound], dict[str, Any]]


@dataclass
class Project:
    project_id: int
    store: MemoryStore
    stores: dict[str, MemoryStore]
    validation: Dataset


def _honest(p: PreparedRound) -> dict[str, Any]:
    return {
        "global_model_cid": digest_of(p.model_cid),
        "inlier_mask": list(p.outcome.inlier_mask),
        "scores": list(p.outcome.scores),
        "rejected_mask": list(p.outcome.rejected_mask),
        "report_cid": digest_of(p.report_cid),
        "trainer_count": p.trainer_count,
    }


def _run(world: Any, rounds: int, tamper: Tamper | None = None, rule: str = "default") -> Project:
    """Four trainers on synthetic data; the last round is committed as ``tamper`` says."""
    train, validation = load_dataset("synthetic", 1, num_samples=600)
    spec = ModelSpec.for_data("logreg", train.input_shape, train.num_classes, seed=0)
    fed = open_federation(world, train, validation, spec, trainers=4, rounds=rounds)
    project_id, store, stores, trainers = fed.project_id, fed.store, fed.stores, fed.trainers
    agg_market = world.as_(world.aggregator)
    node = AggregatorNode(
        agg_market, project_id, store, validation, RoundConfig(rule=rule), resolver=stores.get
    )
    for r in range(1, rounds + 1):
        for t in trainers:
            assert t.step().status == "committed"
        for t in trainers:  # all committed: the window closed
            assert t.step().status == "revealed"
        prepared = node.prepare(r)
        if tamper is not None and r == rounds:
            agg_market.commit_round(project_id, r, **tamper(prepared))
        else:
            node.commit(prepared)
    return Project(project_id, store, stores, validation)


def _audit(world: Any, p: Project, validation: Dataset | None = None) -> Any:
    return audit_project(
        world.market, p.project_id, p.store, p.stores.get, validation or p.validation
    )


def test_clean_project_audits_ok_round_by_round(world: Any) -> None:
    project = _run(world, rounds=2)
    report = _audit(world, project)
    assert [r.round for r in report.rounds] == [1, 2]
    assert report.ok, report.to_dict()
    assert all(r.checks["scores"] is True and r.checks["model"] is True for r in report.rounds)
    assert report.notes == []
    view = project_view(world.market, project.project_id)
    for t in view["trainers"]:
        assert len(t["round_scores"]) == 2 and sum(t["round_scores"]) == t["score"]
    assert len({t["score"] for t in view["trainers"]}) > 1  # estimated, not equal shares


def test_audit_without_validation_checks_masks_against_the_published_anchor(
    world: Any,
) -> None:
    """Without the validation data an auditor cannot recompute scores nor the default
    rule's trust anchor (trained on them): it replays the filter with the anchor the
    aggregator published; without that blob, masks and models are not checked."""
    project = _run(world, rounds=1)
    report = audit_project(
        world.market, project.project_id, project.store, project.stores.get, None
    )
    assert report.ok
    checks = report.rounds[0].checks
    assert checks["scores"] is None and checks["mask"] is True and checks["model"] is True
    assert any("trust anchor the aggregator published" in n for n in report.notes)

    from marketplace.rounds.chainview import round_commit
    from marketplace.rounds.report import get_report

    commit = round_commit(world.market, project.project_id, 1, 4)
    assert commit is not None and commit.report_cid is not None
    anchor_cid = get_report(project.store, commit.report_cid).anchor_cid
    assert anchor_cid is not None
    del project.store._blocks[anchor_cid]  # the blob is gone: nothing to check masks with
    report = audit_project(
        world.market, project.project_id, project.store, project.stores.get, None
    )
    assert report.ok and report.rounds[0].checks["mask"] is None


def test_audit_flags_a_published_anchor_the_validation_data_do_not_give(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from marketplace.nodes import aggregator
    from marketplace.rounds.codec import KIND_ANCHOR

    honest = aggregator.put_round_params

    def doctored(store: Any, spec: Any, kind: str, p: int, r: int, vector: Any) -> str:
        scaled = 2 * vector if kind == KIND_ANCHOR else vector  # the anchor only
        return honest(store, spec, kind, p, r, scaled)

    monkeypatch.setattr(aggregator, "put_round_params", doctored)
    project = _run(world, rounds=1)
    (audit,) = _audit(world, project).rounds
    assert any("published trust anchor" in p for p in audit.problems)


def test_audit_of_a_rule_without_anchor_needs_no_validation_for_masks(world: Any) -> None:
    plain = _run(world, rounds=1, rule="median")
    report = audit_project(world.market, plain.project_id, plain.store, plain.stores.get, None)
    assert report.ok and report.rounds[0].checks["mask"] is True
    assert report.rounds[0].checks["model"] is True


def _bump_score(p: PreparedRound) -> dict[str, Any]:
    out = _honest(p)
    out["scores"] = [out["scores"][0] + 1, *out["scores"][1:]]
    return out


def _drop_inlier(p: PreparedRound) -> dict[str, Any]:
    out = _honest(p)
    first = out["inlier_mask"].index(True)
    out["inlier_mask"][first] = False
    out["scores"] = out["scores"][1:]
    return out


def _other_model(p: PreparedRound) -> dict[str, Any]:
    return {**_honest(p), "global_model_cid": digest_of(cid_for(b"a model nobody computed"))}


@pytest.mark.parametrize(
    ("tamper", "check"),
    [(_bump_score, "scores"), (_drop_inlier, "mask"), (_other_model, "model")],
    ids=["score", "mask", "model-cid"],
)
def test_audit_detects_tampering(world: Any, tamper: Tamper, check: str) -> None:
    project = _run(world, rounds=1, tamper=tamper)
    report = _audit(world, project)
    assert not report.ok
    (audit,) = report.rounds
    assert audit.checks[check] is False
    assert audit.problems


def test_audit_flags_validation_data_that_is_not_the_committed_one(world: Any) -> None:
    project = _run(world, rounds=1)
    other = replace(project.validation, y=project.validation.y.flip(0))
    report = _audit(world, project, other)
    assert any("validation commitment" in n for n in report.notes)
    assert not report.ok  # other validation data give other scores


def test_round_seed_comes_from_the_chain_and_a_ground_seed_is_flagged(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The aggregator's round seed derives from the market's reveal fold (the trainers'
    hidden salts, order-independent); an aggregator that picks its own seed is caught by
    the replay."""
    from marketplace.nodes import aggregator
    from marketplace.rounds.seeds import round_seed

    honest = _run(world, rounds=1)
    digest = world.market.round_state(honest.project_id, 1).reveal_fold
    assert digest != bytes(32)
    report = _audit(world, honest)
    assert report.ok and report.rounds[0].checks["report"] is True
    derived = round_seed(honest.project_id, 1, digest)
    assert derived != round_seed(honest.project_id, 2, digest)

    monkeypatch.setattr(aggregator, "round_seed", lambda *_: 12345)  # a ground seed
    ground = _run(world, rounds=1)
    (audit,) = _audit(world, ground).rounds
    assert audit.checks["report"] is False
    assert any("round seed 12345" in p for p in audit.problems)
