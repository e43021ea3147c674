"""Wire format of global models and updates: safetensors of the model's named parameters.

A flat parameter vector (what :mod:`marketplace.learning` trains and the robust rules
aggregate) is published as the network's *named* parameters, in ``model.parameters()``
order, so that :func:`~marketplace.storage.decode_tensors` can check every name and shape
against the project's :class:`~marketplace.learning.ModelSpec` before anything is used.
Metadata names what the blob is (``kind``), its round and, for an update, the sample
count the trainer claims (the aggregation weight, capped by the robust rule).

Encoding is deterministic (safetensors plus sorted metadata), so the same vector always
gets the same CID: a trainer or aggregator that reruns a round republishes identical
bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache

import torch
from torch import Tensor

from marketplace.errors import ConfigError, MalformedInput, UpdateRejected
from marketplace.learning import Dataset, ModelSpec, build_model
from marketplace.privacy.envelope import MAX_SEAL_OVERHEAD
from marketplace.storage import ContentStore, cid_for, digest_of, get_blob, put_blob
from marketplace.storage.serialize import decode_tensors, encode_tensors
from marketplace.untrusted.parse import loads

KIND_MODEL = "model"
KIND_UPDATE = "update"
KIND_ANCHOR = "anchor"
#: Bytes a blob may carry beyond its raw float32 data (safetensors header and metadata).
HEADER_ALLOWANCE = 64 * 1024
#: A model spec is a few hundred bytes of JSON.
MAX_SPEC_BYTES = 64 * 1024
#: Most parameters a project's model may have: 2^24, so a model or an update is at most
#: 64 MiB of float32. A spec that names more is refused before anything is allocated
#: (every trainer, the aggregator and auditors would otherwise allocate it).
MAX_MODEL_PARAMS = 1 << 24


@lru_cache(maxsize=32)
def _layout(spec: ModelSpec) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Names and shapes of the spec's parameters, from a model built on the ``meta``
    device (shapes only, no memory), checked against :data:`MAX_MODEL_PARAMS`. Every
    dimension is bounded first: a layer of two huge dimensions overflows torch's storage
    size even on ``meta`` (found by the fuzz suite)."""
    dims = (math.prod(spec.input_shape), *spec.input_shape, spec.num_classes, *spec.hidden)
    if max(dims) > MAX_MODEL_PARAMS:
        raise ConfigError(
            f"the model spec names a dimension of {max(dims):,}, over the limit of "
            f"{MAX_MODEL_PARAMS:,} parameters; use smaller layers or input shape"
        )
    try:
        with torch.device("meta"):
            model = build_model(spec)
    except RuntimeError as exc:
        raise ConfigError(f"the model spec names a model torch cannot lay out: {exc}") from None
    layout = tuple((name, tuple(p.shape)) for name, p in model.named_parameters())
    total = sum(math.prod(shape) for _, shape in layout)
    if total > MAX_MODEL_PARAMS:
        raise ConfigError(
            f"the model spec names a {spec.kind} of {total:,} parameters, over the limit of "
            f"{MAX_MODEL_PARAMS:,}; use smaller layers or input shape"
        )
    return layout


def check_spec_size(spec: ModelSpec) -> ModelSpec:
    """``spec`` if its model is within :data:`MAX_MODEL_PARAMS`, else :class:`ConfigError`."""
    _layout(spec)
    return spec


def param_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape, in ``model.parameters()`` (= flat vector) order."""
    return dict(_layout(spec))


def max_blob_bytes(spec: ModelSpec) -> int:
    """Largest acceptable encoded model or update for ``spec``: float32 data, its header,
    and the envelope of an update sealed to every reader and co-trainer it may name."""
    return 4 * sum(math.prod(s) for _, s in _layout(spec)) + HEADER_ALLOWANCE + MAX_SEAL_OVERHEAD


def to_named(spec: ModelSpec, vector: Tensor) -> dict[str, Tensor]:
    """Split a flat vector into the named parameter tensors of ``spec``."""
    layout = _layout(spec)
    sizes = [math.prod(shape) for _, shape in layout]
    flat = vector.detach().reshape(-1).to(torch.float32)
    if flat.numel() != sum(sizes):
        raise UpdateRejected.because(
            "shape",
            f"vector has {flat.numel()} values, the model needs {sum(sizes)}; "
            "train the project's model spec",
        )
    pieces = flat.split(sizes)
    return {name: p.reshape(shape) for (name, shape), p in zip(layout, pieces, strict=True)}


def from_named(spec: ModelSpec, tensors: Mapping[str, Tensor]) -> Tensor:
    """Concatenate named tensors back into the flat vector (parameter order)."""
    return torch.cat([tensors[name].reshape(-1).to(torch.float32) for name, _ in _layout(spec)])


def encode_params(spec: ModelSpec, vector: Tensor, metadata: Mapping[str, str]) -> bytes:
    """Deterministic safetensors bytes of a flat vector with string ``metadata``."""
    return encode_tensors(to_named(spec, vector), dict(metadata))


def decode_params(spec: ModelSpec, data: bytes) -> tuple[Tensor, dict[str, str]]:
    """Validate bytes against ``spec`` (size, names, shapes, finiteness) and flatten them.

    Raises :class:`UpdateRejected` naming the reason.
    """
    tensors, metadata = decode_tensors(data, max_blob_bytes(spec), param_shapes(spec))
    for name, tensor in tensors.items():
        if tensor.dtype != torch.float32:
            raise UpdateRejected.because(
                "dtype", f"tensor {name} is {tensor.dtype}, expected float32"
            )
    return from_named(spec, tensors), metadata


def put_params(
    store: ContentStore, spec: ModelSpec, vector: Tensor, metadata: Mapping[str, str]
) -> str:
    """Store a model or update as a blob; returns its CID."""
    return put_blob(store, encode_params(spec, vector, metadata))


def put_round_params(
    store: ContentStore, spec: ModelSpec, kind: str, project_id: int, round_: int, vector: Tensor
) -> str:
    """Publish a model-shaped vector of a round: the global model (``KIND_MODEL``) or the
    trust anchor its rule used (``KIND_ANCHOR``: an auditor without the owner's validation
    data replays the filter with it, one with them checks that it is the anchor they give).
    The same vector always gives the same bytes, so anyone recomputes its CID."""
    meta = {"kind": kind, "project": str(project_id), "round": str(round_)}
    return put_params(store, spec, vector, meta)


def get_params(store: ContentStore, spec: ModelSpec, cid: str) -> tuple[Tensor, dict[str, str]]:
    """Fetch (verified against ``cid``) and decode a model or update blob."""
    return decode_params(spec, get_blob(store, cid, max_blob_bytes(spec)))


def put_spec(store: ContentStore, spec: ModelSpec) -> str:
    """Publish a model spec's canonical JSON; its CID's digest is ``modelSpecCid``."""
    return put_blob(store, spec.to_json_bytes())


def get_spec(store: ContentStore, cid: str) -> ModelSpec:
    """Fetch (verified against ``cid``, at most :data:`MAX_SPEC_BYTES`), parse a published
    model spec and check its size (:data:`MAX_MODEL_PARAMS`) before anyone allocates it."""
    data = get_blob(store, cid, MAX_SPEC_BYTES)
    try:
        loads(data, max_bytes=MAX_SPEC_BYTES, what="model spec")
    except MalformedInput as exc:
        raise ConfigError(f"model spec {cid}: {exc}") from None
    return check_spec_size(ModelSpec.from_json(data))


def spec_cid(spec: ModelSpec) -> str:
    """The CID :func:`put_spec` gives ``spec`` (a blob manifest's CID), computed offline:
    what the owner passes to ``project create --model-spec-cid``."""
    from marketplace.storage import MemoryStore

    return put_spec(MemoryStore(), spec)


def validation_commitment(data: Dataset) -> bytes:
    """The 32-byte commitment to a validation set that a project records on-chain: the CID
    digest of its raw ``x`` then ``y`` bytes. The owner commits it in ``createProject``; an
    auditor checks the validation data it is given against it before replaying rounds."""
    return digest_of(cid_for(data.x.numpy().tobytes() + data.y.numpy().tobytes()))
