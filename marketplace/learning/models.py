"""Model specifications and the small networks the marketplace trains.

A :class:`ModelSpec` is the public, content-addressed description of the model of a
project: the owner publishes its canonical JSON (:meth:`ModelSpec.to_json_bytes`) by CID,
and every trainer, the aggregator and any auditor rebuild the very same network from it.
Initial weights are a pure function of the spec (``seed`` included), so the global model
of round 0 needs no transfer at all. A spec may also declare the project's local-training
recipe (:class:`TrainingRecipe`): trainers follow it by default, and the aggregator trains
its trust anchor with it, so the anchor's assumption (the server trains as the clients do)
rests on what the owner committed on-chain rather than on matching command-line defaults.

Models have no buffers (no batch norm): a model *is* its flat parameter vector, which is
what updates, robust aggregation, sketches and ``torch.func`` evaluation all assume.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Any, Literal

import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from torch import Tensor, nn

from marketplace.errors import ConfigError
from marketplace.learning.privacy_spec import PrivacySettings
from marketplace.learning.rule_pin import PinnedRule

ModelKind = Literal["logreg", "mlp", "cnn", "cnn1d"]
MODEL_KINDS: tuple[str, ...] = ("logreg", "mlp", "cnn", "cnn1d")

_DEFAULT_HIDDEN: dict[str, tuple[int, ...]] = {
    "logreg": (),
    "mlp": (64,),
    "cnn": (16, 32),
    "cnn1d": (16, 32),
}


class TrainingRecipe(BaseModel):
    """The local training every trainer runs each round (plain SGD), as the owner declares
    it in the model spec. The defaults are ``ledgerlearn trainer run``'s: one epoch, lr 0.2,
    no momentum, batch 32."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(default=1, ge=1)
    lr: float = Field(default=0.2, gt=0, allow_inf_nan=False)
    momentum: float = Field(default=0.0, ge=0, lt=1)
    batch_size: int = Field(default=32, ge=1)


class ModelSpec(BaseModel):
    """What network to build: kind, input shape (one sample), classes, widths, init seed.

    ``hidden`` holds the hidden-layer widths of an ``mlp`` and the channel counts of the
    convolution layers of ``cnn``/``cnn1d``; left out (or ``None``) it takes the kind's
    default (mlp ``(64,)``, cnn ``(16, 32)``, logreg ``()``), so two specs that build the
    same network compare equal and serialise to the same bytes. ``training`` is the
    declared local-training recipe (None: not declared; then it is left out of the JSON, so
    specs written before the field existed keep their CIDs). ``privacy`` is the project's
    privacy declaration (:class:`~marketplace.privacy.PrivacySettings`: readers, DP,
    metadata); None only in specs written before it existed, whose updates are published
    in clear as they always were (``aggregator spec`` always declares it).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ModelKind
    input_shape: tuple[int, ...] = Field(min_length=1, max_length=3)
    num_classes: int = Field(ge=2)
    hidden: tuple[int, ...] = ()
    seed: int = Field(default=0, ge=0, lt=2**63)
    training: TrainingRecipe | None = None
    aggregation: PinnedRule | None = None  # the pinned robust rule (learning/rule_pin.py)
    privacy: PrivacySettings | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_hidden(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("hidden") is None:
            data = {**data, "hidden": _DEFAULT_HIDDEN.get(str(data.get("kind")), ())}
        return data

    @field_validator("input_shape", "hidden")
    @classmethod
    def _positive(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(v < 1 for v in value):
            raise ValueError("all sizes must be positive integers")
        return value

    def to_json_bytes(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces): hash these bytes for the spec's CID."""
        return json.dumps(
            self.model_dump(mode="json", exclude_none=True),
            sort_keys=True,
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: str | bytes) -> ModelSpec:
        """Parse a published spec; raises :class:`ConfigError` with the first problem."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise _spec_error(exc) from None

    @classmethod
    def for_data(
        cls,
        kind: str,
        input_shape: tuple[int, ...],
        num_classes: int,
        hidden: tuple[int, ...] | None = None,
        seed: int = 0,
        training: TrainingRecipe | None = None,
        aggregation: PinnedRule | None = None,
        privacy: PrivacySettings | None = None,
    ) -> ModelSpec:
        """Build a spec with :class:`ConfigError` (not a pydantic error) on bad input."""
        fields = {
            "kind": kind,
            "input_shape": tuple(input_shape),
            "num_classes": num_classes,
            "hidden": None if hidden is None else tuple(hidden),
            "seed": seed,
            "training": training,
            "aggregation": aggregation,
            "privacy": privacy,
        }
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise _spec_error(exc) from None


def _spec_error(exc: ValidationError) -> ConfigError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "spec"
    return ConfigError(
        f"invalid model spec: {where}: {first['msg']}; kinds are {', '.join(MODEL_KINDS)}"
    )


class _Reshape(nn.Module):
    """Reshape each sample to ``shape`` (adds the channel axis a convolution needs)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.shape)


def _mlp(in_features: int, widths: tuple[int, ...], num_classes: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    for width in widths:
        layers += [nn.Linear(in_features, width), nn.ReLU()]
        in_features = width
    layers.append(nn.Linear(in_features, num_classes))
    return nn.Sequential(*layers)


def _cnn(spec: ModelSpec, dims: int) -> nn.Sequential:
    """Conv(3 or 5, same padding) -> ReLU -> MaxPool(2) per width, then a linear head."""
    shape = spec.input_shape
    spatial_rank = len(shape) if len(shape) == dims else len(shape) - 1
    if spatial_rank != dims or len(shape) > dims + 1:
        raise ConfigError(
            f"{spec.kind} cannot take input_shape {shape}; use (L,) or (C, L) for 1-D "
            "and (H, W) or (C, H, W) for 2-D inputs"
        )
    channels = 1 if len(shape) == dims else shape[0]
    spatial = list(shape[-dims:])
    conv = nn.Conv1d if dims == 1 else nn.Conv2d
    pool = nn.MaxPool1d if dims == 1 else nn.MaxPool2d
    kernel = 5 if dims == 1 else 3
    layers: list[nn.Module] = [_Reshape((channels, *spatial))]
    for width in spec.hidden:
        layers += [conv(channels, width, kernel, padding=kernel // 2), nn.ReLU()]
        if min(spatial) >= 2:
            layers.append(pool(2))
            spatial = [s // 2 for s in spatial]
        channels = width
    layers += [nn.Flatten(), nn.Linear(channels * math.prod(spatial), spec.num_classes)]
    return nn.Sequential(*layers)


def build_model(spec: ModelSpec) -> nn.Module:
    """Build the network of ``spec`` with weights drawn from ``spec.seed`` only.

    The global torch RNG is forked, so building a model neither depends on nor disturbs
    the caller's random state. ``cnn`` picks 1-D convolutions for a rank-1 input
    (mnist1d: ``(40,)``) and 2-D for rank 2 or 3 (digits: ``(8, 8)``); ``cnn1d`` always
    uses 1-D convolutions (``(L,)`` or ``(C, L)``).
    """
    if spec.kind == "logreg" and spec.hidden:
        raise ConfigError("logreg has no hidden layers; drop `hidden` or use kind 'mlp'")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        if spec.kind in ("logreg", "mlp"):
            model: nn.Module = _mlp(math.prod(spec.input_shape), spec.hidden, spec.num_classes)
        elif spec.kind == "cnn1d" or (spec.kind == "cnn" and len(spec.input_shape) == 1):
            model = _cnn(spec, dims=1)
        else:
            model = _cnn(spec, dims=2)
    return model


def get_flat_params(model: nn.Module) -> Tensor:
    """All parameters, in ``model.parameters()`` order, as one detached float32 vector."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).to(torch.float32)


def set_flat_params(model: nn.Module, vec: Tensor) -> None:
    """Copy a flat vector (as made by :func:`get_flat_params`) into the model in place."""
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    if vec.dim() != 1 or vec.numel() != total:
        raise ConfigError(
            f"parameter vector has shape {tuple(vec.shape)} but the model needs ({total},); "
            "use the vector of the same model spec"
        )
    with torch.no_grad():
        offset = 0
        for p in params:
            n = p.numel()
            p.copy_(vec[offset : offset + n].view_as(p))
            offset += n


@lru_cache(maxsize=64)
def num_params(spec: ModelSpec) -> int:
    """Length of the flat parameter vector (= length of every update) for ``spec``."""
    return sum(p.numel() for p in build_model(spec).parameters())


def init_params(spec: ModelSpec) -> Tensor:
    """The round-0 global model: the flat initial parameters of ``spec``."""
    return get_flat_params(build_model(spec))
