"""Coalition utilities U(S) over players, memoised per round and evaluated in batches.

A coalition S is an ``int`` bitmask: bit ``i`` set means player ``i`` (the i-th inlier of
the round) is in S. Python ints make this work for any n (n = 100 is a 100-bit mask) and
hash cheaply, so the memo is a plain dict.

:class:`SubsetUtility` is the federated-learning utility of the proof-of-contribution
marketplace (and of GTG-Shapley, Liu et al. 2022): U(S) is the validation metric of the
previous global model ``g`` stepped with coalition S's part of the round's aggregate;
U(empty) is the metric of ``g`` itself. By default (``step="share"``) S's part is
``sum_{i in S} w_i u_i / W`` with ``W`` the total weight of *all* players, so the grand
coalition's model is exactly the round's FedAvg model and an update of zeros changes no
coalition: it is a null player and its Shapley value is exactly 0. The classic
``step="mean"`` (``FedAvg(S)``, normalised by S's own weight) pays for *shrinking* the
step: adding a zero update to a coalition shortens its mean step, which can lower the
validation loss, so a trainer that sends nothing earned a share (measured: 8-21% of
the reward under ``--aggregator fedavg``, issue 13). It is kept for comparison only.

It never evaluates a coalition twice and sends every batch of cache misses to the
caller's vectorised evaluator in as few calls as the memory budget allows, because
evaluating a model is the whole cost of Shapley estimation.

:class:`CallableUtility` wraps any ``fn(mask) -> float`` (constructed games in tests and
simulations) with the same memo and counter.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from marketplace.contribution.surrogate import SurrogateBasis
from marketplace.errors import ConfigError

logger = logging.getLogger(__name__)

Metric = Literal["accuracy", "neg_loss"]
Step = Literal["share", "mean"]
BatchEvaluator = Callable[[Tensor], Tensor | Mapping[str, Tensor]]

#: Bytes of parameter vectors materialised per evaluator call when ``chunk_size`` is unset.
DEFAULT_CHUNK_BYTES = 64 * 1024 * 1024
#: Most coalitions sent to the evaluator in one call when ``chunk_size`` is unset.
MAX_AUTO_CHUNK = 1024


def mask_of(players: Iterable[int]) -> int:
    """Bitmask of a coalition given as player indices."""
    mask = 0
    for i in players:
        if i < 0:
            raise ConfigError(f"player index {i} is negative; use indices 0..n-1")
        mask |= 1 << i
    return mask


def members(mask: int) -> list[int]:
    """Player indices in a bitmask, ascending."""
    out = []
    i = 0
    while mask:
        if mask & 1:
            out.append(i)
        mask >>= 1
        i += 1
    return out


def full_mask(n: int) -> int:
    """Bitmask of the grand coalition of ``n`` players."""
    return (1 << n) - 1


def masks_to_matrix(masks: Sequence[int], n: int) -> Tensor:
    """Membership matrix ``[m, n]`` (bool) of bitmasks, built without a per-bit Python loop."""
    nbytes = max(1, (n + 7) // 8)
    raw = b"".join(mask.to_bytes(nbytes, "little") for mask in masks)
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")
    return torch.from_numpy(bits.reshape(len(masks), nbytes * 8)[:, :n].astype(bool))


class Utility(ABC):
    """A memoised coalition utility over ``n`` players.

    Subclasses implement :meth:`_evaluate` for a list of distinct, uncached masks. The
    public :meth:`values` answers any list of masks, evaluating each coalition at most once
    for the lifetime of the object (one object per round).
    """

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ConfigError(f"a utility needs at least one player, got n={n}")
        self.n = n
        self.evaluations = 0
        self._cache: dict[int, float] = {}
        self._full = full_mask(n)

    @abstractmethod
    def _evaluate(self, masks: list[int]) -> list[float]:
        """Utility of each mask (distinct, not cached, within range)."""

    def values(self, subsets: Sequence[int]) -> list[float]:
        """U(S) for each bitmask in ``subsets`` (duplicates allowed); only misses are evaluated."""
        missing: list[int] = []
        seen: set[int] = set()
        for s in subsets:
            if s < 0 or s > self._full:
                raise ConfigError(
                    f"subset mask {s} is outside 0..2^{self.n}-1; build it with mask_of"
                )
            if s not in self._cache and s not in seen:
                seen.add(s)
                missing.append(s)
        if missing:
            results = self._evaluate(missing)
            if len(results) != len(missing):
                raise ConfigError(
                    f"utility returned {len(results)} values for {len(missing)} subsets; "
                    "the evaluator must return one value per parameter vector"
                )
            for s, v in zip(missing, results, strict=True):
                self._cache[s] = float(v)
            self.evaluations += len(missing)
        return [self._cache[s] for s in subsets]

    def value(self, subset: int) -> float:
        """U(S) for one bitmask."""
        return self.values([subset])[0]

    def cached(self, subset: int) -> bool:
        """Whether U(S) is already known (no evaluation needed)."""
        return subset in self._cache

    def known(self) -> dict[int, float]:
        """Every coalition evaluated so far and its utility (a copy, in evaluation order)."""
        return dict(self._cache)

    def surrogate_basis(self) -> SurrogateBasis:
        """Features for the control-variate surrogate (:mod:`.surrogate`).

        A generic game is treated as an equal-weight average of its players; utilities
        built from model updates override this with their FedAvg weights and Gram matrix.
        """
        return SurrogateBasis.build(np.ones(self.n), None)


class CallableUtility(Utility):
    """A utility defined by a Python function of the coalition bitmask (constructed games)."""

    def __init__(self, fn: Callable[[int], float], n: int) -> None:
        super().__init__(n)
        self._fn = fn

    def _evaluate(self, masks: list[int]) -> list[float]:
        return [float(self._fn(m)) for m in masks]


class SubsetUtility(Utility):
    """U(S) = metric of ``global_params + step(S)`` on validation data (module docstring).

    Args:
        global_params: previous global model, 1-D ``[d]``.
        updates: inlier updates ``[n, d]`` (local model minus ``global_params``).
        weights: FedAvg weights ``[n]`` (sample counts), all positive.
        evaluate_batch: vectorised evaluator ``params[m, d] -> Tensor[m]`` returning the
            utility directly, or ``-> Mapping[str, Tensor[m]]`` from which ``metric`` is
            read (``"accuracy"``; ``"neg_loss"`` is ``-out["loss"]`` or ``out["neg_loss"]``).
        metric: which utility to use; accuracy is what the owner pays for, negative loss is
            smooth and separates players whose accuracy gains are below one validation
            sample.
        chunk_size: most coalitions per evaluator call; by default as many as fit in
            :data:`DEFAULT_CHUNK_BYTES` of parameters (capped at :data:`MAX_AUTO_CHUNK`).
        step: ``"share"`` (default): ``step(S) = sum_S w_i u_i / W_all``, a null player
            for a zero update; ``"mean"``: ``FedAvg(S)`` (see the module docstring).
    """

    def __init__(
        self,
        global_params: Tensor,
        updates: Tensor,
        weights: Tensor | Sequence[float],
        evaluate_batch: BatchEvaluator,
        metric: Metric = "accuracy",
        chunk_size: int | None = None,
        step: Step = "share",
    ) -> None:
        if updates.ndim != 2:
            raise ConfigError(f"updates must be [n, d], got shape {tuple(updates.shape)}")
        super().__init__(updates.shape[0])
        if global_params.ndim != 1 or global_params.shape[0] != updates.shape[1]:
            raise ConfigError(
                f"global_params must be [d] with d={updates.shape[1]} to match the updates, "
                f"got shape {tuple(global_params.shape)}"
            )
        w = torch.as_tensor(weights, dtype=torch.float64).reshape(-1)
        if w.shape[0] != self.n:
            raise ConfigError(f"got {w.shape[0]} weights for {self.n} updates; give one each")
        if not bool(torch.isfinite(w).all()) or bool((w <= 0).any()):
            raise ConfigError("FedAvg weights must be finite and positive (sample counts)")
        if not bool(torch.isfinite(updates).all()) or not bool(torch.isfinite(global_params).all()):
            raise ConfigError("updates and global params must be finite; reject bad updates first")
        if metric not in ("accuracy", "neg_loss"):
            raise ConfigError(f"unknown metric {metric!r}; use 'accuracy' or 'neg_loss'")
        if step not in ("share", "mean"):
            raise ConfigError(f"unknown coalition step {step!r}; use 'share' or 'mean'")
        if chunk_size is not None and chunk_size < 1:
            raise ConfigError(f"chunk_size must be positive, got {chunk_size}")
        self.global_params = global_params
        self.updates = updates
        self.weights = w
        self.metric: Metric = metric
        self.step: Step = step
        self._evaluate_batch = evaluate_batch
        d = updates.shape[1]
        per_row = d * updates.element_size()
        self.chunk_size = chunk_size or max(1, min(MAX_AUTO_CHUNK, DEFAULT_CHUNK_BYTES // per_row))
        self.batch_calls = 0

    def surrogate_basis(self) -> SurrogateBasis:
        """FedAvg weights and the updates' Gram matrix (see :mod:`.surrogate`)."""
        u = self.updates.to(torch.float64)
        return SurrogateBasis.build(
            self.weights.numpy(), (u @ u.T).numpy(), share=self.step == "share"
        )

    def shares(self) -> Tensor:
        """Each player's coefficient in the grand coalition's step (``w_i / W``), ``[n]``."""
        return self.weights / self.weights.sum()

    def params_of(self, masks: Sequence[int]) -> Tensor:
        """Model parameters ``[m, d]`` of ``g + step(S)`` for each mask."""
        member = masks_to_matrix(masks, self.n).to(torch.float64)
        coef = member * self.weights
        if self.step == "share":
            coef = coef / self.weights.sum()
        else:
            total = coef.sum(dim=1, keepdim=True)
            coef = torch.where(total > 0, coef / total.clamp_min(1e-300), coef)
        return self.global_params + coef.to(self.updates.dtype) @ self.updates

    def evaluate_params(self, params: Tensor) -> Tensor:
        """The metric of arbitrary parameter vectors ``[m, d]`` (not memoised; counted in
        :attr:`evaluations`): for tests against baselines that are not coalitions, such
        as :mod:`.noise_floor`'s random updates."""
        out: list[float] = []
        for start in range(0, params.shape[0], self.chunk_size):
            with torch.no_grad():
                scores = self._metric_of(
                    self._evaluate_batch(params[start : start + self.chunk_size])
                )
            self.batch_calls += 1
            out.extend(torch.as_tensor(scores).reshape(-1).to(torch.float64).tolist())
        self.evaluations += params.shape[0]
        return torch.tensor(out, dtype=torch.float64)

    def _metric_of(self, out: Tensor | Mapping[str, Tensor]) -> Tensor:
        if isinstance(out, Mapping):
            if self.metric == "accuracy":
                return out["accuracy"]
            return -out["loss"] if "loss" in out else out["neg_loss"]
        return out

    def _evaluate(self, masks: list[int]) -> list[float]:
        results: list[float] = []
        for start in range(0, len(masks), self.chunk_size):
            chunk = masks[start : start + self.chunk_size]
            with torch.no_grad():
                scores = self._metric_of(self._evaluate_batch(self.params_of(chunk)))
            self.batch_calls += 1
            scores = torch.as_tensor(scores).reshape(-1)
            if scores.shape[0] != len(chunk):
                raise ConfigError(
                    f"evaluate_batch returned {scores.shape[0]} scores for {len(chunk)} "
                    "parameter vectors; it must return one per row"
                )
            results.extend(scores.to(torch.float64).tolist())
        logger.debug("evaluated %d coalitions in %d batch calls", len(masks), self.batch_calls)
        return results
