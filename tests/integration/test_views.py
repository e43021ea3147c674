"""``marketplace.views`` on the embedded chain with a real simulated project: the status
follows the round through its phases (who committed, who revealed, who is awaited, the
seconds left), the history holds each round's accuracy, inliers, exclusions with their
reason, scores, gas and transaction, and the list holds every project."""

from __future__ import annotations

import json
from typing import Any

import pytest
from federation import synthetic_federation

from marketplace.views import list_projects, project_history, project_status

pytestmark = pytest.mark.integration


def _federation(world: Any, rounds: int = 2, flippers: tuple[int, ...] = (3,)) -> Any:
    fed, validation, _ = synthetic_federation(world, rounds, flippers)
    return fed, fed.aggregator(world, validation)


def test_status_follows_the_round_and_history_explains_it(world: Any) -> None:
    fed, node = _federation(world)
    pid = fed.project_id
    addresses = [t.address for t in world.trainers[:4]]

    status = project_status(world.market, pid, fed.store)
    assert (status.phase, status.round, status.rounds_committed) == ("commit", 1, 0)
    assert status.awaited == addresses and status.committed == []
    assert status.seconds_left is not None and 0 < status.seconds_left <= 3600
    assert status.last_accuracy is None
    assert "0 of 4 committed, 4 awaited" in status.waiting_for

    fed.trainers[0].step()  # one commitment: three awaited
    fed.trainers[1].step()
    status = project_status(world.market, pid)
    assert status.committed == addresses[:2] and status.awaited == addresses[2:]

    for t in fed.trainers[2:]:
        t.step()  # every seat committed: the commit window closes early
    fed.trainers[0].step()  # one opening
    status = project_status(world.market, pid)
    assert status.phase == "reveal"
    assert status.revealed == addresses[:1] and status.awaited == addresses[1:]
    assert status.deadline == status.reveal_deadline

    for t in fed.trainers[1:]:
        t.step()
    status = project_status(world.market, pid)
    assert status.phase == "aggregate" and status.awaited == []
    assert status.waiting_for == "the aggregator's round commitment"
    node.commit(node.prepare(1))
    status = project_status(world.market, pid, fed.store)
    assert (status.phase, status.round, status.rounds_committed) == ("commit", 2, 1)
    assert status.last_accuracy is not None and 0.0 < status.last_accuracy <= 1.0

    fed.play_round(node, 2)
    status = project_status(world.market, pid, fed.store)
    assert status.phase == "done" and status.round is None
    json.dumps(status.to_json())

    history = project_history(world.market, fed.store, pid)
    assert [h.round for h in history] == [1, 2]
    for h in history:
        assert h.report_available and h.accuracy is not None and 0.0 < h.accuracy <= 1.0
        assert h.gas > 21_000 and h.tx_hash.startswith("0x") and len(h.tx_hash) == 66
        assert set(h.scores) == set(h.inliers)
        # the label flipper is filtered out, and the reason says so
        assert 3 not in h.inliers and h.excluded[3].startswith("excluded: ")
        assert set(h.inliers) | set(h.excluded) == {0, 1, 2, 3}
        assert h.trainers[3] == addresses[3]
        encoded = json.loads(json.dumps(h.to_json()))
        assert encoded["excluded"]["3"] == h.excluded[3]
    # the chain's scores are the ones the history shows
    receipt = world.chain.w3.eth.get_transaction_receipt(history[-1].tx_hash)
    assert receipt["gasUsed"] == history[-1].gas

    # without the aggregator's store the chain's facts remain, the report's do not
    bare = project_history(world.market, None, pid)
    assert [h.inliers for h in bare] == [h.inliers for h in history]
    assert all(not h.report_available and h.accuracy is None for h in bare)
    assert bare[0].excluded[3] == "excluded by the robust rule"


def test_list_projects_and_stale_phase(world: Any) -> None:
    fed, _ = _federation(world, rounds=1, flippers=())
    second, _ = world.market.create_project(
        reward=2 * 10**18,
        aggregator=world.aggregator.address,
        rounds=5,
        round_duration=60,
        min_stake=10**15,
    )
    projects = list_projects(world.market)
    assert [p.project_id for p in projects] == [fed.project_id, second]
    assert projects[0].trainer_count == 4 and projects[0].model_spec_cid is not None
    assert projects[1].reward == 2 * 10**18 and projects[1].state == "open"
    assert projects[1].global_model_cid is None
    assert json.loads(json.dumps(projects[1].to_json()))["reward"] == 2 * 10**18

    world.chain.advance_time(3 * 60 + 1)  # nobody committed, the aggregator missed it
    status = project_status(world.market, second)
    assert status.phase == "stale" and status.seconds_left is None
    world.market.finalize(second)
    assert project_status(world.market, second).phase == "finalized"
