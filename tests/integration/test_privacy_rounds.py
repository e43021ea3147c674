"""Rounds with sealed updates on the embedded chain: every update a trainer serves is
ciphertext to anyone but the project's readers; the aggregator opens and aggregates them;
an auditor with a reader key replays the project exactly, and one without gets "cannot
verify N updates: encrypted", not a mismatch. A DP project reports each trainer's epsilon."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from federation import open_federation

from marketplace.audit import audit_project
from marketplace.learning import ModelSpec, load_dataset, num_params
from marketplace.nodes.aggregator import AggregatorNode, RoundSummary
from marketplace.privacy.declare import project_privacy
from marketplace.privacy.envelope import is_sealed, seal
from marketplace.privacy.keys import ReaderKey
from marketplace.rounds import get_report
from marketplace.rounds.chainview import update_commits
from marketplace.rounds.codec import KIND_UPDATE, decode_params, encode_params
from marketplace.storage import get_blob, put_blob

pytestmark = pytest.mark.integration


def _project(
    world: Any, rounds: int, cheat: bool = False, **privacy: Any
) -> tuple[Any, AggregatorNode, ReaderKey]:
    train, validation = load_dataset("synthetic", 1, num_samples=600)
    reader = ReaderKey.from_eth_key(world.aggregator.key)
    settings = project_privacy([reader.public_hex], rounds=rounds, **privacy)
    spec = ModelSpec.for_data(
        "logreg", train.input_shape, train.num_classes, seed=0, privacy=settings
    )
    fed = open_federation(world, train, validation, spec, trainers=4, rounds=rounds)
    node = fed.aggregator(world, validation)
    for r in range(1, rounds + 1):
        honest = fed.trainers[: 3 if cheat else 4]
        for t in honest:
            assert t.step().status == "committed"
        if cheat:  # the last trainer seals an update that reports no epsilon
            liar = fed.trainers[3]
            meta = {"kind": KIND_UPDATE, "project": str(fed.project_id), "round": str(r)}
            inner = encode_params(spec, torch.zeros(num_params(spec)), meta)
            liar.commit(r, put_blob(liar.store, seal(inner, meta, settings.readers, b"x" * 32)))
        for t in honest:  # all committed: the commit window closed
            assert t.step().status == "revealed"
        if cheat:
            liar.reveal(r)
        assert isinstance(node.step(), RoundSummary)
    return fed, node, reader


def test_sealed_rounds_aggregate_and_audit_only_with_a_reader_key(world: Any) -> None:
    fed, node, reader = _project(world, rounds=2)
    spec = node.spec()
    for r in (1, 2):
        commits = update_commits(world.market, fed.project_id, r)
        assert len(commits) == 4
        for c in commits.values():
            blob = get_blob(fed.stores[c.trainer], c.cid, 10**7)
            assert is_sealed(blob)
            with pytest.raises(Exception, match="update rejected"):
                decode_params(spec, blob)  # an observer cannot read the update
    info = world.market.project(fed.project_id)
    assert info.rounds_committed == 2
    from marketplace.rounds.chainview import round_commit

    commit = round_commit(world.market, fed.project_id, 2, 4)
    assert commit is not None and sum(commit.inlier_mask) >= 3
    assert not any(commit.rejected_mask)
    validation = node.validation
    with_key = audit_project(
        world.market, fed.project_id, fed.store, fed.stores.get, validation, reader=reader
    )
    assert with_key.ok and with_key.encrypted == 0, with_key.to_dict()
    assert all(r.checks["scores"] is True for r in with_key.rounds)
    without = audit_project(world.market, fed.project_id, fed.store, fed.stores.get, validation)
    assert without.ok and without.encrypted == 4
    assert without.rounds[0].checks["mask"] is None
    assert any("cannot verify 4 updates: encrypted" in n for n in without.notes)


def test_dp_project_reports_epsilon_per_update(world: Any) -> None:
    fed, node, _ = _project(world, rounds=1, dp_epsilon=4.0, local_steps=4)
    commit_cids = update_commits(world.market, fed.project_id, 1)
    from marketplace.rounds.chainview import round_commit

    onchain = round_commit(world.market, fed.project_id, 1, 4)
    assert onchain is not None and onchain.report_cid is not None
    report = get_report(fed.store, onchain.report_cid)
    assert report.rejected == {}
    checked = node.collect(1, commit_cids, node.spec())
    for c in checked.values():
        assert c.accepted and 0 < float(c.metadata["dp_epsilon"]) <= 4.0
        held = len(fed.trainers[c.index].data)
        assert c.num_samples == 2 ** (held.bit_length() - 1) != held  # bucketed, not exact


def test_an_update_without_its_epsilon_is_rejected_with_the_reason_in_the_report(
    world: Any,
) -> None:
    fed, _node, _ = _project(world, rounds=1, cheat=True, dp_epsilon=4.0, local_steps=4)
    from marketplace.rounds.chainview import round_commit

    onchain = round_commit(world.market, fed.project_id, 1, 4)
    assert onchain is not None and onchain.report_cid is not None
    assert onchain.rejected_mask == [False, False, False, True]
    report = get_report(fed.store, onchain.report_cid)
    assert report.rejected[3].startswith("privacy: no dp_epsilon reported")
