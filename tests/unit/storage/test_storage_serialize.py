"""Model-update serialization: safetensors only, and every malformed update refused."""

from __future__ import annotations

import io
import json
import struct

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.errors import UpdateRejected
from marketplace.storage import (
    MemoryStore,
    cid_for,
    decode_tensors,
    encode_tensors,
    flatten,
    get_blob,
    put_blob,
    shapes_of,
    unflatten,
)

LIMIT = 1 << 20


def _update(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "fc.weight": torch.randn(4, 3, generator=generator),
        "fc.bias": torch.randn(4, generator=generator),
        "emb": torch.randn(2, 5, generator=generator).half(),
        "steps": torch.tensor([7], dtype=torch.int64),
    }


def test_round_trip_keeps_values_dtypes_and_metadata() -> None:
    update = _update()
    data = encode_tensors(update, {"round": "3", "trainer": "0xabc"})
    tensors, metadata = decode_tensors(data, LIMIT, expected_shapes=shapes_of(update))
    assert metadata == {"round": "3", "trainer": "0xabc"}
    assert set(tensors) == set(update)
    for name, tensor in update.items():
        assert tensors[name].dtype == tensor.dtype
        assert torch.equal(tensors[name], tensor)


def test_encoding_is_deterministic_so_the_cid_is_too() -> None:
    # safetensors writes metadata from a Rust HashMap in a random order; we must not.
    metadata = {f"key{i}": str(i) for i in range(20)}
    update = _update()
    reordered = dict(reversed(list(update.items())))
    first = encode_tensors(update, metadata)
    for _ in range(5):
        assert encode_tensors(reordered, dict(reversed(list(metadata.items())))) == first
        assert encode_tensors(_update(), metadata) == first


def test_encoding_is_pinned_across_versions() -> None:
    # An auditor replaying a round must get the same CIDs: fail loudly if the layout moves.
    tensors = {
        "w": torch.arange(6, dtype=torch.float32).reshape(2, 3),
        "b": torch.ones(2, dtype=torch.float16),
    }
    data = encode_tensors(tensors, {"round": "1", "trainer": "0xabc", "project": "7"})
    assert data[8:].startswith(b'{"__metadata__":{"project":"7","round":"1","trainer":"0xabc"},')
    assert cid_for(data) == "bafkreifhzmx6dxccskk263hrpkdyfrzyosrcaujzcmfol3ozgystcs4i54"


def test_views_and_shared_storage_encode() -> None:
    base = torch.arange(12, dtype=torch.float32)
    tensors = {"tied_a": base.view(3, 4), "tied_b": base.view(3, 4), "slice": base[::2]}
    decoded, _ = decode_tensors(encode_tensors(tensors), LIMIT)
    assert torch.equal(decoded["slice"], base[::2])
    assert torch.equal(decoded["tied_b"], base.view(3, 4))


def test_through_a_chunked_blob() -> None:
    store = MemoryStore()
    data = encode_tensors({"w": torch.randn(300, 300, generator=torch.Generator().manual_seed(1))})
    cid = put_blob(store, data, chunk_size=64 * 1024)
    tensors, _ = decode_tensors(get_blob(store, cid, LIMIT), LIMIT, {"w": (300, 300)})
    assert tensors["w"].shape == (300, 300)


@pytest.mark.parametrize("cut", [1, 7, 100, 0.5, 8, 4, 0])
def test_truncated_bytes_are_rejected(cut: float) -> None:
    data = encode_tensors(_update())
    end = int(len(data) * cut) if isinstance(cut, float) else len(data) - cut
    if cut == 0:
        data, end = data + b"\x00\x00\x00\x00", len(data) + 4  # trailing garbage
    elif cut in (8, 4):
        end = int(cut)
    with pytest.raises(UpdateRejected, match="(truncated|malformed)"):
        decode_tensors(data[:end], LIMIT)


def test_truncation_is_named() -> None:
    data = encode_tensors(_update())
    with pytest.raises(UpdateRejected, match="truncated"):
        decode_tensors(data[:-1], LIMIT)


def test_corrupted_header_is_rejected() -> None:
    data = bytearray(encode_tensors({"w": torch.zeros(4, 3)}))
    header = bytes(data[8:])
    pos = 8 + header.index(b"[4,3]") + 1
    data[pos] = ord("5")  # the shape no longer matches the byte range
    with pytest.raises(UpdateRejected, match="malformed"):
        decode_tensors(bytes(data), LIMIT)
    data[8] = 0xFF  # not JSON any more
    with pytest.raises(UpdateRejected, match="malformed"):
        decode_tensors(bytes(data), LIMIT)


def test_duplicate_tensor_names_are_rejected() -> None:
    entry = '{"dtype":"F32","shape":[1],"data_offsets":[0,4]}'
    header = f'{{"w":{entry},"w":{entry}}}'.encode()
    data = struct.pack("<Q", len(header)) + header + b"\x00" * 4
    with pytest.raises(UpdateRejected, match="repeats"):
        decode_tensors(data, LIMIT)


def test_pickle_is_never_loaded() -> None:
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer)
    with pytest.raises(UpdateRejected):
        decode_tensors(buffer.getvalue(), LIMIT)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values_are_rejected(bad: float) -> None:
    update = _update()
    update["fc.bias"][2] = bad
    with pytest.raises(UpdateRejected, match=r"non-finite.*fc\.bias.*1 NaN"):
        decode_tensors(encode_tensors(update), LIMIT)


def test_non_finite_half_precision_is_rejected() -> None:
    update = _update()
    update["emb"][0, 0] = float("inf")
    with pytest.raises(UpdateRejected, match="emb"):
        decode_tensors(encode_tensors(update), LIMIT)


def test_wrong_shape_is_rejected() -> None:
    expected = shapes_of(_update())
    expected["fc.weight"] = (3, 4)
    with pytest.raises(UpdateRejected, match=r"shape.*fc\.weight.*\(4, 3\).*\(3, 4\)"):
        decode_tensors(encode_tensors(_update()), LIMIT, expected)


def test_missing_and_extra_tensors_are_rejected() -> None:
    update = _update()
    expected = shapes_of(update)
    del update["fc.bias"]
    update["extra"] = torch.zeros(1)
    with pytest.raises(UpdateRejected, match=r"missing tensors \['fc.bias'\].*\['extra'\]"):
        decode_tensors(encode_tensors(update), LIMIT, expected)


def test_oversized_update_is_rejected_before_parsing() -> None:
    data = encode_tensors(_update())
    with pytest.raises(UpdateRejected, match="too large"):
        decode_tensors(data, max_bytes=len(data) - 1)
    assert decode_tensors(data, max_bytes=len(data))[0]


def test_header_length_beyond_the_data_is_rejected() -> None:
    with pytest.raises(UpdateRejected, match="truncated"):
        decode_tensors(struct.pack("<Q", 2**60) + b"{}", LIMIT)


def test_metadata_must_be_strings() -> None:
    header = json.dumps({"__metadata__": {"round": 3}}).encode()
    with pytest.raises(UpdateRejected, match="metadata"):
        decode_tensors(struct.pack("<Q", len(header)) + header, LIMIT)
    with pytest.raises(TypeError):
        encode_tensors({"w": torch.zeros(1)}, {"round": 3})  # type: ignore[dict-item]


_shapes = st.dictionaries(
    st.text("abcdefgh._", min_size=1, max_size=6),
    st.lists(st.integers(min_value=0, max_value=4), max_size=3).map(tuple),
    max_size=5,
)


@settings(max_examples=80, deadline=None)
@given(_shapes, st.integers(min_value=0, max_value=2**31))
def test_flatten_unflatten_round_trip(shapes: dict[str, tuple[int, ...]], seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    tensors = {name: torch.randn(shape, generator=generator) for name, shape in shapes.items()}
    vector = flatten(tensors)
    assert vector.dtype == torch.float32 and vector.dim() == 1
    assert vector.numel() == sum(t.numel() for t in tensors.values())
    restored = unflatten(vector, shapes_of(tensors))
    assert restored.keys() == tensors.keys()
    for name in tensors:
        assert torch.equal(restored[name], tensors[name])
    # insertion order does not matter: the layout is sorted by name
    assert torch.equal(flatten(dict(reversed(list(tensors.items())))), vector)


def test_flatten_layout_is_sorted_by_name() -> None:
    tensors = {"b": torch.tensor([3.0, 4.0]), "a": torch.tensor([[1.0], [2.0]])}
    assert flatten(tensors).tolist() == [1.0, 2.0, 3.0, 4.0]
    restored = unflatten(torch.tensor([1.0, 2.0, 3.0, 4.0]), {"b": (2,), "a": (2, 1)})
    assert restored["a"].tolist() == [[1.0], [2.0]]
    vector = torch.tensor([1.0, 2.0, 3.0, 4.0])
    unflatten(vector, {"b": (2,), "a": (2, 1)})["b"][0] = 99.0
    assert vector[2] == 3.0  # copies, not views


def test_unflatten_rejects_wrong_length_and_rank() -> None:
    with pytest.raises(UpdateRejected, match="5 values, the template needs 4"):
        unflatten(torch.zeros(5), {"a": (2, 2)})
    with pytest.raises(UpdateRejected, match="1-D"):
        unflatten(torch.zeros(2, 2), {"a": (2, 2)})
