"""The project views on attested rounds (``project history|status``, the dashboard): each
round says who settled it, with the votes, and a round whose scores the trainers' majority
replaced shows the aggregator's scores as void and the slashed bond.

On main every view printed the aggregator's committed scores as final, whatever the
trainers attested: a self-dealing aggregator's 98% read as its slot's contribution.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from cli_world import deployed_fixture  # noqa: F401  (the `deployed` fixture)
from market_rounds import DURATION, ETH, STAKE, commit_round, open_project, play
from starlette.testclient import TestClient
from typer.testing import CliRunner

from marketplace.chain.market import RoundScores
from marketplace.cli.main import app
from marketplace.ui.app import DashboardReader, create_app
from marketplace.views import project_history, project_status

pytestmark = pytest.mark.integration

BOND = ETH // 10
DEALT = RoundScores([0, 1, 2], [98, 1, 1])  # the aggregator over-scores the slot it runs
HONEST = RoundScores([0, 1, 2], [1, 1, 2])  # what the trainers' replay gives


def attested_round(world: Any, votes: list[RoundScores | None], rounds: int = 1) -> int:
    """An attested 3-trainer project whose round 1 the aggregator commits with ``DEALT``
    scores; trainer i then attests ``votes[i]`` (None: stays silent)."""
    pid = open_project(world, 3, rounds, BOND, attested=True)
    play(world, pid, 1, world.trainers[:3])
    world.as_(world.aggregator).commit_round(
        pid, 1, global_model_cid=bytes([3]) * 32, inlier_mask=[True] * 3, scores=DEALT.scores
    )
    for trainer, vote in zip(world.trainers[:3], votes, strict=True):
        if vote is not None:
            world.as_(trainer).attest_round(pid, 1, vote)
    return pid


def test_replaced_round_voids_the_aggregators_scores_and_shows_the_slashed_bond(world):
    pid = attested_round(world, [DEALT, HONEST, HONEST])
    (record,) = project_history(world.market, None, pid)
    s = record.settlement
    assert s is not None and s.outcome == "replaced" and record.scores_void
    assert s.settled_root == "0x" + HONEST.root.hex() and s.settled_total == HONEST.total
    assert s.aggregator_root == "0x" + DEALT.root.hex() and s.aggregator_total == 100
    assert (s.majority_stake, s.active_stake, s.active_trainers) == (2 * STAKE, 3 * STAKE, 3)
    assert s.bond_slashed == BOND and s.payable
    assert [(v.index, v.for_aggregator) for v in s.votes] == [(0, True), (1, False), (2, False)]
    assert "replaced by the trainers' majority (2 of 3 active trainers" in record.settled_by
    assert "bond 0.1 ETH slashed" in record.settled_by
    assert "known only to the trainers" in (s.replacement_note or "")
    encoded = json.loads(json.dumps(record.to_json()))
    assert encoded["scores_void"] is True and encoded["settlement"]["outcome"] == "replaced"
    assert encoded["settlement"]["bond_slashed"] == BOND
    assert encoded["scores"] == {"0": 98, "1": 1, "2": 1}  # kept: what the aggregator said


def test_confirmed_pending_and_unsettled_rounds_say_so(world):
    confirmed = attested_round(world, [DEALT, DEALT, None])
    (record,) = project_history(world.market, None, confirmed)
    assert record.settlement is not None and record.settlement.outcome == "confirmed"
    assert not record.scores_void and record.settlement.bond_slashed == 0
    assert "the aggregator's root confirmed by 2 of 3 active trainers" in record.settled_by

    pending = attested_round(world, [DEALT, HONEST, None])
    (record,) = project_history(world.market, None, pending)
    assert record.settlement is not None and record.settlement.outcome == "pending"
    assert not record.settlement.payable and not record.scores_void
    assert record.settlement.majority_stake == STAKE
    assert "no majority yet (2 of 3 active trainers voted, 1 for the aggregator's root" in (
        record.settled_by
    )
    world.chain.advance_time(DURATION + 1)
    (record,) = project_history(world.market, None, pending)
    assert record.settlement is not None and record.settlement.outcome == "unsettled"
    assert "window closed without a majority" in record.settled_by


def test_unattested_round_is_the_aggregators_word(world):
    pid = open_project(world, 2, 1)
    play(world, pid, 1, world.trainers[:2])
    world.as_(world.aggregator).commit_round(
        pid, 1, global_model_cid=bytes([3]) * 32, inlier_mask=[True, True], scores=[1, 1]
    )
    (record,) = project_history(world.market, None, pid)
    assert record.settlement is not None and record.settlement.outcome == "unattested"
    assert record.settlement.payable and record.settlement.votes == []


def test_disputed_round_says_who_disputed_and_that_nothing_pays(world):
    """Projects without attestation keep ``disputeRejection`` (attested ones judge a
    rejection by the trainers' replay): a disputed round says who disputed it."""
    pid = open_project(world, 3, 2, BOND)
    play(world, pid, 1, world.trainers[:3])
    commit_round(world, pid, 1, [True, True, False], rejected=[False, False, True])
    world.as_(world.trainers[2]).dispute_rejection(pid, 1)
    (record,) = project_history(world.market, None, pid)
    s = record.settlement
    assert s is not None and s.outcome == "disputed" and not s.payable
    assert s.disputed_by == world.trainers[2].address
    assert record.settled_by.startswith(f"disputed by {world.trainers[2].address}")
    status = project_status(world.market, pid)
    assert status.state == "disputed" and status.settlements[0].outcome == "disputed"
    assert not status.attested


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--rpc-url", "embedded"])
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_status_and_history_say_the_round_was_replaced(deployed):
    pid = attested_round(deployed, [DEALT, HONEST, HONEST])
    history = json.loads(_cli("project", "history", str(pid), "--json"))
    (row,) = history
    assert row["scores_void"] is True and row["settlement"]["outcome"] == "replaced"
    assert row["scores"] == {"0": 98, "1": 1, "2": 1}  # the --json keys of main are kept
    assert {"inliers", "excluded", "accuracy", "gas", "tx_hash"} <= set(row)
    assert [v["for_aggregator"] for v in row["settlement"]["votes"]] == [True, False, False]

    text = _cli("project", "history", str(pid))
    table = text[: text.index("round 1: ")]
    assert "│ void" in table and "replaced" in table  # the table's scores and settled cells
    assert "round 1: replaced by the trainers' majority (2 of 3 active trainers" in text
    assert "known only to the trainers" in text
    assert "trainers 1, 2 (0.02 ETH stake)" in text and "trainer 0 (0.01 ETH stake)" in text

    status = json.loads(_cli("project", "status", str(pid), "--json"))
    assert status["phase"] == "done" and status["waiting_for"].startswith("finalize")
    assert status["bond_slashed"] == BOND and status["rounds_replaced"] == [1]
    assert status["settlements"][0]["outcome"] == "replaced"
    shown = json.loads(_cli("project", "show", str(pid), "--json"))
    assert shown["rounds_void"] == [1]  # the void 98 is not trainer 0's score
    assert [t["round_scores"] for t in shown["trainers"]] == [[0], [0], [0]]
    assert "count 0 here" in _cli("project", "show", str(pid))

    text = _cli("project", "status", str(pid))
    assert "aggregator bond slashed: 0.1 ETH to the trainers (rounds replaced: 1)" in text
    assert "round 1: replaced by the trainers' majority" in text


def test_status_waits_for_the_last_rounds_attestations(deployed):
    pid = attested_round(deployed, [DEALT, HONEST, None])
    status = json.loads(_cli("project", "status", str(pid), "--json"))
    assert status["phase"] == "done" and status["settlements"][0]["outcome"] == "pending"
    assert status["waiting_for"].startswith("the trainers' attestations of round 1 (no majority")
    assert "then finalize" in status["waiting_for"]


def test_dashboard_marks_void_scores_and_the_slashed_bond(world):
    pid = attested_round(world, [DEALT, HONEST, HONEST])
    reader = DashboardReader(world.market, None, None)
    client = TestClient(create_app(reader, refresh_s=0), base_url="http://127.0.0.1:8780")
    api = client.get(f"/api/projects/{pid}").json()
    (row,) = api["history"]
    assert row["scores_void"] is True and row["settlement"]["bond_slashed"] == BOND
    assert api["status"]["bond_slashed"] == BOND and api["status"]["rounds_replaced"] == [1]
    page = client.get(f"/projects/{pid}").text
    assert 'id="attestations"' in page and 'id="void-scores"' in page
    assert "replaced: replaced by the trainers" in page
    assert "known only to the trainers" in page
    # the void 98 is not counted as trainer 0's score: no row shows it
    contributions = page[page.index('id="contributions"') : page.index('id="void-scores"')]
    assert "<td>98</td>" not in contributions and "0.1 ETH" in page
    # each trainer's share of the slashed bond is shown beside its reward
    assert contributions.count(f"{BOND // 3 / ETH:.18f}".rstrip("0") + " ETH") == 3


def test_a_self_dealing_aggregator_node_is_shown_replaced(world):
    """Node level: a real round (trainer nodes, the cheating aggregator scoring its own
    slot, replays and attestations by the nodes); the history, with the aggregator's round
    report, shows its scores void and the bond slashed."""
    from federation import self_dealing_federation

    fed, agg = self_dealing_federation(world)
    for _ in range(2):
        for node in fed.trainers:
            node.step()
    agg.step()
    (before,) = project_history(world.market, fed.store, fed.project_id)
    assert before.settlement is not None and before.settlement.outcome == "pending"
    assert before.report_available and not before.scores_void
    for node in fed.trainers:
        node.step()
    (record,) = project_history(world.market, fed.store, fed.project_id)
    s = record.settlement
    assert s is not None and s.outcome == "replaced" and record.scores_void
    assert world.market.project(fed.project_id).bond_slashed  # (this project posted none)
    assert s.bond_slashed == world.market.project(fed.project_id).bond_posted == 0
    # the aggregator's slot was over-scored: the void scores say so, the settled root differs
    assert max(record.scores.values()) > sum(record.scores.values()) // 2
    assert s.settled_root != s.aggregator_root
    status = project_status(world.market, fed.project_id, fed.store)
    assert status.rounds_replaced == [1] and status.bond_slashed == s.bond_slashed
