"""The dRAG sources view on the embedded chain: reputation over time replayed from
``FeedbackApplied`` events equals what the registry returns after each transaction."""

from __future__ import annotations

import pytest
from sources_world import apply_batches, register_sources

from marketplace.chain.connection import connect_embedded
from marketplace.chain.deploy import DEFAULT_SOURCE_STAKE, deploy_contract
from marketplace.chain.registry import SCALE, RegistryClient
from marketplace.chain.tx import TxSender
from marketplace.views.sources import beta_reliability, source_histories

pytestmark = pytest.mark.integration

ONE = SCALE  # one query of evidence


def _registry() -> tuple[RegistryClient, RegistryClient, int]:
    chain = connect_embedded()
    admin_acct, evaluator_acct, *owners = (chain.dev_account(i) for i in range(5))
    deployed = deploy_contract(TxSender(chain, admin_acct), "SourceRegistry", DEFAULT_SOURCE_STAKE)
    admin = RegistryClient(chain, deployed.address, admin_acct)
    admin.grant_evaluator(evaluator_acct.address)
    register_sources(admin, owners[:3], [f"http://127.0.0.1:{9100 + i}" for i in range(3)])
    return admin, admin.as_account(evaluator_acct), deployed.block


def test_history_replays_every_feedback_transaction_to_the_current_scores() -> None:
    admin, evaluator, start = _registry()
    ids = [1, 2, 3]
    snapshots: list[dict] = []
    nonces: dict[int, int] = {}
    for batch in ({0: ONE, 1: -ONE}, {0: ONE // 2, 1: -ONE}, {0: -ONE // 4}):
        apply_batches(evaluator, ids, [batch], seed=len(snapshots), nonces=nonces)
        snapshots.append({s.source_id: s for s in admin.all_scores()})
    views = source_histories(admin, from_block=start)
    assert [v.source_id for v in views] == ids
    good, bad, idle = views
    assert [len(v.points) for v in views] == [3, 2, 0]
    for i, point in enumerate(good.points):  # each point is the registry's state after that tx
        onchain = snapshots[i][1]
        assert (point.alpha, point.beta) == (onchain.alpha, onchain.beta)
    assert [(p.alpha, p.beta) for p in bad.points] == [(0, ONE), (0, 2 * ONE)]
    assert bad.points[-1].reliability == pytest.approx(1 / 4)  # Beta(1, 1 + 2)
    assert good.reliability == pytest.approx((1 + 1.5) / (2 + 1.75))
    assert idle.reliability == 0.5 and idle.points == []
    assert all(v.complete for v in views)
    assert good.points[0].block < good.points[1].block < good.points[2].block
    assert len({p.tx_hash for p in good.points}) == 3
    assert good.to_json()["history"][1]["reliability"] == pytest.approx(
        beta_reliability(good.points[1].alpha, good.points[1].beta)
    )


def test_a_history_read_from_too_late_a_block_says_it_is_incomplete() -> None:
    admin, evaluator, _ = _registry()
    apply_batches(evaluator, [1, 2, 3], [{0: ONE}])
    late = admin.chain.w3.eth.block_number + 1
    apply_batches(evaluator, [1, 2, 3], [{1: ONE}], seed=1)  # nonce 1 of source 2
    views = source_histories(admin, from_block=late)
    assert views[0].complete is False  # its only feedback came before `late`
    assert views[1].complete is True and len(views[1].points) == 1
