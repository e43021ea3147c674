"""Correctness + attribution -> bounded deltas; the durable batching queue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drag.feedback import (
    Dropped,
    FeedbackDelta,
    FeedbackPolicy,
    FeedbackQueue,
    FlushOutcome,
    compute_deltas,
    queue_path,
)
from drag.receipts import Receipt
from marketplace.errors import ConfigError


def _receipt(sid: int, q: int = 0) -> Receipt:
    return Receipt(sid, q + 1, q.to_bytes(32, "big"), b"\x01" * 32, b"\x02" * 65)


def test_signs_follow_correctness() -> None:
    receipts = {1: _receipt(1), 2: _receipt(2), 3: _receipt(3)}
    good = compute_deltas([0.75, -0.25, 0.5], [1, 2, 1], True, receipts)
    by = {d.source_id: d for d in good}
    assert by[1].reliability_delta > 0 and by[1].usefulness_delta > 0
    assert by[2].reliability_delta < 0 and by[2].usefulness_delta == 0
    assert by[3].reliability_delta == 0 and by[3].usefulness_delta == -0.05  # idle
    assert by[1].reliability_delta == 1.0 and by[2].reliability_delta == -1.0  # one unit each
    assert by[1].usefulness_delta == pytest.approx(1.25 / 1.5)
    share = FeedbackPolicy(reliability_evidence="share")
    scaled = {
        d.source_id: d for d in compute_deltas([0.75, -0.25, 0.5], [1, 2, 1], True, receipts, share)
    }
    assert scaled[1].reliability_delta == pytest.approx(1.25 / 1.5)
    assert scaled[2].reliability_delta == pytest.approx(-0.25 / 1.5)
    bad = {d.source_id: d for d in compute_deltas([1.0], [1], False, {1: _receipt(1)})}
    assert bad[1].reliability_delta == -1.0 and bad[1].usefulness_delta == 0.0


@given(
    phis=st.lists(st.floats(min_value=-10, max_value=10), min_size=1, max_size=8),
    correct=st.booleans(),
    data=st.data(),
)
def test_deltas_are_bounded(phis: list[float], correct: bool, data: st.DataObject) -> None:
    sources = data.draw(st.lists(st.integers(0, 3), min_size=len(phis), max_size=len(phis)))
    evidence = data.draw(st.sampled_from(["bernoulli", "share"]))
    policy = FeedbackPolicy(
        max_reliability=2.0, max_usefulness=0.5, idle_penalty=0.1, reliability_evidence=evidence
    )
    deltas = compute_deltas(phis, sources, correct, {s: _receipt(s) for s in range(4)}, policy)
    assert all(abs(d.reliability_delta) <= 2.0 + 1e-9 for d in deltas)
    assert all(-0.1 <= d.usefulness_delta <= 0.5 + 1e-9 for d in deltas)
    assert sum(d.usefulness_delta for d in deltas if d.usefulness_delta > 0) <= 0.5 + 1e-9
    if evidence == "share":
        assert sum(abs(d.reliability_delta) for d in deltas) <= 2.0 + 1e-9
    else:
        assert all(abs(d.reliability_delta) in (0.0, 2.0) for d in deltas)


def test_delta_serialisation() -> None:
    d = FeedbackDelta(4, _receipt(4, 9), -0.125, 0.5)
    assert FeedbackDelta.from_json(json.loads(json.dumps(d.to_json()))) == d
    assert d.to_fixed(1000) == (-125, 500)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_queue_flushes_on_size_and_age(tmp_path: Path) -> None:
    batches: list[list[FeedbackDelta]] = []
    clock = Clock()
    q = FeedbackQueue(tmp_path / "q.jsonl", batches.append, max_batch=3, max_age_s=60, clock=clock)
    assert q.put([FeedbackDelta(1, _receipt(1, i), 0.1, 0.1) for i in range(2)]) == 0
    assert len(q) == 2 and batches == []
    assert q.put([FeedbackDelta(2, _receipt(2), 0.1, 0.1)]) == 3
    assert len(batches) == 1 and len(batches[0]) == 3 and len(q) == 0
    q.put([FeedbackDelta(3, _receipt(3), 0.1, 0.1)])
    clock.t += 59
    assert q.maybe_flush() == 0
    clock.t += 1
    assert q.maybe_flush() == 1 and len(batches) == 2
    assert (tmp_path / "q.jsonl").read_text(encoding="utf-8") == ""


def test_queue_survives_a_crash_and_a_failing_flush(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"

    def broken(batch: list[FeedbackDelta]) -> None:
        raise RuntimeError("chain down")

    q = FeedbackQueue(path, broken, max_batch=2)
    deltas = [FeedbackDelta(i, _receipt(i), 0.1 * i, 0.0) for i in range(3)]
    assert q.put(deltas) == 0  # flush failed, nothing lost
    assert len(q) == 3
    with path.open("a", encoding="utf-8") as f:
        f.write('{"t": 1, "delta": {"trunc')  # a torn write from a crash
    received: list[list[FeedbackDelta]] = []
    restarted = FeedbackQueue(path, received.append, max_batch=2)
    assert restarted.pending == deltas
    assert restarted.flush() == 3
    assert [len(b) for b in received] == [2, 1] and [d for b in received for d in b] == deltas
    assert len(FeedbackQueue(path, received.append)) == 0
    with pytest.raises(ConfigError):
        FeedbackQueue(path, received.append, max_batch=0)


def test_drops_are_logged_with_reasons_and_status_counts_them(tmp_path: Path) -> None:
    clock = Clock()
    deltas = [FeedbackDelta(i, _receipt(i), -1.0, 0.0) for i in (1, 2, 2)]

    def chain(batch: list[FeedbackDelta]) -> FlushOutcome:
        return FlushOutcome("0xabc", 1, (Dropped(batch[1], "stale"), Dropped(batch[2], "stale")))

    q = FeedbackQueue(tmp_path / "q.jsonl", chain, max_batch=5, clock=clock)
    q.put(deltas)
    clock.t += 30
    status = q.status()
    assert (status.pending, status.oldest_age_s, status.pending_by_source) == (
        3,
        30.0,
        {1: 1, 2: 2},
    )
    assert q.flush() == 3 and [d.delta for d in q.dropped] == deltas[1:]
    status = FeedbackQueue(tmp_path / "q.jsonl", chain).status()  # read back from disk
    assert status.pending == 0 and status.dropped_by_reason == {"stale": 2}
    assert status.last_flush == {"t": 1030.0, "tx": "0xabc", "applied": 1, "dropped": 2}


def test_per_account_queues_and_adopting_the_old_shared_queue(tmp_path: Path) -> None:
    me, other = "0x" + "aB" * 20, "0x" + "cd" * 20
    mine = queue_path(tmp_path, 1, "0xReg", me)
    assert mine == tmp_path / "drag" / f"feedback-1-0xreg-{me.lower()}.jsonl"
    assert mine != queue_path(tmp_path, 1, "0xReg", other)
    shared = tmp_path / "shared.jsonl"
    FeedbackQueue(shared, lambda b: None).put([FeedbackDelta(5, _receipt(5), 1.0, 0.0)])
    q = FeedbackQueue(mine, lambda b: None)
    assert q.adopt(shared) == 1 and not shared.exists()
    assert len(FeedbackQueue(mine, lambda b: None)) == 1  # durable
    assert q.adopt(shared) == 0
