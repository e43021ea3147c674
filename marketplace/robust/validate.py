"""Input checks shared by every rule: shape, dtype, finiteness, weights.

Rules are pure functions over a stacked ``[n, d]`` tensor; malformed input is a
:class:`~marketplace.errors.UpdateRejected` (the updates themselves are wrong) and bad
parameters or weights are an :class:`~marketplace.errors.AssumptionViolated` (the rule's
precondition does not hold). Both messages name the fix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from marketplace.errors import AssumptionViolated, UpdateRejected


def check_updates(updates: Tensor, rule: str, *, allow_nonfinite: bool = False) -> Tensor:
    """Return ``updates`` if it is a non-empty floating ``[n, d]`` tensor, else raise.

    Non-finite rows are refused unless ``allow_nonfinite`` (the default rule rejects
    them itself, row by row); a mean or a distance with a NaN in it is meaningless.
    """
    if not isinstance(updates, Tensor):
        raise UpdateRejected(
            f"{rule} needs a torch.Tensor of shape [n, d]; got {type(updates).__name__}: "
            "stack the updates with torch.stack"
        )
    if updates.dim() != 2 or updates.shape[0] == 0 or updates.shape[1] == 0:
        raise UpdateRejected(
            f"{rule} needs a non-empty [n, d] tensor; got shape {tuple(updates.shape)}: "
            "flatten each update and stack them"
        )
    if not updates.is_floating_point():
        raise UpdateRejected(
            f"{rule} needs floating-point updates; got {updates.dtype}: cast to float32"
        )
    if not allow_nonfinite:
        bad = nonfinite_rows(updates)
        if bool(bad.any()):
            idx = bad.nonzero().flatten().tolist()
            raise UpdateRejected(
                f"{rule} got NaN/inf in updates {idx}: reject them first "
                "(the 'default' rule does this itself)"
            )
    return updates


def nonfinite_rows(updates: Tensor) -> Tensor:
    """``bool[n]``: rows holding any NaN or infinity.

    A row sum is finite only if every entry is (NaN and inf propagate), so one cheap
    reduction settles the common all-finite case; only then are entries inspected.
    """
    sums_ok = torch.isfinite(updates.sum(dim=1))
    if bool(sums_ok.all()):
        return ~sums_ok
    return ~torch.isfinite(updates).all(dim=1)


def check_weights(weights: Tensor | None, n: int, rule: str) -> Tensor:
    """Return ``float64[n]`` weights (all ones when None); refuse negative or non-finite.

    Weights are usually self-reported sample counts (McMahan et al. 2017 weight by
    ``n_k``); a zero weight is allowed and simply drops that update from the mean.
    """
    if weights is None:
        return torch.ones(n, dtype=torch.float64)
    w = torch.as_tensor(weights).detach().to(dtype=torch.float64, device="cpu").flatten()
    if w.numel() != n:
        raise AssumptionViolated(
            f"{rule} needs one weight per update; got {w.numel()} weights for {n} updates: "
            "pass weights of shape [n]"
        )
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise AssumptionViolated(
            f"{rule} needs finite non-negative weights; got {w.tolist()[:8]}...: "
            "use sample counts or leave weights=None"
        )
    return w


def check_client_ids(client_ids: Sequence[object], n: int, rule: str) -> list[str]:
    """Return the ids as strings if there is exactly one distinct id per update, else raise.

    Rules that remember trainers across rounds (FoolsGold's histories, the default
    filter's anchor record) key their memory by these ids; a repeated id would merge two
    trainers' pasts.
    """
    ids = [str(c) for c in client_ids]
    if len(ids) != n or len(set(ids)) != n:
        raise AssumptionViolated(
            f"{rule} needs one distinct client id per update; got {len(ids)} ids "
            f"({len(set(ids))} distinct) for {n} updates: pass each trainer's id once"
        )
    return ids


def check_fraction(value: float, name: str, rule: str, *, low: float, high: float) -> float:
    """Return ``value`` if ``low <= value < high`` and finite, else raise."""
    if not (math.isfinite(value) and low <= value < high):
        raise AssumptionViolated(
            f"{rule} needs {low} <= {name} < {high}; got {name}={value}: choose a value in range"
        )
    return float(value)
