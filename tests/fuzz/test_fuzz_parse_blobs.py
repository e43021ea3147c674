"""Fuzz what the aggregator and auditors decode from trainers and aggregators: update blobs
(safetensors header, metadata, tensors), blob manifests, sketch openings, round reports and
model specs. Each parser may only refuse with its documented error."""

from __future__ import annotations

import json
from typing import Any

import torch
from fuzzing import fuzz_pair, json_values, mutated
from hypothesis import strategies as st

from marketplace.errors import ConfigError, StorageError, UpdateRejected
from marketplace.learning import ModelSpec, num_params
from marketplace.rounds.codec import KIND_UPDATE, encode_params, get_spec
from marketplace.rounds.report import RoundReport
from marketplace.rounds.sketches import check_opening, decode_opening, project_sketch_spec
from marketplace.rounds.validate import check_bytes
from marketplace.storage import BlobManifest, MemoryStore, cid_for, put_blob
from marketplace.storage.serialize import decode_tensors, encode_tensors

SPEC = ModelSpec.for_data("logreg", (4,), 3, seed=1)
META = {"kind": KIND_UPDATE, "project": "7", "round": "2", "num_samples": "10"}
GOOD = encode_params(SPEC, torch.linspace(-1, 1, num_params(SPEC)), META)
SHAPES = {"0.weight": (3, 4), "0.bias": (3,)}
SKETCH = project_sketch_spec(7)


def _update_bytes(data: bytes) -> None:
    checked = check_bytes(0, "cid", data, SPEC, 7, 2)  # never raises
    assert checked.accepted == (checked.reason is None)
    try:
        decode_tensors(data, 1 << 20)
    except UpdateRejected:
        pass


@st.composite
def headers(draw: st.DrawFn) -> bytes:
    """A safetensors file whose JSON header is drawn: real-looking entries with hostile
    dtypes, shapes, offsets, names and metadata, over a random data section."""
    entries: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from([*SHAPES, "x", "__metadata__"]), max_size=3)):
        entries[name] = draw(
            st.fixed_dictionaries(
                {
                    "dtype": st.sampled_from(["F32", "F64", "I64", "BOOL", "F16", "X"]),
                    "shape": st.lists(st.integers(-2, 2**40) | st.text(max_size=3), max_size=9),
                    "data_offsets": st.lists(st.integers(-5, 2**40), max_size=3),
                }
            )
            | json_values(4)
        )
    entries["__metadata__"] = draw(
        st.dictionaries(st.text(max_size=12), st.text(max_size=12), max_size=5) | json_values(4)
    )
    text = json.dumps(entries).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + draw(st.binary(max_size=96))


@st.composite
def metadata_blobs(draw: st.DrawFn) -> bytes:
    """A well-formed update whose metadata values are drawn (Unicode digits included)."""
    meta = dict(META)
    for key in draw(st.lists(st.sampled_from([*META, "sketch", "sketch_salt"]), max_size=4)):
        meta[key] = draw(st.text(max_size=12) | st.sampled_from(["²", "٣", "-1", "1e9", "007"]))
    return encode_tensors({name: torch.zeros(shape) for name, shape in SHAPES.items()}, meta)


def _manifest(data: bytes) -> None:
    try:
        manifest = BlobManifest.from_bytes(data)
    except StorageError:
        return
    assert manifest.to_bytes() == data


@st.composite
def manifests(draw: st.DrawFn) -> bytes:
    chunks = draw(st.lists(st.sampled_from([cid_for(b"a"), "bafk", "", "x" * 70]), max_size=3))
    doc = {
        "kind": draw(st.sampled_from(["ledgerlearn-chunked/v1", "other"])),
        "size": draw(st.integers(-3, 10**25) | st.text(max_size=3) | st.booleans()),
        "chunks": chunks,
    }
    if draw(st.booleans()):
        doc[draw(st.text(max_size=4))] = draw(json_values(3))
    return json.dumps(doc, sort_keys=draw(st.booleans()), separators=(",", ":")).encode()


def _opening(meta: dict[str, str]) -> None:
    try:
        opening = decode_opening(meta)
    except UpdateRejected:
        pass
    else:
        assert all(isinstance(v, int) for v in opening.sketch)
    reason = check_opening(torch.zeros(num_params(SPEC)), meta, b"\0" * 32, SKETCH)
    assert isinstance(reason, str) or reason is not None


openings = st.fixed_dictionaries(
    {},
    optional={
        "sketch": st.lists(
            st.integers(-(2**40), 2**40).map(str) | st.text(max_size=4), max_size=20
        ).map(",".join)
        | st.text(max_size=40),
        "sketch_salt": st.integers(0, 2**260).map(str)
        | st.text(max_size=10)
        | st.sampled_from(["²", "٣", "-1", "007"]),
    },
)


def _report(data: bytes) -> None:
    try:
        RoundReport.from_json(data)
    except StorageError:
        pass


def _spec(data: bytes) -> None:
    store = MemoryStore()
    try:
        get_spec(store, put_blob(store, data))
    except (ConfigError, StorageError):
        pass


specs = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["mlp", "logreg", "cnn", "cnn1d", "rnn"]),
        "input_shape": st.lists(st.integers(-1, 10**6), max_size=4),
        "num_classes": st.integers(-1, 10**6),
    },
    optional={
        "hidden": st.lists(st.integers(-1, 5000), max_size=3),
        "seed": st.integers(-1, 2**64),
    },
).map(lambda d: json.dumps(d).encode())

test_fuzz_update_bytes, test_fuzz_update_bytes_long = fuzz_pair(
    "update blob: mutated bytes", mutated(GOOD), _update_bytes
)
test_fuzz_update_header, test_fuzz_update_header_long = fuzz_pair(
    "update blob: drawn header", headers(), _update_bytes
)
test_fuzz_update_metadata, test_fuzz_update_metadata_long = fuzz_pair(
    "update blob: drawn metadata", metadata_blobs(), _update_bytes
)
test_fuzz_manifest, test_fuzz_manifest_long = fuzz_pair(
    "blob manifest", manifests() | st.binary(max_size=120), _manifest
)
test_fuzz_sketch, test_fuzz_sketch_long = fuzz_pair("sketch opening", openings, _opening)
test_fuzz_report, test_fuzz_report_long = fuzz_pair(
    "round report",
    st.binary(max_size=200) | json_values().map(lambda v: json.dumps(v).encode()),
    _report,
)
test_fuzz_spec, test_fuzz_spec_long = fuzz_pair(
    "model spec", specs | st.binary(max_size=100), _spec
)
