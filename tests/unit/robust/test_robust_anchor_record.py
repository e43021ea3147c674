"""The default filter's anchor record (stage 4c): a trainer's mean cosine with the trust
anchor over its rounds, which names label flippers in the rounds where one cosine cannot.

Synthetic rounds with exact cosines: each row is ``a * r + sqrt(1 - a^2) * u`` (times a
size in [0.8, 1.2]) for the unit reference ``r`` and a random unit ``u`` orthogonal to
it, so its cosine with the reference is exactly ``a``. 14 honest trainers sit at
``a = 0.1``; 6 "flippers" sit at ``a = -0.05`` and, in the round under test, at
``a = +0.02``: the picture measured on MNIST-1D (see
:mod:`marketplace.robust.anchor_record`). Honest trainers dip to ``a = -0.03`` now and
then.
"""

from __future__ import annotations

import math

import pytest
import torch

from marketplace.errors import AssumptionViolated
from marketplace.robust import AnchorRecord, DefaultConfig, DefaultState, default_filter
from marketplace.robust.result import FilterResult

D = 400
N_HONEST = 14
F = 6
IDS = [f"t{i}" for i in range(N_HONEST + F)]


def _reference() -> torch.Tensor:
    r = torch.zeros(D)
    r[0] = 1.0
    return r


def _rows(cosines: list[float], gen: torch.Generator) -> torch.Tensor:
    rows = []
    for a in cosines:
        u = torch.randn(D, generator=gen)
        u[0] = 0.0
        u = u / u.norm()
        size = 0.8 + 0.4 * float(torch.rand(1, generator=gen))
        rows.append((a * _reference() + math.sqrt(1 - a * a) * u) * size)
    return torch.stack(rows)


def _round(flipper_cos: float, gen: torch.Generator) -> torch.Tensor:
    return _rows([0.1] * N_HONEST + [flipper_cos] * F, gen)


def _history(rounds: int, seed: int) -> tuple[DefaultState | None, torch.Generator]:
    """The state after ``rounds`` rounds in which the flippers pointed slightly away."""
    gen = torch.Generator().manual_seed(seed)
    state: DefaultState | None = None
    for _ in range(rounds):
        out = default_filter(
            _round(-0.05, gen), reference=_reference(), state=state, client_ids=IDS
        )
        assert not bool(out.inlier_mask[N_HONEST:].any())  # stage 4b alone catches these
        state = out.state
    return state, gen


def _flippers_kept(result: FilterResult) -> int:
    return int(result.inlier_mask[N_HONEST:].sum())


@pytest.mark.parametrize("seed", range(3))
def test_record_drops_flippers_in_a_round_where_their_cosine_is_positive(seed: int) -> None:
    state, gen = _history(3, seed)
    updates = _round(0.02, gen)
    with_record = default_filter(updates, reference=_reference(), state=state, client_ids=IDS)
    assert _flippers_kept(with_record) == 0, with_record.reason
    assert all("anchor record" in with_record.reason[i] for i in range(N_HONEST, N_HONEST + F))
    assert bool(with_record.inlier_mask[:N_HONEST].all()), with_record.reason
    # the same round judged on its own cosine alone lets them in
    switched_off = default_filter(
        updates,
        config=DefaultConfig(anchor_record=False),
        reference=_reference(),
        state=state,
        client_ids=IDS,
    )
    assert _flippers_kept(switched_off) == F
    assert _flippers_kept(default_filter(updates, reference=_reference(), client_ids=IDS)) == F
    no_ids = default_filter(updates, reference=_reference(), state=state)
    assert _flippers_kept(no_ids) == F


def test_record_holds_the_mean_cosine_of_each_trainer_by_id() -> None:
    state, gen = _history(2, seed=5)
    assert state is not None
    # next round arrives in another row order: the record follows the ids, not the rows
    order = list(reversed(range(N_HONEST + F)))
    updates = _round(0.02, gen)[order]
    out = default_filter(
        updates, reference=_reference(), state=state, client_ids=[IDS[i] for i in order]
    )
    record = out.state.record
    assert record.rounds == {cid: 3 for cid in IDS}
    assert record.sums["t0"] == pytest.approx(0.3, abs=1e-5)
    assert record.sums["t19"] == pytest.approx(-0.08, abs=1e-5)
    assert not bool(out.inlier_mask[:F].any())  # the flippers, now in the first rows


def test_good_record_excuses_a_small_dip_but_not_a_turn() -> None:
    state, gen = _history(3, seed=2)
    cosines = [0.1] * N_HONEST + [-0.05] * F
    cosines[0] = -0.03  # within the dip tolerance (0.05) of a trainer with a good record
    cosines[1] = -0.2  # turned against the anchor: no record excuses that
    out = default_filter(_rows(cosines, gen), reference=_reference(), state=state, client_ids=IDS)
    assert bool(out.inlier_mask[0]), out.reason.get(0)
    assert not bool(out.inlier_mask[1]) and "server update" in out.reason[1]
    assert bool(out.inlier_mask[2:N_HONEST].all())
    # the same dip from a newcomer (no record) or without the record is dropped
    newcomer = default_filter(_rows(cosines, gen), reference=_reference(), client_ids=IDS)
    assert not bool(newcomer.inlier_mask[0]) and "anchor record" in newcomer.reason[0]
    off = default_filter(
        _rows(cosines, gen),
        config=DefaultConfig(anchor_record=False),
        reference=_reference(),
        state=state,
        client_ids=IDS,
    )
    assert not bool(off.inlier_mask[0]) and "server update" in off.reason[0]


def test_record_counts_only_rows_that_reached_the_anchor_test() -> None:
    gen = torch.Generator().manual_seed(3)
    updates = _round(-0.05, gen)
    updates[0] = updates[0] * 1e-3  # a free rider: dropped before the anchor stage
    out = default_filter(updates, reference=_reference(), client_ids=IDS)
    assert "free rider" in out.reason[0]
    assert "t0" not in out.state.record.rounds
    assert out.state.record.rounds["t1"] == 1


def test_client_ids_must_name_each_row_once() -> None:
    updates = _round(0.1, torch.Generator().manual_seed(0))
    with pytest.raises(AssumptionViolated, match="one distinct client id per update"):
        default_filter(updates, reference=_reference(), client_ids=["a"] * len(IDS))
    with pytest.raises(AssumptionViolated, match="one distinct client id per update"):
        default_filter(updates, reference=_reference(), client_ids=IDS[:-1])


def test_anchor_record_is_immutable_and_consistent() -> None:
    empty = AnchorRecord()
    one = empty.with_round(["a", "b"], [0.5, -0.25])
    two = one.with_round(["a"], [0.25])
    assert empty.sums == {} and one.sums == {"a": 0.5, "b": -0.25}
    assert two.sums == {"a": 0.75, "b": -0.25} and two.rounds == {"a": 2, "b": 1}
    with pytest.raises(AssumptionViolated, match="round count for every cosine sum"):
        AnchorRecord(sums={"a": 0.1}, rounds={})
    with pytest.raises(AssumptionViolated, match="at least one round"):
        AnchorRecord(sums={"a": 0.1}, rounds={"a": 0})
    with pytest.raises(ValueError):
        one.with_round(["a", "b"], [0.1])
