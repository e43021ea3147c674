"""What one round hands to the next, and how it is stored by CID.

An aggregator keeps no private state between rounds: the hyper-parameters and the
robust rule's memory (the previous aggregate for ``default``/``cosine_check``, the
per-trainer histories for FoolsGold) are written to its content store and referenced
from the round report, whose digest is on-chain. A restarted aggregator, or an auditor,
rebuilds the state of round ``r`` from the report of round ``r - 1`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from marketplace.robust import FoolsGoldHistory
from marketplace.rounds.hyper import HyperConfig, ServerHyper
from marketplace.storage import ContentStore, get_blob, put_blob
from marketplace.storage.serialize import decode_tensors, encode_tensors

#: A rule state blob is the aggregator's own data (n x d floats at most); this is a
#: sanity bound, not a security limit.
MAX_STATE_BYTES = 1 << 31
_TENSOR = "tensor"
_FOOLSGOLD = "foolsgold"
_CLIENT_PREFIX = "client/"


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
    raise ValueError(f"unknown rule state type {kind!r}")


def put_rule_state(store: ContentStore, state: Any) -> str | None:
    """Store a rule state; returns its CID (None when there is nothing to store)."""
    data = encode_rule_state(state)
    return None if data is None else put_blob(store, data)


def get_rule_state(store: ContentStore, cid: str | None) -> Any:
    """Load a rule state stored by :func:`put_rule_state` (None for None)."""
    return None if cid is None else decode_rule_state(get_blob(store, cid, MAX_STATE_BYTES))
