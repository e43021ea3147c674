"""Round reports and carried state: canonical bytes, round trips through a store."""

from __future__ import annotations

import json

import torch

from marketplace.robust import AnchorRecord, DefaultState, FoolsGoldHistory
from marketplace.rounds import (
    HyperConfig,
    RoundConfig,
    RoundReport,
    RoundState,
    build_report,
    get_report,
    get_rule_state,
    put_report,
    put_rule_state,
    run_round,
)
from marketplace.rounds.seeds import derive_seed
from marketplace.storage import MemoryStore, cid_for


def _report() -> RoundReport:
    gen = torch.Generator().manual_seed(0)
    updates: list = [torch.randn(8, generator=gen) + 2 for _ in range(4)]
    updates.append("shape: wrong")
    outcome = run_round(
        torch.zeros(8), updates, None, RoundConfig(), RoundState.initial(HyperConfig())
    )
    return build_report(
        project_id=3,
        round_=1,
        config=RoundConfig(),
        outcome=outcome,
        previous_model_cid=None,
        global_model_cid=cid_for(b"model"),
        update_cids={i: cid_for(bytes([i])) for i in range(5)},
        rule_state_cid=None,
    )


def test_report_round_trips_through_a_store_with_a_stable_cid() -> None:
    store = MemoryStore()
    report = _report()
    cid = put_report(store, report)
    assert cid == put_report(MemoryStore(), _report())
    loaded = get_report(store, cid)
    assert loaded == report
    assert loaded.rejected == {4: "shape: wrong"}
    assert loaded.hyper_next.clip_bound is not None
    raw = report.to_json_bytes()
    assert json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode() == raw


def test_rule_states_round_trip() -> None:
    store = MemoryStore()
    tensor = torch.arange(5, dtype=torch.float32)
    assert torch.equal(get_rule_state(store, put_rule_state(store, tensor)), tensor)
    history = FoolsGoldHistory(sums={"0": torch.ones(3), "12": torch.zeros(3)})
    back = get_rule_state(store, put_rule_state(store, history))
    assert isinstance(back, FoolsGoldHistory)
    assert set(back.sums) == {"0", "12"} and torch.equal(back.sums["0"], torch.ones(3))
    assert put_rule_state(store, None) is None and get_rule_state(store, None) is None


def test_default_state_round_trips_exactly_and_deterministically() -> None:
    store = MemoryStore()
    record = AnchorRecord().with_round(["0", "7"], [0.1 + 1e-12, -1 / 3]).with_round(["7"], [0.2])
    state = DefaultState(previous_aggregate=torch.linspace(-1, 1, 6), record=record)
    cid = put_rule_state(store, state)
    back = get_rule_state(store, cid)
    assert isinstance(back, DefaultState)
    assert back.record == record  # float64 sums: a resumed run adds up what a live one did
    assert back.previous_aggregate is not None
    assert torch.equal(back.previous_aggregate, state.previous_aggregate)
    assert put_rule_state(MemoryStore(), back) == cid
    empty_aggregate = DefaultState(previous_aggregate=None, record=record)
    assert get_rule_state(store, put_rule_state(store, empty_aggregate)) == empty_aggregate
    assert put_rule_state(store, DefaultState()) is None


def test_derived_seeds_are_stable_and_distinct() -> None:
    assert derive_seed("train", 1, 2, 3) == derive_seed("train", 1, 2, 3)
    assert derive_seed("train", 1, 2, 3) != derive_seed("train", 1, 2, 4)
    assert 0 <= derive_seed("round", 9) < 2**63
