"""Hostile bytes from trainers and aggregators: Unicode digits, deep JSON and oversized
model specs are refused with a reason, never an uncaught exception or a crash."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from marketplace.errors import ConfigError, FetchRefused, UpdateRejected
from marketplace.learning import ModelSpec, num_params
from marketplace.rounds.codec import (
    KIND_UPDATE,
    MAX_MODEL_PARAMS,
    encode_params,
    get_spec,
    put_params,
    put_spec,
)
from marketplace.rounds.sketches import check_opening, decode_opening, project_sketch_spec
from marketplace.rounds.validate import check_bytes, fetch_update
from marketplace.storage import MemoryStore, get_blob, put_blob
from marketplace.storage import serialize as serialize_module

SPEC = ModelSpec.for_data("logreg", (4,), 3, seed=1)
PROJECT, ROUND = 7, 2
UNICODE_DIGITS = ["²", "٣", "１０", "߃", "𝟗"]


def _meta(**over: str) -> dict[str, str]:
    meta = {"kind": KIND_UPDATE, "project": str(PROJECT), "round": str(ROUND), "num_samples": "10"}
    meta.update(over)
    return meta


@pytest.mark.parametrize("digits", [*UNICODE_DIGITS, "007", " 5", "1_0"])
def test_unicode_digit_sample_counts_are_rejected_not_raised(digits: str) -> None:
    store = MemoryStore()
    cid = put_params(store, SPEC, torch.zeros(num_params(SPEC)), _meta(num_samples=digits))
    checked = fetch_update(store, 3, cid, SPEC, PROJECT, ROUND)
    assert not checked.accepted and checked.kind == "metadata"
    assert "num_samples" in (checked.reason or "") and "ASCII" in (checked.reason or "")


@pytest.mark.parametrize("salt", [*UNICODE_DIGITS, "-1", "1" * 81])
def test_unicode_digit_sketch_salts_are_a_sketch_rejection(salt: str) -> None:
    spec = project_sketch_spec(PROJECT)
    vector = torch.zeros(num_params(SPEC))
    metadata = {"sketch": ",".join(["0"] * spec.dim), "sketch_salt": salt}
    with pytest.raises(UpdateRejected, match="sketch opening is malformed"):
        decode_opening(metadata)
    reason = check_opening(vector, metadata, b"\0" * 32, spec)
    assert isinstance(reason, str) and "malformed" in reason


def test_unicode_digits_in_sketch_values_are_refused() -> None:
    with pytest.raises(UpdateRejected, match="malformed"):
        decode_opening({"sketch": "1,²,3", "sketch_salt": "5"})
    assert decode_opening({"sketch": "1,-2,3", "sketch_salt": "5"}).sketch == (1, -2, 3)


def test_deep_json_in_every_parser_is_refused_inside_a_node_process() -> None:
    """200,000 nested brackets in a safetensors header, a blob manifest, a round report,
    a model spec and a dRAG answer: each is refused with a reason; the process (which has
    imported the aggregator, hence py_ecc) survives instead of dying with SIGSEGV."""
    code = textwrap.dedent(
        """
        import asyncio
        import marketplace.nodes.aggregator  # what a node imports (eth-keys, py_ecc, torch)
        from marketplace.errors import ConfigError, StorageError, UpdateRejected
        from marketplace.learning import ModelSpec
        from marketplace.rounds.codec import get_spec
        from marketplace.rounds.report import RoundReport
        from marketplace.rounds.validate import check_bytes
        from marketplace.storage import BlobManifest, MemoryStore, put_blob
        from marketplace.storage.serialize import decode_tensors

        deep = b"[" * 200_000
        spec = ModelSpec.for_data("mlp", (784,), 10)  # blobs up to 268 kB
        header = len(deep).to_bytes(8, "little") + deep
        checked = check_bytes(0, "cid", header, spec, 1, 1)
        assert checked.kind == "malformed", checked
        try:
            decode_tensors(header, 10**7)
        except UpdateRejected:
            pass
        for parse, error in (
            (lambda: BlobManifest.from_bytes(deep), StorageError),
            (lambda: RoundReport.from_json(deep), StorageError),
            (lambda: get_spec(store, put_blob(store, deep[:60_000])), ConfigError),
        ):
            store = MemoryStore()
            try:
                parse()
            except error:
                pass
            else:
                raise AssertionError("accepted")
        print("survived")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-2000:]}"
    assert out.stdout.strip() == "survived"


def test_a_model_spec_over_the_parameter_cap_is_refused_before_allocation() -> None:
    store = MemoryStore()
    huge = ModelSpec.for_data("mlp", (100_000, 100_000), 10)  # 6.4e11 parameters
    cid = put_spec(store, huge)
    with pytest.raises(ConfigError, match=f"over the limit of {MAX_MODEL_PARAMS:,}"):
        get_spec(store, cid)
    fine = ModelSpec.for_data("cnn", (3, 32, 32), 10)
    assert get_spec(store, put_spec(store, fine)) == fine


def test_a_spec_whose_layer_overflows_torch_is_a_refusal_not_a_crash() -> None:
    """Found by the fuzz suite in a fresh clone: two huge dimensions overflow torch's
    storage size even on the meta device (RuntimeError) before the parameter count."""
    store = MemoryStore()
    raw = b'{"kind": "mlp", "input_shape": [3003, 4518, 369838], "num_classes": 459533}'
    with pytest.raises(ConfigError, match="dimension of 5,017,797,036,252"):
        get_spec(store, put_blob(store, raw))


def test_a_spec_blob_over_64_kib_is_refused_unread() -> None:
    store = MemoryStore()
    cid = put_blob(store, json.dumps({"kind": "mlp", "pad": "x" * 70_000}).encode())
    with pytest.raises(Exception, match="over the limit of 65536"):
        get_spec(store, cid)


def test_declared_shapes_are_checked_before_any_tensor_is_allocated(monkeypatch) -> None:
    """A blob whose header names more parameters than the spec is refused from the header
    alone: safetensors' loader (which allocates) is never called."""
    calls: list[int] = []
    real_load = serialize_module._st_load

    def counting_load(data: bytes):  # type: ignore[no-untyped-def]
        calls.append(len(data))
        return real_load(data)

    monkeypatch.setattr(serialize_module, "_st_load", counting_load)
    bigger = ModelSpec.for_data("logreg", (40,), 3, seed=1)
    blob = encode_params(bigger, torch.zeros(num_params(bigger)), _meta())
    checked = check_bytes(0, "cid", blob, SPEC, PROJECT, ROUND)
    assert checked.kind == "shape" and calls == []
    good = encode_params(SPEC, torch.zeros(num_params(SPEC)), _meta())
    assert check_bytes(0, "cid", good, SPEC, PROJECT, ROUND).accepted and len(calls) == 1


def test_a_many_chunk_blob_cannot_stretch_past_the_blob_deadline() -> None:
    class SlowStore(MemoryStore):
        """Each block arrives just within any per-block deadline (a unit-test fake)."""

        def _get_unverified(self, cid: str) -> bytes:
            time.sleep(0.05)
            return super()._get_unverified(cid)

    store = SlowStore()
    cid = put_blob(store, b"x" * 100, chunk_size=10)
    with pytest.raises(FetchRefused, match="within 0.1 s") as info:
        get_blob(store, cid, 1000, deadline_s=0.1)
    assert info.value.kind == "timeout"
    assert get_blob(store, cid, 1000, deadline_s=5.0) == b"x" * 100
