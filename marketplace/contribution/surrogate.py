"""A cheap surrogate of the FedAvg coalition utility, used as a Shapley control variate.

Why: a permutation estimate of the Shapley value (GTG, TMC) averages marginals
``U(P ∪ {i}) - U(P)`` whose spread is set by the utility itself, so rank accuracy at a
small evaluation budget is limited by variance. If a function ``f`` close to ``U`` has
Shapley values we know almost exactly, then

    phi_i(U) = phi_i(f) + phi_i(U - f)

and only the residual ``U - f`` has to be sampled with real model evaluations; its
marginals are much smaller, so the same permutations give a much better estimate
(control variates: Glasserman 2004, "Monte Carlo Methods in Financial Engineering",
§4.1; for Shapley sampling, Goldwasser & Hooker 2024, "Stabilizing Estimates of Shapley
Values with Control Variates").

The surrogate follows from how a coalition's model is built: ``g + FedAvg(S)``, and
``FedAvg(S) = sum_j c_j(S) u_j`` with ``c_j(S) = w_j [j in S] / W(S)`` (or ``/ W``, the
total weight of all players, under the utility's default ``step="share"``). A second-order
expansion of the loss around ``g`` in the averaged update gives

    U(S) ≈ beta_0 + sum_j beta_j c_j(S) + gamma ||FedAvg(S)||^2 / scale,

linear in the *averaging coefficients* (first-order term: ``beta_j`` plays
``grad · u_j``) plus the squared length of the step (the curvature term, with the
Hessian replaced by a multiple of the identity; the Gram matrix of the updates makes it
free to compute). ``beta`` and ``gamma`` are fitted by ridge least squares to every
coalition the estimator has evaluated. Because ``f`` is linear in its features, its
Shapley value is ``Phi @ coef`` where ``Phi[i, k]`` is the Shapley value of player ``i``
in the game "feature k": ``Phi`` is computed once per round, exactly for small rounds
(all ``2^n`` coalitions, no model evaluation) and from thousands of permutations
otherwise, at a cost of microseconds per coalition instead of a model evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from marketplace.errors import ConfigError

#: Rounds up to this many players get the surrogate's Shapley values by enumeration.
EXACT_SURROGATE_PLAYERS = 14
#: Permutations per chunk when the surrogate's Shapley values are sampled.
_CHUNK_PERMUTATIONS = 128


@dataclass(frozen=True)
class SurrogateBasis:
    """Features of coalitions for the surrogate of one round.

    Attributes:
        weights: FedAvg weights ``[n]`` (normalised to mean 1; only ratios matter).
        gram: ``[n, n]`` Gram matrix of the updates, normalised to mean diagonal 1, or
            None to leave out the curvature feature (utilities not built from updates).
        share: the coalition's coefficients are ``w_j / W`` over *all* players (the
            utility's ``step="share"``) instead of ``w_j / W(S)``.
    """

    weights: np.ndarray
    gram: np.ndarray | None = None
    share: bool = False

    @classmethod
    def build(
        cls, weights: np.ndarray, gram: np.ndarray | None, *, share: bool = False
    ) -> SurrogateBasis:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise ConfigError("surrogate weights must be finite and positive; one per player")
        w = w / w.mean()
        if gram is not None:
            g = np.asarray(gram, dtype=np.float64)
            if g.shape != (w.size, w.size):
                raise ConfigError(f"gram must be [n, n] with n={w.size}, got {g.shape}")
            scale = float(np.mean(np.diag(g)))
            gram = g / scale if scale > 0 and math.isfinite(scale) else None
        return cls(weights=w, gram=gram, share=share)

    @property
    def n(self) -> int:
        return int(self.weights.size)

    @property
    def width(self) -> int:
        """Number of features: intercept, n averaging coefficients, curvature if any."""
        return 1 + self.n + (0 if self.gram is None else 1)

    def features(self, membership: np.ndarray, quad: np.ndarray | None = None) -> np.ndarray:
        """Feature rows ``[m, width]`` of coalitions given as a ``[m, n]`` 0/1 matrix.

        ``quad`` optionally supplies the curvature feature already computed (prefix chains
        update it in O(n) per step instead of O(n^2)).
        """
        member = np.asarray(membership, dtype=np.float64)
        total = (
            np.full(member.shape[0], float(self.weights.sum()))
            if self.share
            else member @ self.weights
        )
        coef = member * self.weights / np.where(total > 0, total, 1.0)[:, None]
        cols = [np.ones((member.shape[0], 1)), coef]
        if self.gram is not None:
            if quad is None:
                quad = ((coef @ self.gram) * coef).sum(axis=1)
            cols.append(np.asarray(quad).reshape(-1, 1))
        return np.concatenate(cols, axis=1)

    def prefix_quad(self, perms: np.ndarray) -> np.ndarray | None:
        """Curvature feature ``||FedAvg(prefix)||^2`` of every prefix, ``[P, n + 1]``."""
        if self.gram is None:
            return None
        count, n = perms.shape
        rows = np.arange(count)
        w = self.weights
        acc = np.zeros((count, n))  # sum over the prefix of w_j * gram[j, :]
        quad_sum = np.zeros(count)  # sum over prefix pairs of w_j w_l gram[j, l]
        total = np.zeros(count)
        everyone = float(w.sum())
        out = np.zeros((count, n + 1))
        for k in range(n):
            i = perms[:, k]
            wi = w[i]
            quad_sum += 2.0 * wi * acc[rows, i] + wi * wi * self.gram[i, i]
            acc += wi[:, None] * self.gram[i]
            total += wi
            norm = everyone * everyone if self.share else total * total
            out[:, k + 1] = quad_sum / norm
        return out


def membership_of(masks: list[int], n: int) -> np.ndarray:
    """``[m, n]`` 0/1 matrix of bitmask coalitions."""
    nbytes = max(1, (n + 7) // 8)
    raw = b"".join(mask.to_bytes(nbytes, "little") for mask in masks)
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")
    return bits.reshape(len(masks), nbytes * 8)[:, :n]


def prefix_feature_marginals(basis: SurrogateBasis, perms: np.ndarray) -> np.ndarray:
    """``D[p, i, k]``: feature k's change when player i joins its prefix in permutation p."""
    count, n = perms.shape
    onehot = np.zeros((count, n, n), dtype=np.float64)
    rows = np.arange(count)[:, None]
    onehot[rows, np.arange(n)[None, :], perms] = 1.0
    prefixes = np.concatenate([np.zeros((count, 1, n)), np.cumsum(onehot, axis=1)], axis=1)
    quad = basis.prefix_quad(perms)
    flat_quad = None if quad is None else quad.reshape(-1)
    feats = basis.features(prefixes.reshape(-1, n), flat_quad).reshape(count, n + 1, -1)
    steps = np.diff(feats, axis=1)  # step j: the player at position j joins
    out = np.empty_like(steps)
    out[rows, perms] = steps
    return out


def feature_shapley(basis: SurrogateBasis, seed: int, permutations: int = 4000) -> np.ndarray:
    """``Phi[i, k]``: Shapley value of player i in the game "feature k" (``[n, width]``).

    Exact for ``n <=`` :data:`EXACT_SURROGATE_PLAYERS`; otherwise the mean over
    ``permutations`` antithetic random permutations (deterministic given ``seed``).
    """
    n = basis.n
    if n <= EXACT_SURROGATE_PLAYERS:
        idx = np.arange(1 << n, dtype=np.int64)
        member = ((idx[:, None] >> np.arange(n)[None, :]) & 1).astype(np.float64)
        values = basis.features(member)
        size = member.sum(axis=1).astype(np.int64)
        weight = np.array(
            [math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)]
        )
        phi = np.empty((n, basis.width))
        for i in range(n):
            without = idx[((idx >> i) & 1) == 0]
            diff = values[without | (1 << i)] - values[without]
            phi[i] = weight[size[without]] @ diff
        return phi
    rng = np.random.default_rng(seed)
    total = np.zeros((n, basis.width))
    done = 0
    while done < permutations:
        half = max(1, min(_CHUNK_PERMUTATIONS, permutations - done) // 2)
        forward = np.stack([rng.permutation(n) for _ in range(half)])
        perms = np.concatenate([forward, forward[:, ::-1]])
        total += prefix_feature_marginals(basis, perms).sum(axis=0)
        done += perms.shape[0]
    return total / done


def fit_surrogate(features: np.ndarray, values: np.ndarray, ridge: float) -> np.ndarray:
    """Ridge least-squares coefficients ``[width]`` (the intercept is not penalised).

    The penalty is ``ridge * m`` times the squared norm, so its strength relative to the
    data does not change as more coalitions are evaluated.
    """
    m, width = features.shape
    penalty = math.sqrt(max(ridge, 0.0) * max(m, 1))
    scale = np.sqrt((features**2).mean(axis=0)) + 1e-12
    x = features / scale
    reg = np.zeros((width - 1, width))
    reg[:, 1:] = np.eye(width - 1) * penalty
    # Normal equations: the system is only width x width. numpy's lstsq/QR through a
    # multi-threaded LAPACK took seconds at width 102 on a loaded 2-core machine.
    gram = x.T @ x + reg.T @ reg
    try:
        coef = np.linalg.solve(gram, x.T @ values)
    except np.linalg.LinAlgError:
        coef = np.linalg.pinv(gram) @ (x.T @ values)
    return coef / scale
