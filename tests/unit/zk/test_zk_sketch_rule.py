"""Sketches, the inlier rule and the public-hash fold (pure code, no circuit)."""

import random

import pytest
import torch

from marketplace.errors import AssumptionViolated, UpdateRejected, ZkError
from zk.filter_rule import FilterRule, apply_rule, lower_median
from zk.public_hash import commitments_accumulator, flags_word
from zk.shape import CircuitShape
from zk.sketch import (
    PROJECTION_CHUNK,
    SketchSpec,
    _chunk_generator,
    make_salt,
    project,
    quantize,
    sketch_commitment,
    sketch_update,
)
from zk.witness import build_round


def test_projection_matches_dense_matrix_across_chunks() -> None:
    d, n = 8, PROJECTION_CHUNK + 100
    update = torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cols = []
    for chunk in range(2):
        signs = torch.randint(0, 2, (d, PROJECTION_CHUNK), generator=_chunk_generator(5, chunk))
        cols.append(signs.to(torch.float64) * 2 - 1)
    dense = torch.cat(cols, dim=1)[:, :n] / d**0.5
    assert torch.allclose(project(update, d, seed=5), dense @ update)


def test_sketch_is_deterministic_and_roughly_norm_preserving() -> None:
    spec = SketchSpec(dim=64, frac_bits=16, seed=3)
    update = torch.randn(20_000, generator=torch.Generator().manual_seed(1))
    a, b = sketch_update(update, spec), sketch_update(update.clone(), spec)
    assert a == b and len(a) == 64
    norm = torch.linalg.vector_norm(torch.tensor(a, dtype=torch.float64) / 2**16)
    assert 0.6 < float(norm / torch.linalg.vector_norm(update.double())) < 1.4
    assert sketch_update(update, SketchSpec(dim=64, seed=4)) != a


def test_quantize_saturates_and_rejects_nan() -> None:
    assert quantize(torch.tensor([1e12, -1e12, 0.5]), 16, 32) == [2**31 - 1, -(2**31), 32768]
    with pytest.raises(UpdateRejected):
        sketch_update(torch.tensor([float("nan")]), SketchSpec(dim=16))


def test_commitment_binds_sketch_and_salt() -> None:
    s = [1, -2, 3] + [0] * 13
    c = sketch_commitment(s, salt=9)
    assert c == sketch_commitment(list(s), salt=9)
    assert c != sketch_commitment(s, salt=10)
    assert c != sketch_commitment([2, -2, 3] + [0] * 13, salt=9)
    with pytest.raises(UpdateRejected):
        sketch_commitment([2**31] + [0] * 15)
    assert make_salt(1, "0xabc", 2) != make_salt(1, "0xabc", 3)


def test_lower_median_convention_matches_torch() -> None:
    rng = random.Random(0)
    for k in range(1, 12):
        vals = [rng.randint(-50, 50) for _ in range(k)]
        assert lower_median(vals) == int(torch.tensor(vals).median())
    with pytest.raises(AssumptionViolated):
        lower_median([])


def test_rule_flags_a_far_outlier_and_ignores_inactive_slots() -> None:
    shape = CircuitShape(6, 4, 32)
    rng = random.Random(2)
    honest = [[rng.randint(-100, 100) + 1000 for _ in range(4)] for _ in range(4)]
    rows = [*honest, [10**6] * 4, [0] * 4]
    off = [[v + shape.value_offset for v in r] for r in rows]
    out = apply_rule(off, [1, 1, 1, 1, 1, 0], FilterRule(2, 1), shape)
    assert out.mask == (1, 1, 1, 1, 0, 0)
    assert out.signed_sums(32) == [sum(r[j] for r in honest) for j in range(4)]
    with pytest.raises(AssumptionViolated):
        apply_rule(off, [0] * 6, FilterRule(), shape)


def test_public_hash_depends_on_every_public_value() -> None:
    shape = CircuitShape(4, 16, 32)
    sk = [[i * 10 + j for j in range(16)] for i in range(3)]
    base = dict(project_id=1, round_index=2, sketches=sk, salts=[5, 6, 7])
    _, st = build_round(shape, **base)  # type: ignore[arg-type]
    for change in ({"round_index": 3}, {"project_id": 2}, {"salts": [5, 6, 8]}):
        _, other = build_round(shape, **{**base, **change})  # type: ignore[arg-type]
        assert other.public_hash != st.public_hash
    _, rule2 = build_round(shape, **base, rule=FilterRule(3, 1))  # type: ignore[arg-type]
    assert rule2.public_hash != st.public_hash
    # the chain binds project, round, arrival order and each commitment's slot
    chain = commitments_accumulator(1, 2, [(0, 5), (2, 6)])
    assert chain != commitments_accumulator(1, 2, [(2, 6), (0, 5)])
    assert chain != commitments_accumulator(1, 2, [(1, 5), (2, 6)])
    assert chain != commitments_accumulator(1, 3, [(0, 5), (2, 6)])
    assert chain != commitments_accumulator(2, 2, [(0, 5), (2, 6)])
    with pytest.raises(ZkError, match="commitment 0"):
        commitments_accumulator(1, 2, [(0, 0)])
    with pytest.raises(ZkError, match="inlier but not active"):
        flags_word([0, 1], [1, 0], 2, 1)
