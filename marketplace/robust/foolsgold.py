"""FoolsGold similarity dampening (Fung, Yoon and Beschastnikh 2020, "The Limitations of
Federated Learning in Sybil Settings", RAID; Algorithm 1).

Sybil clones push the same poisoned objective, so their *accumulated* updates point the
same way round after round, while honest clients with different data drift apart. Each
client's weight falls with its largest cosine similarity to any other client's history;
identical clones end at weight 0. "Pardoning" rescales the similarity of an honest client
to a clone by the ratio of their maximum similarities, so honest clients that merely
resemble a clone are not punished.

The rule is pure: the per-client history goes in as a :class:`FoolsGoldHistory` and the
updated history comes back in :attr:`FilterResult.state`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from marketplace.errors import AssumptionViolated
from marketplace.robust.result import FilterResult
from marketplace.robust.stats import normalized, row_norms, weighted_mean
from marketplace.robust.validate import check_client_ids, check_updates, check_weights

RULE = "FoolsGold"
_COLLINEAR_TOL = 1e-9
"""Dissimilarity below this is float rounding of a cosine of exactly 1."""


@dataclass(frozen=True)
class FoolsGoldHistory:
    """Accumulated update per client id (Algorithm 1's ``H_i``). Never mutated: a round
    returns a new history."""

    sums: Mapping[str, Tensor] = field(default_factory=dict)

    def accumulate(self, client_ids: Sequence[str], updates: Tensor) -> FoolsGoldHistory:
        """A new history with ``updates[i]`` added to client ``client_ids[i]``'s sum."""
        sums = dict(self.sums)
        for cid, row in zip(client_ids, updates, strict=True):
            prev = sums.get(cid)
            sums[cid] = row.detach().clone() if prev is None else prev + row.detach()
        return FoolsGoldHistory(sums=sums)


def foolsgold_weights(vectors: Tensor, kappa: float = 1.0) -> tuple[Tensor, Tensor]:
    """FoolsGold weights ``alpha`` in ``[0, 1]`` and the pardoned max similarity per row.

    ``vectors`` is ``[n, d]`` (histories or raw updates), ``n >= 2``. Raises
    AssumptionViolated when every row is fully similar to another (no honest diversity).
    """
    n = vectors.shape[0]
    x = vectors.to(torch.float64)
    unit = x / row_norms(x).clamp(min=torch.finfo(torch.float64).tiny).unsqueeze(1)
    cs = unit @ unit.T
    cs.fill_diagonal_(-math.inf)
    v = cs.max(dim=1).values
    vi, vj = v.clamp(min=0.0).unsqueeze(1), v.unsqueeze(0)
    pardon = (vj > vi) & (vj > 0)
    cs = torch.where(pardon, cs * vi / vj.clamp(min=torch.finfo(torch.float64).tiny), cs)
    similarity = cs.max(dim=1).values
    alpha = (1.0 - similarity).clamp(0.0, 1.0)
    alpha = torch.where(alpha < _COLLINEAR_TOL, torch.zeros_like(alpha), alpha)
    top = float(alpha.max())
    if top <= 0.0:
        raise AssumptionViolated(
            f"{RULE} needs honest updates that are not all collinear (Fung et al. 2020); "
            f"got every one of the {n} updates fully similar to another: use another rule"
        )
    alpha = alpha / top
    alpha = torch.where(alpha >= 1.0, torch.full_like(alpha, 0.99), alpha)
    alpha = kappa * (torch.log(alpha / (1.0 - alpha)) + 0.5)
    alpha = torch.nan_to_num(alpha, nan=0.0, posinf=1.0, neginf=0.0).clamp(0.0, 1.0)
    return alpha, similarity


def foolsgold(
    updates: Tensor,
    weights: Tensor | None = None,
    *,
    history: FoolsGoldHistory | None = None,
    client_ids: Sequence[str] | None = None,
    use_history: bool = True,
    kappa: float = 1.0,
) -> FilterResult:
    """Aggregate with FoolsGold weights: mean weighted by ``alpha_i * weights_i``.

    Args:
        updates: ``[n, d]`` this round's updates.
        weights: optional sample counts, multiplied with the FoolsGold weights.
        history: accumulated updates from earlier rounds (None on the first round).
        client_ids: stable id per row so histories line up across rounds; defaults to
            the row index, which is only right if the order never changes.
        use_history: compare accumulated histories (the paper) or this round only.
        kappa: confidence of the logit spread (the paper's default 1).

    Assumes ``n >= 2``, that honest clients' histories are not collinear (non-IID data),
    and that Sybils share an objective. ``inlier_mask`` is ``alpha > 0``; ``scores`` are
    the pardoned maximum cosine similarities; ``state`` is the new history.

    Raises:
        AssumptionViolated: ``n < 2``, bad ids or ``kappa``, or all updates collinear.
    """
    check_updates(updates, RULE)
    n, d = updates.shape
    w = check_weights(weights, n, RULE)
    if n < 2:
        raise AssumptionViolated(
            f"{RULE} needs n >= 2 to compare clients (Fung et al. 2020); got n={n}: add trainers"
        )
    if not (math.isfinite(kappa) and kappa > 0):
        raise AssumptionViolated(f"{RULE} needs kappa > 0; got kappa={kappa}: use kappa=1")
    ids = check_client_ids(range(n) if client_ids is None else client_ids, n, RULE)
    past = history if history is not None else FoolsGoldHistory()
    for cid in ids:
        prev = past.sums.get(cid)
        if prev is not None and prev.shape != (d,):
            raise AssumptionViolated(
                f"{RULE} history for client {cid} has shape {tuple(prev.shape)}, updates have "
                f"d={d}: start a new history when the model changes"
            )
    new_history = past.accumulate(ids, updates)
    vectors = torch.stack([new_history.sums[c] for c in ids]) if use_history else updates
    alpha, similarity = foolsgold_weights(vectors, kappa)
    mask = alpha > 0
    combined = alpha * w
    reason = {
        i: f"FoolsGold weight 0: cosine similarity {float(similarity[i]):.3f} to another "
        "client's history (Sybil-like)"
        for i in range(n)
        if not mask[i]
    }
    return FilterResult(
        inlier_mask=mask,
        aggregate=weighted_mean(updates, combined, mask),
        scores=similarity,
        reason=reason,
        weights=normalized(combined, mask),
        state=new_history,
    )
