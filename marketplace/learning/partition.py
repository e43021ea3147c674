"""Split a dataset among simulated trainers: IID, label skew, quantity skew.

Schemes are strings so that they fit in a config file or a CLI flag:

* ``iid``: a seeded shuffle cut into near-equal parts.
* ``dirichlet:ALPHA``: label skew. For each class, client shares ~ Dir(ALPHA); small
  ALPHA gives each client few classes (Hsu, Qi & Brown 2019, "Measuring the Effects of
  Non-Identical Data Distribution for Federated Visual Classification"; Yurochkin et al.
  2019).
* ``quantity:ALPHA``: quantity skew. Client sizes ~ Dir(ALPHA), labels stay IID (Li et al.
  2022, "Federated Learning on Non-IID Data Silos: An Experimental Study", NIID-Bench).

Every client receives at least ``min_size`` samples (capped at ``N // num_clients``):
instead of the usual resample-until-it-fits loop, which may never end for tiny ALPHA,
single samples move from the largest client to the smallest until the floor holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from marketplace.errors import ConfigError, DatasetError

SchemeKind = Literal["iid", "dirichlet", "quantity"]


@dataclass(frozen=True)
class PartitionScheme:
    """A parsed scheme: its kind and, for the skewed ones, the Dirichlet concentration."""

    kind: SchemeKind
    alpha: float | None = None

    def __str__(self) -> str:
        return self.kind if self.alpha is None else f"{self.kind}:{self.alpha:g}"


def parse_scheme(text: str) -> PartitionScheme:
    """Parse ``iid``, ``dirichlet:ALPHA`` or ``quantity:ALPHA`` (ALPHA > 0)."""
    kind, _, arg = text.strip().partition(":")
    kind = kind.lower()
    if kind == "iid":
        if arg:
            raise ConfigError(f"partition scheme {text!r}: 'iid' takes no parameter")
        return PartitionScheme("iid")
    if kind in ("dirichlet", "quantity"):
        try:
            alpha = float(arg)
        except ValueError:
            raise ConfigError(
                f"partition scheme {text!r}: write '{kind}:ALPHA' with a number, e.g. '{kind}:0.5'"
            ) from None
        if not alpha > 0 or not np.isfinite(alpha):
            raise ConfigError(f"partition scheme {text!r}: ALPHA must be a positive number")
        return PartitionScheme(kind, alpha)  # type: ignore[arg-type]
    raise ConfigError(
        f"unknown partition scheme {text!r}; use 'iid', 'dirichlet:ALPHA' or 'quantity:ALPHA'"
    )


def _cut(indices: np.ndarray, shares: np.ndarray) -> list[np.ndarray]:
    """Cut ``indices`` into ``len(shares)`` consecutive parts proportional to ``shares``."""
    bounds = (np.cumsum(shares)[:-1] * len(indices)).astype(np.int64)
    return list(np.split(indices, bounds))


def _enforce_min(parts: list[np.ndarray], floor: int, rng: np.random.Generator) -> None:
    """Move single random samples from the largest part to the smallest below ``floor``.

    Terminates because the total is at least ``floor * len(parts)``: while some part is
    below the floor, the largest is above it, and one move never pushes it below.
    """
    sizes = np.array([len(p) for p in parts])
    while sizes.min() < floor:
        small, large = int(sizes.argmin()), int(sizes.argmax())
        pick = int(rng.integers(sizes[large]))
        moved = parts[large][pick]
        parts[large] = np.delete(parts[large], pick)
        parts[small] = np.append(parts[small], moved)
        sizes[small] += 1
        sizes[large] -= 1


def partition(
    labels: Tensor | np.ndarray | Sequence[int],
    num_clients: int,
    scheme: str | PartitionScheme,
    seed: int,
    min_size: int = 5,
) -> list[Tensor]:
    """Disjoint int64 index tensors (sorted) that together cover ``range(len(labels))``."""
    parsed = parse_scheme(scheme) if isinstance(scheme, str) else scheme
    y = np.asarray(labels.cpu() if isinstance(labels, Tensor) else labels, dtype=np.int64)
    n = len(y)
    if num_clients < 1:
        raise ConfigError(f"num_clients is {num_clients}; need at least 1")
    if n < num_clients:
        raise DatasetError(
            f"{n} samples cannot give each of {num_clients} clients one; use fewer clients"
        )
    rng = np.random.default_rng(seed)
    floor = min(max(min_size, 1), n // num_clients)

    if parsed.kind == "iid":
        parts = list(np.array_split(rng.permutation(n), num_clients))
    elif parsed.kind == "quantity":
        assert parsed.alpha is not None
        shares = rng.dirichlet(np.full(num_clients, parsed.alpha))
        parts = _cut(rng.permutation(n), shares)
    else:
        assert parsed.alpha is not None
        if y.size and y.min() < 0:
            raise DatasetError("labels must be >= 0 for a dirichlet partition")
        parts = [np.empty(0, dtype=np.int64) for _ in range(num_clients)]
        for cls in np.unique(y):
            members = rng.permutation(np.flatnonzero(y == cls))
            shares = rng.dirichlet(np.full(num_clients, parsed.alpha))
            for client, piece in enumerate(_cut(members, shares)):
                parts[client] = np.concatenate([parts[client], piece])

    _enforce_min(parts, floor, rng)
    return [torch.from_numpy(np.sort(p).astype(np.int64)) for p in parts]
