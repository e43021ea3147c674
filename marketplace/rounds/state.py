"""What one round hands to the next, and how it is stored by CID.

An aggregator keeps no private state between rounds: the hyper-parameters and the
robust rule's memory (the previous aggregate for ``cosine_check``, that and each
trainer's anchor record for ``default``, the per-trainer histories for FoolsGold) are
written to its content store and referenced from the round report, whose digest is
on-chain. A restarted aggregator, or an auditor, rebuilds the state of round ``r`` from
the report of round ``r - 1`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from marketplace.robust import FoolsGoldHistory
from marketplace.robust.anchor_record import AnchorRecord
from marketplace.robust.default import DefaultState
from marketplace.rounds.hyper import HyperConfig, ServerHyper
from marketplace.storage import ContentStore, get_blob, put_blob
from marketplace.storage.serialize import decode_tensors, encode_tensors

#: A rule state blob is the aggregator's own data (n x d floats at most); this is a
#: sanity bound, not a security limit.
MAX_STATE_BYTES = 1 << 31
_TENSOR = "tensor"
_FOOLSGOLD = "foolsgold"
_DEFAULT = "default"
_CLIENT_PREFIX = "client/"
_PREVIOUS = "previous_aggregate"
_RECORD_PREFIX = "record/"


@dataclass(frozen=True)
class RoundState:
    """Carried from round to round: hyper-parameters in force and the rule's memory."""

    hyper: ServerHyper
    rule_state: Any = None

    @classmethod
    def initial(cls, config: HyperConfig) -> RoundState:
        return cls(hyper=ServerHyper.initial(config))


def encode_rule_state(state: Any) -> bytes | None:
    """Deterministic bytes of a rule's state (None when the rule keeps none)."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return encode_tensors({"state": state.to(torch.float32)}, {"type": _TENSOR})
    if isinstance(state, FoolsGoldHistory):
        tensors = {f"{_CLIENT_PREFIX}{cid}": s.to(torch.float32) for cid, s in state.sums.items()}
        if not tensors:
            return None
        return encode_tensors(tensors, {"type": _FOOLSGOLD})
    if isinstance(state, DefaultState):
        return _encode_default(state)
    raise TypeError(
        f"cannot persist rule state of type {type(state).__name__}: teach "
        "marketplace.rounds.state to encode it, or restarts will not replay the round"
    )


def decode_rule_state(data: bytes) -> Any:
    """Inverse of :func:`encode_rule_state`."""
    tensors, meta = decode_tensors(data, MAX_STATE_BYTES)
    kind = meta.get("type")
    if kind == _TENSOR:
        return tensors["state"]
    if kind == _FOOLSGOLD:
        return FoolsGoldHistory(
            sums={name[len(_CLIENT_PREFIX) :]: t for name, t in sorted(tensors.items())}
        )
    if kind == _DEFAULT:
        return _decode_default(tensors)
    raise ValueError(f"unknown rule state type {kind!r}")


def _encode_default(state: DefaultState) -> bytes | None:
    """The previous aggregate as float32 (as the rule computed it) and each trainer's
    record as float64 ``[cosine sum, rounds]``, so a replay sums exactly as the live run."""
    tensors: dict[str, Tensor] = {}
    if state.previous_aggregate is not None:
        tensors[_PREVIOUS] = state.previous_aggregate.to(torch.float32)
    for trainer, total in state.record.sums.items():
        pair = [total, float(state.record.rounds[trainer])]
        tensors[f"{_RECORD_PREFIX}{trainer}"] = torch.tensor(pair, dtype=torch.float64)
    return encode_tensors(tensors, {"type": _DEFAULT}) if tensors else None


def _decode_default(tensors: dict[str, Tensor]) -> DefaultState:
    sums: dict[str, float] = {}
    rounds: dict[str, int] = {}
    for name, t in sorted(tensors.items()):
        if not name.startswith(_RECORD_PREFIX):
            continue
        if t.shape != (2,):
            raise ValueError(f"anchor record {name} has shape {tuple(t.shape)}, expected (2,)")
        trainer = name[len(_RECORD_PREFIX) :]
        sums[trainer], rounds[trainer] = float(t[0]), int(t[1])
    return DefaultState(
        previous_aggregate=tensors.get(_PREVIOUS), record=AnchorRecord(sums=sums, rounds=rounds)
    )


def put_rule_state(store: ContentStore, state: Any) -> str | None:
    """Store a rule state; returns its CID (None when there is nothing to store)."""
    data = encode_rule_state(state)
    return None if data is None else put_blob(store, data)


def get_rule_state(store: ContentStore, cid: str | None) -> Any:
    """Load a rule state stored by :func:`put_rule_state` (None for None)."""
    return None if cid is None else decode_rule_state(get_blob(store, cid, MAX_STATE_BYTES))
