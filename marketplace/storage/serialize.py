"""Safe serialization of model updates: safetensors in, validated tensors out.

A model update comes from an untrusted trainer, so it is never unpickled (``torch.load``
of a pickle runs arbitrary code). The safetensors format
(https://github.com/huggingface/safetensors) is an 8-byte little-endian header length,
a JSON header naming each tensor's dtype, shape and byte range, then the raw data. It
cannot carry code, and the encoding of a given dict of tensors is deterministic, so the
same update always gets the same CID.

:func:`decode_tensors` is the gate an aggregator puts in front of the robust filter: it
refuses oversized, truncated or corrupted bytes, unexpected names or shapes, and
non-finite values, raising :class:`UpdateRejected` with the reason.

:func:`flatten` and :func:`unflatten` turn a dict of tensors into the 1-D vector the
aggregation rules work on and back, in sorted key order so that every party (trainer,
aggregator, auditor) lays out the same coordinates the same way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

from marketplace.errors import MalformedInput, UpdateRejected
from marketplace.untrusted.parse import loads, parse_int

#: Largest safetensors header read from another party (safetensors itself allows 100 MB;
#: ours are ~100 bytes per tensor plus metadata, a few KB).
MAX_HEADER_BYTES = 1 << 20
#: Most dimensions a tensor in a header may declare.
MAX_TENSOR_DIMS = 8
_METADATA_KEY = "__metadata__"


def encode_tensors(
    tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> bytes:
    """Serialize named tensors and string metadata to safetensors bytes.

    Tensors are copied to contiguous CPU memory first, so views, tied weights and CUDA
    tensors all encode, and identical values always give identical bytes.
    """
    meta = dict(metadata or {})
    for key, value in meta.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"metadata must map str to str; got {key!r}: {type(value).__name__}")
    prepared: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if not isinstance(name, str) or not name or name == _METADATA_KEY:
            raise ValueError(f"invalid tensor name {name!r}")
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name} is a {type(tensor).__name__}, not a torch.Tensor")
        prepared[name] = tensor.detach().cpu().clone(memory_format=torch.contiguous_format)
    return _with_sorted_metadata(_st_save(prepared), meta)


def _with_sorted_metadata(encoded: bytes, metadata: Mapping[str, str]) -> bytes:
    """Insert ``metadata`` into a safetensors header in sorted key order.

    safetensors keeps metadata in a Rust ``HashMap`` and writes it in a random order
    that changes between calls, which would give one update many CIDs. The tensor
    entries it writes are ordered deterministically, so we keep them as they are and
    only rebuild the header around them; the data section is untouched.
    """
    header_len = int.from_bytes(encoded[:8], "little")
    header = json.loads(encoded[8 : 8 + header_len])
    header.pop(_METADATA_KEY, None)
    if metadata:
        header = {_METADATA_KEY: dict(sorted(metadata.items())), **header}
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # the format aligns the data section to 8 bytes
    return len(text).to_bytes(8, "little") + text + encoded[8 + header_len :]


def _read_header(data: bytes) -> dict[str, Any]:
    """Parse the JSON header, refusing what a lenient reader would let through."""
    if len(data) < 8:
        raise UpdateRejected.because(
            "truncated", f"{len(data)} bytes cannot hold a safetensors header"
        )
    header_len = int.from_bytes(data[:8], "little")
    if header_len > len(data) - 8:
        raise UpdateRejected.because(
            "truncated", f"header claims {header_len} bytes but only {len(data) - 8} follow"
        )
    if header_len > MAX_HEADER_BYTES:
        raise UpdateRejected.because(
            "malformed", f"header claims {header_len} bytes, over the limit of {MAX_HEADER_BYTES}"
        )
    try:
        header = loads(
            data[8 : 8 + header_len],
            max_bytes=MAX_HEADER_BYTES,
            what="safetensors header",
            unique_keys=True,
        )
    except MalformedInput as exc:
        raise UpdateRejected.because("malformed", str(exc)) from None
    if not isinstance(header, dict):
        raise UpdateRejected.because("malformed", "safetensors header is not a JSON object")
    return header


def _header_shapes(header: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Name -> declared shape of every tensor entry, read from the header alone."""
    shapes: dict[str, tuple[int, ...]] = {}
    for name, entry in header.items():
        if name == _METADATA_KEY:
            continue
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or len(shape) > MAX_TENSOR_DIMS:
            raise UpdateRejected.because(
                "malformed", f"tensor {name[:64]!r} has no shape of 0..8 dimensions"
            )
        try:
            shapes[name] = tuple(parse_int(d, f"a dimension of {name[:64]!r}") for d in shape)
        except MalformedInput as exc:
            raise UpdateRejected.because("malformed", str(exc)) from None
    return shapes


def _check_data_length(header: Mapping[str, Any], available: int) -> None:
    """Name truncation plainly; other inconsistencies are left to safetensors."""
    ends = [
        entry["data_offsets"][1]
        for name, entry in header.items()
        if name != _METADATA_KEY
        and isinstance(entry, dict)
        and isinstance(entry.get("data_offsets"), list)
        and len(entry["data_offsets"]) == 2
        and isinstance(entry["data_offsets"][1], int)
    ]
    if ends and max(ends) > available:
        raise UpdateRejected.because(
            "truncated", f"tensors need {max(ends)} data bytes but only {available} are present"
        )


def decode_tensors(
    data: bytes,
    max_bytes: int,
    expected_shapes: Mapping[str, Sequence[int]] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Validate and decode safetensors bytes from an untrusted source.

    Checks, in order: size (before parsing anything), header (with the bounded parser of
    :mod:`marketplace.untrusted.parse`), tensor names and shapes against
    ``expected_shapes`` when given (from the header, so a blob declaring more parameters
    than the spec is refused before anything is allocated), byte ranges (safetensors
    requires them to tile the data exactly, so truncation and padding both fail), and
    finiteness of every floating-point value. Returns ``(tensors, metadata)``.
    """
    if len(data) > max_bytes:
        raise UpdateRejected.because(
            "too large", f"{len(data)} bytes exceed the limit of {max_bytes}"
        )
    header = _read_header(bytes(data))
    metadata = header.get(_METADATA_KEY, {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise UpdateRejected.because(
            "malformed", "safetensors metadata must map strings to strings"
        )
    _check_data_length(header, len(data) - 8 - int.from_bytes(data[:8], "little"))
    declared = _header_shapes(header)
    if expected_shapes is not None:
        # Names, shapes and so the number of parameters are checked before any tensor
        # is allocated.
        _check_shapes(declared, expected_shapes)
    try:
        tensors = _st_load(bytes(data))
    except (SafetensorError, ValueError, TypeError, RuntimeError) as exc:
        raise UpdateRejected.because("malformed", f"not valid safetensors ({exc})") from exc
    for name in sorted(tensors):
        tensor = tensors[name]
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(
            torch.isfinite(tensor).all()
        ):
            bad = int((~torch.isfinite(tensor)).sum())
            raise UpdateRejected.because(
                "non-finite", f"tensor {name} holds {bad} NaN or infinite values"
            )
    return tensors, dict(metadata)


def _check_shapes(
    declared: Mapping[str, tuple[int, ...]], expected: Mapping[str, Sequence[int]]
) -> None:
    missing = sorted(set(expected) - set(declared))
    extra = sorted(set(declared) - set(expected))
    if missing or extra:
        raise UpdateRejected.because(
            "names", f"missing tensors {missing}, unexpected tensors {extra[:8]}"
        )
    for name in sorted(expected):
        want = tuple(int(d) for d in expected[name])
        got = declared[name]
        if got != want:
            raise UpdateRejected.because("shape", f"tensor {name} has shape {got}, expected {want}")


def shapes_of(tensors: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """Name -> shape map, the template :func:`unflatten` and :func:`decode_tensors` take."""
    return {name: tuple(tensor.shape) for name, tensor in tensors.items()}


def flatten(tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Concatenate all tensors, in sorted name order, into one 1-D float32 vector."""
    parts = [tensors[name].detach().reshape(-1).to(torch.float32) for name in sorted(tensors)]
    if not parts:
        return torch.zeros(0, dtype=torch.float32)
    return torch.cat(parts)


def unflatten(
    vector: torch.Tensor, template_shapes: Mapping[str, Sequence[int]]
) -> dict[str, torch.Tensor]:
    """Inverse of :func:`flatten`: split ``vector`` into float32 tensors of the template.

    The tensors are copies, never views of ``vector``.
    """
    if vector.dim() != 1:
        raise UpdateRejected.because(
            "shape", f"flat update must be 1-D, got shape {tuple(vector.shape)}"
        )
    names = sorted(template_shapes)
    shapes = [tuple(int(d) for d in template_shapes[name]) for name in names]
    sizes = [math.prod(shape) for shape in shapes]
    if sum(sizes) != vector.numel():
        raise UpdateRejected.because(
            "shape", f"flat update has {vector.numel()} values, the template needs {sum(sizes)}"
        )
    if not names:
        return {}
    pieces = torch.split(vector.detach().to(torch.float32), sizes)
    return {
        name: piece.reshape(shape).clone()
        for name, shape, piece in zip(names, shapes, pieces, strict=True)
    }
