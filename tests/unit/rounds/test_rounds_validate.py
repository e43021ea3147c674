"""Validation of fetched updates: every malformed kind is rejected with its reason, and
the round still completes with the well-formed rest."""

from __future__ import annotations

import torch

from marketplace.learning import ModelSpec, num_params
from marketplace.rounds import RoundConfig, RoundState, fetch_update, run_round
from marketplace.rounds.codec import (
    KIND_UPDATE,
    encode_params,
    max_blob_bytes,
    param_shapes,
    put_params,
)
from marketplace.rounds.hyper import HyperConfig
from marketplace.storage import ContentStore, MemoryStore, cid_for, put_blob
from marketplace.storage.serialize import encode_tensors

SPEC = ModelSpec.for_data("logreg", (4,), 3, seed=1)
PROJECT, ROUND = 7, 2


def _meta(**over: str) -> dict[str, str]:
    meta = {"kind": KIND_UPDATE, "project": str(PROJECT), "round": str(ROUND), "num_samples": "10"}
    meta.update(over)
    return meta


def _check(store: ContentStore | None, cid: str, index: int = 0):
    return fetch_update(store, index, cid, SPEC, PROJECT, ROUND)


def test_good_update_is_accepted_with_its_sample_count() -> None:
    store = MemoryStore()
    vec = torch.linspace(-1, 1, num_params(SPEC))
    cid = put_params(store, SPEC, vec, _meta())
    checked = _check(store, cid)
    assert checked.accepted and checked.reason is None
    assert torch.equal(checked.vector, vec)
    assert checked.num_samples == 10


def test_cid_mismatch_is_rejected() -> None:
    store = MemoryStore()
    cid = put_params(store, SPEC, torch.zeros(num_params(SPEC)), _meta())
    manifest = store.get(cid)
    chunk = manifest.decode().split('"chunks":["')[1].split('"')[0]
    store._blocks[chunk] = store._blocks[chunk][:-1] + b"\x01"  # tamper with the served bytes
    checked = _check(store, cid)
    assert not checked.accepted and checked.kind == "cid"


def test_missing_block_and_missing_endpoint_are_rejected() -> None:
    never_stored = cid_for(b"never stored")
    assert _check(MemoryStore(), never_stored).kind == "missing"
    assert _check(None, never_stored).kind == "missing"


def test_truncated_and_corrupt_bytes_are_rejected() -> None:
    store = MemoryStore()
    data = encode_params(SPEC, torch.ones(num_params(SPEC)), _meta())
    truncated = _check(store, put_blob(store, data[:-7]))
    assert truncated.kind == "truncated", truncated.reason
    corrupt = _check(store, put_blob(store, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......"))
    assert corrupt.kind == "malformed", corrupt.reason


def test_wrong_shape_and_wrong_names_are_rejected() -> None:
    store = MemoryStore()
    names = list(param_shapes(SPEC))
    wrong_shape = {names[0]: torch.zeros(2, 2), names[1]: torch.zeros(3)}
    checked = _check(store, put_blob(store, encode_tensors(wrong_shape, _meta())))
    assert checked.kind == "shape", checked.reason
    wrong_names = {"evil": torch.zeros(15)}
    assert _check(store, put_blob(store, encode_tensors(wrong_names, _meta()))).kind == "names"


def test_nan_and_inf_are_rejected() -> None:
    store = MemoryStore()
    for bad in (float("nan"), float("inf")):
        vec = torch.zeros(num_params(SPEC))
        vec[3] = bad
        checked = _check(store, put_params(store, SPEC, vec, _meta()))
        assert checked.kind == "non-finite", checked.reason


def test_oversized_blob_is_refused_before_download() -> None:
    store = MemoryStore()
    cid = put_blob(store, b"\x00" * (max_blob_bytes(SPEC) + 1))
    checked = _check(store, cid)
    assert checked.kind == "too large", checked.reason


def test_update_for_another_round_or_bad_count_is_rejected() -> None:
    store = MemoryStore()
    vec = torch.zeros(num_params(SPEC))
    assert _check(store, put_params(store, SPEC, vec, _meta(round="1"))).kind == "metadata"
    assert _check(store, put_params(store, SPEC, vec, _meta(kind="model"))).kind == "metadata"
    assert _check(store, put_params(store, SPEC, vec, _meta(num_samples="-3"))).kind == "metadata"


def test_round_completes_with_the_well_formed_rest() -> None:
    store = MemoryStore()
    d = num_params(SPEC)
    gen = torch.Generator().manual_seed(0)
    good = [torch.randn(d, generator=gen) * 0.1 + 0.5 for _ in range(4)]
    nan = torch.zeros(d)
    nan[0] = float("nan")
    cids = [put_params(store, SPEC, v, _meta()) for v in good]
    cids.append(put_params(store, SPEC, nan, _meta()))
    cids.append(put_blob(store, b"garbage"))
    cids.append(put_params(store, SPEC, good[0], _meta(round="9")))
    checked = [_check(store, cid, i) for i, cid in enumerate(cids)]
    submissions = [c.vector if c.accepted else c.reason for c in checked]
    outcome = run_round(
        torch.zeros(d),
        submissions,
        [float(c.num_samples) for c in checked],
        RoundConfig(hyper=HyperConfig()),
        RoundState.initial(HyperConfig()),
    )
    assert outcome.rejected_mask == [False] * 4 + [True] * 3
    assert set(outcome.rejections) == {4, 5, 6}
    assert outcome.rejections[4].startswith("non-finite")
    assert outcome.rejections[6].startswith("metadata")
    assert sum(outcome.inlier_mask) >= 3
    assert not any(outcome.inlier_mask[4:])
    assert bool(torch.isfinite(outcome.new_global_params).all())
    assert float(outcome.new_global_params.abs().sum()) > 0
