"""LedgerLearn's default robust filter: cheap, explainable tests in a fixed order, then
the weighted mean of what survives.

No single classic rule covers the attacks a public marketplace sees: the median and
trimmed mean lose accuracy on non-IID data and cannot tell a clone army from a consensus;
Krum keeps one update; norm clipping alone lets a flipped or cloned update vote.
Each stage below removes one kind of attack and is scale-free, so honest non-IID
clients, whose updates differ widely, are not excluded en masse:

1. **Malformed**: rows with NaN/inf are rejected.
2. **Free riders** (zero or near-zero updates): norm below ``free_rider_ratio`` x the
   median norm.
3. **Boosted** updates (scaling / model-replacement, Bagdasaryan et al. 2020): norm
   above ``boost_ratio`` x the median norm. The ratio is generous because honest norms
   vary with data size; step 4 takes care of moderately large honest updates.
4. **Norm clipping** of the rest to their median norm (Sun et al. 2019), so no survivor
   weighs more than a typical honest update. The tests below run on clipped updates;
   the final mean re-clips the inliers to ``clip_ratio`` (1.5) x *their* median norm, so
   the excluded small attackers do not shrink the bound. Why 1.5 and not 1: on non-IID
   data honest norms differ with each client's data, and clipping them all to the median
   cost 1-3 points of accuracy on clean Dirichlet-0.5 federations, while 1.5 matched clean
   FedAvg and was as good or better under every attack (``scripts/bench_robust.py``
   cells, 2-3 seeds, digits and MNIST-1D, IID and Dirichlet). Lower it to trade step
   length for robustness.
4b. **Trust anchor** (when the caller passes ``reference``, an update computed from the
   owner's clean validation data; the round pipeline passes FLTrust's server update,
   :func:`marketplace.robust.anchor.server_update`, trained with the ``anchor_*`` recipe,
   which should be the trainers' own): an update whose cosine with it is not above
   ``anchor_min_cosine`` (0) is dropped. This is FLTrust's trust score ReLU(cos) (Cao et
   al., NDSS 2021) read as a mask: a client FLTrust would give zero weight takes no part.
   Why it is needed: on non-IID data one round's honest updates are nearly orthogonal
   to each other, so sign-flipped and label-flipped updates sit inside the honest spread
   and no test below, which only sees the updates, can name them (measured on the
   benchmark, MNIST-1D Dirichlet 0.5: 30% sign flippers passed every stage in every
   round, while their cosines with the server update stayed below -0.29 and the honest
   ones above 0; see :mod:`marketplace.robust.anchor`). It runs before the statistics
   below, so those see fewer attackers. Without a reference (no validation data) the
   stage is skipped and the filter is what it was: sign and label flips on non-IID data
   then get through. With the anchor on, stage 6's cosine test is off (see there).
4c. **Anchor record** (with the anchor, when the caller names each row's trainer with
   ``client_ids``; ``anchor_record`` switches it off): the anchor is then judged on the
   trainer's history, not on one round. An update is dropped when its trainer's mean
   cosine with the anchor over every round it reached stage 4b, this one included, is not
   above ``anchor_min_cosine`` (:mod:`marketplace.robust.anchor_record`), and stage 4b's
   own bound is lowered by ``anchor_dip_tolerance`` (0.05), so a trainer with a good
   record survives a round that dips just below 0. Why: one round's cosine is noisy
   both ways. Label flippers pass stage 4b in some rounds with a cosine just above 0,
   while over the run their mean stays below 0 and every honest trainer's above it; and
   honest non-IID trainers dip just below 0 in some rounds, which cost clean federations
   accuracy. In the first round the record is that round's cosine, so the test is
   FLTrust's; an update that turns against the anchor by more than the tolerance is
   dropped whatever its record. Measured with ``scripts/bench_robust.py`` cells (30%
   attackers, seeds 0-3), against stage 4b alone: MNIST-1D/Dirichlet 0.5 clean
   0.462 -> 0.474 (clean FedAvg: 0.474), label flip 0.429 -> 0.448, sign flip 0.441 ->
   0.449; digits/Dirichlet 0.5 (seeds 0-2) within 0.002 either way. The record is the
   rule's state (:class:`DefaultState`), which the round pipeline stores by CID with
   each report.
5. **Sybil clones**: an update whose (clipped) distance to another is below
   ``duplicate_rel_distance`` x the median nearest-neighbour distance is dropped with its
   whole group. The yardstick is the federation's own nearest-neighbour spacing, which
   a minority of attackers cannot inflate (a pairwise-distance median can be, and an
   absolute ``cosine > 0.99`` fires on IID federations and on honest clients that share
   a label distribution). Exact and lightly jittered clones sit ~0 apart; honest
   neighbours sit about one typical spacing apart. Dropping the group (not keeping one
   member) denies the attacker even one vote. Clones jittered by more than that are no
   longer clones to this test; steps 4 and 6 bound them like any other outlier.
5b. **Coordinated groups** (label flipping, Tolpegin et al. 2020; colluding Sybils that
   train on one poisoned objective, Fung et al. 2020): each row's *second*-highest cosine
   with another kept row (so a group needs at least three members; a chance honest pair
   does not count) is compared with the federation's own level. A row is dropped when it
   is above ``median + z * MAD`` (MAD measured below the median, the half a coordinated
   minority cannot occupy) and above ``median + coordination_margin * (1 - median)``.
   Why it is needed: measured on the benchmark (``scripts/bench_robust.py``, mnist1d,
   MLP, 2 local epochs), honest updates are nearly orthogonal to each other (pairwise
   cosine ~0.05: client noise dominates one round's signal) while 30% label flippers
   agree with each other at cosine ~0.6. The coordinate-wise median of step 6 then sits
   *closer to the flippers* (cosine 0.55 vs 0.15 for honest rows) and step 6 alone keeps
   all of them. The margin keeps IID federations safe, where every honest row has a near
   twin (second-highest cosines all ~0.9).
6. **Outliers around a robust centre**: the coordinate-wise median of the survivors
   (Yin et al. 2018) is the reference. An update is dropped when its distance to it is
   above ``median + z * MAD`` of the distances, or when its cosine with it is below
   ``median - z * MAD`` of the cosines. The MAD is one-sided: it is measured on the half
   an attacker cannot usefully occupy (distances below the median, cosines above it), so
   it stays honest when attackers approach half of the updates and a two-sided MAD of a
   bimodal sample would swell to let them all in. Floors keep honest stragglers in
   when the honest spread is tiny (high dimension, IID data): nothing within
   ``distance_margin`` (relative) of the median distance or within ``cosine_margin``
   (relative) of the median cosine is dropped. The distance test catches sign flips and
   noise; the cosine test catches small updates pointing the wrong way (IPM, Xie et al.
   2020), which a distance test misses because they sit near the origin. The cosine test
   runs only without a trust anchor: an update pointing against the honest majority also
   points against the server update and stage 4b drops it, while on non-IID data the
   cosine test dropped honest updates (their cosines with the median sit near 0) and cost
   accuracy. Measured with ``scripts/bench_robust.py`` cells, 3-4 seeds, all 8 attacks at
   30%: without it the worst case rose from 0.422 to 0.429 on MNIST-1D/Dirichlet 0.5 and
   from 0.872 to 0.878 on digits/Dirichlet 0.5 (sign flip 0.426 -> 0.441 and 0.875 ->
   0.884), and no IID cell lost more than 0.001. For the same reason, with the anchor on
   the distance test is loosened to ``anchored_distance_z`` (6) MADs: on non-IID data it
   dropped honest updates that the anchor had kept, and it is left to catch gross
   outliers. Measured with ``scripts/bench_robust.py`` cells (30% attackers, seeds 0-3):
   on digits/Dirichlet 0.5 with the attackers already removed, the z = 3 test alone cost
   2.8 points on seed 2 (0.878 against 0.906 without it); across all 8 attacks the
   worst case there rose from 0.880 to 0.886 (ALIE, IPM and clones 0.881 -> 0.889), and
   no MNIST-1D/Dirichlet or IID cell moved by more than 0.003.
7. **Cross-round check** (optional, off by default): cosine with the previous aggregate
   below ``cross_round_min_cosine``.
8. The aggregate is the mean of the clipped inliers weighted by sample counts, each
   capped at ``max_weight_ratio`` x the median weight so that a self-reported count
   cannot buy the aggregate.

Assumptions: ``n >= 3`` and fewer than half of the updates are malicious (the median
norm and the coordinate-wise median come from honest clients). With a ``reference``, also
that the owner's validation data it comes from are clean and roughly representative of the
task: an honest client whose data the validation set does not cover may then be dropped in
a round where its update does not help on the validation data, and poisoned validation
data would hand the attacker the anchor. Attacks designed to hide
inside the honest spread (ALIE, Baruch et al. 2019) cannot be removed by any rule of this
kind; clipping and the median reference bound their harm to about one honest spread.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import Tensor

from marketplace.errors import AssumptionViolated, ConfigError
from marketplace.robust.anchor import AnchorRecipe
from marketplace.robust.anchor_record import AnchorRecord
from marketplace.robust.cosine_check import cosines_to
from marketplace.robust.norm_clip import clip_to_norm
from marketplace.robust.result import FilterResult
from marketplace.robust.stats import (
    coordinate_median,
    median_of,
    normalized,
    pairwise_sq_distances,
    robust_center_scale,
    row_norms,
    weighted_mean,
)
from marketplace.robust.validate import (
    check_client_ids,
    check_updates,
    check_weights,
    nonfinite_rows,
)

RULE = "default robust filter"
ANCHOR_ASSUMPTION = "the owner's validation data are clean and roughly representative"
"""What the trust-anchor stage (4b) assumes; quoted in its errors and the pipeline's log."""


@dataclass(frozen=True)
class DefaultConfig:
    """Parameters of :func:`default_filter`; see the module docstring for each stage."""

    free_rider_ratio: float = 0.1
    boost_ratio: float = 4.0
    clip_ratio: float = 1.5
    duplicate_rel_distance: float = 0.1
    z: float = 3.0
    distance_margin: float = 0.1
    cosine_margin: float = 0.3
    max_weight_ratio: float = 10.0
    coordination_margin: float = 0.5
    cross_round_min_cosine: float | None = None
    anchor_min_cosine: float | None = 0.0
    anchor_record: bool = True
    anchor_dip_tolerance: float = 0.05
    anchored_distance_z: float = 6.0
    anchor_epochs: int = AnchorRecipe.epochs
    anchor_lr: float = AnchorRecipe.lr
    anchor_momentum: float = AnchorRecipe.momentum
    anchor_batch_size: int = AnchorRecipe.batch_size

    def __post_init__(self) -> None:
        checks = {
            "free_rider_ratio": 0.0 <= self.free_rider_ratio < 1.0,
            "boost_ratio": self.boost_ratio > 1.0,
            "clip_ratio": self.clip_ratio > 0.0,
            "duplicate_rel_distance": 0.0 <= self.duplicate_rel_distance < 1.0,
            "z": self.z > 0.0,
            "anchored_distance_z": self.anchored_distance_z > 0.0,
            "distance_margin": self.distance_margin >= 0.0,
            "cosine_margin": self.cosine_margin >= 0.0,
            "max_weight_ratio": self.max_weight_ratio >= 1.0,
            "coordination_margin": 0.0 <= self.coordination_margin <= 1.0,
            "anchor_dip_tolerance": 0.0 <= self.anchor_dip_tolerance < 1.0,
        }
        for name, ok in checks.items():
            value = getattr(self, name)
            if not (ok and math.isfinite(value)):
                raise ConfigError(
                    f"default filter parameter {name}={value} is out of range: "
                    "see DefaultConfig's docstring for the meaning of each field"
                )
        self.anchor_recipe()  # validates the anchor_* fields
        # the anchor test drops cos <= bound (FLTrust's ReLU), so a bound of 1 drops everyone
        for name, top in (("cross_round_min_cosine", 1.0), ("anchor_min_cosine", 1.0 - 1e-12)):
            c = getattr(self, name)
            if c is not None and not (math.isfinite(c) and -1.0 <= c <= top):
                raise ConfigError(
                    f"default filter parameter {name}={c} must be in [-1, 1] "
                    f"({'below 1' if top < 1 else 'inclusive'}) or None"
                )

    def anchor_recipe(self) -> AnchorRecipe:
        """How the caller should train the stage-4b reference (FLTrust's server update)."""
        return AnchorRecipe(
            self.anchor_epochs, self.anchor_lr, self.anchor_momentum, self.anchor_batch_size
        )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> DefaultConfig:
        """Build from a mapping (e.g. a TOML table), refusing unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown default filter parameter(s) {unknown}: known are {sorted(known)}"
            )
        return cls(**dict(values))


@dataclass(frozen=True)
class DefaultState:
    """What the default filter carries from one round to the next: the previous aggregate
    (stage 7's reference) and each trainer's anchor record (stage 4c)."""

    previous_aggregate: Tensor | None = None
    record: AnchorRecord = field(default_factory=AnchorRecord)


def _drop(keep: Tensor, reason: dict[int, str], flagged: Tensor, why: Callable[[int], str]) -> None:
    """Exclude the kept rows that are ``flagged`` (bool[n]), recording ``why(i)`` for each;
    a row keeps the reason of the first stage that excluded it."""
    for i in (flagged & keep).nonzero().flatten().tolist():
        keep[i] = False
        reason[i] = why(i)


def default_filter(
    updates: Tensor,
    weights: Tensor | None = None,
    *,
    config: DefaultConfig | None = None,
    state: DefaultState | None = None,
    reference: Tensor | None = None,
    client_ids: Sequence[object] | None = None,
) -> FilterResult:
    """Run the default filter (module docstring) and average the clipped inliers.

    ``reference`` (``[d]``) is the trust anchor of stage 4b, an update computed from the
    owner's clean validation data (:func:`marketplace.robust.anchor.server_update` with
    ``config.anchor_recipe()``); None skips that stage (``anchor_min_cosine=None`` too).
    ``client_ids`` names the trainer of each row, stable across rounds; without them
    there is no anchor record (stage 4c). ``state`` is the previous round's
    ``FilterResult.state`` (None on the first round).

    ``scores`` are distances of the clipped updates to the coordinate-wise median
    reference (``inf`` for non-finite rows); ``weights`` the normalised aggregation
    weights; ``state`` a :class:`DefaultState` holding the aggregate and the updated
    anchor record.

    Raises:
        AssumptionViolated: ``n < 3``, or no usable update (all malformed, the median
            norm is zero because most updates are empty, or every update excluded), or
            a ``reference`` of the wrong shape or that is zero or not finite, or
            ``client_ids`` that are not one distinct id per row.
    """
    cfg = config or DefaultConfig()
    past = state or DefaultState()
    check_updates(updates, RULE, allow_nonfinite=True)
    n = updates.shape[0]
    w = check_weights(weights, n, RULE)
    ids = None if client_ids is None else check_client_ids(client_ids, n, RULE)
    if n < 3:
        raise AssumptionViolated(
            f"{RULE} needs n >= 3 to tell a majority from outliers; got n={n}: "
            "add trainers or use 'fedavg'"
        )
    reason: dict[int, str] = {}
    keep = torch.ones(n, dtype=torch.bool)
    malformed = nonfinite_rows(updates)
    _drop(keep, reason, malformed, lambda i: "NaN/inf values (malformed update)")
    if not bool(keep.any()):
        raise AssumptionViolated(f"{RULE} needs finite updates; got none of {n}: resend them")
    clean = updates if not bool(malformed.any()) else torch.where(keep.unsqueeze(1), updates, 0.0)

    norms = row_norms(clean)
    _norm_stage(norms, keep, reason, cfg)
    clipped = clip_to_norm(clean, median_of(norms[keep]))
    anchored = False
    record = past.record
    if cfg.anchor_min_cosine is not None and reference is not None:
        seen = keep.clone()
        recorded = ids if cfg.anchor_record else None  # whose record stage 4c keeps
        dip = cfg.anchor_dip_tolerance if recorded is not None else 0.0
        cos = _anchor_stage(clipped, reference, keep, reason, cfg.anchor_min_cosine - dip)
        anchored = True
        if recorded is not None:
            record = _record_stage(cos, seen, recorded, record, keep, reason, cfg.anchor_min_cosine)
    _duplicate_stage(clipped, keep, reason, cfg.duplicate_rel_distance)
    _coordination_stage(clipped, keep, reason, cfg)
    dist = _centre_stage(clipped, keep, reason, cfg, anchored=anchored)
    previous = past.previous_aggregate
    if cfg.cross_round_min_cosine is not None and previous is not None:
        _cross_round_stage(clipped, previous, keep, reason, cfg.cross_round_min_cosine)
    if not bool(keep.any()):
        hint = "loosen the thresholds in DefaultConfig"
        if reference is not None and cfg.anchor_min_cosine is not None:
            hint += f", or check the anchor's assumption ({ANCHOR_ASSUMPTION})"
        raise AssumptionViolated(f"{RULE} excluded every update: {reason[0]}: {hint}")

    final = clip_to_norm(clean, cfg.clip_ratio * median_of(norms[keep]))
    capped = torch.minimum(w, torch.tensor(cfg.max_weight_ratio * median_of(w[keep])))
    agg = weighted_mean(final, capped, keep)
    return FilterResult(
        inlier_mask=keep,
        aggregate=agg,
        scores=torch.where(malformed, torch.full_like(dist, math.inf), dist),
        reason=dict(sorted(reason.items())),
        weights=normalized(capped, keep),
        state=DefaultState(previous_aggregate=agg, record=record),
    )


def _norm_stage(norms: Tensor, keep: Tensor, reason: dict[int, str], cfg: DefaultConfig) -> None:
    """Stages 2 and 3: free riders below, boosted updates above, the median norm."""
    med = median_of(norms[keep])
    if med <= 0.0:
        raise AssumptionViolated(
            f"{RULE} needs a positive median update norm; got 0 (most updates are empty): "
            "check that trainers train, or fewer than half are free riders"
        )
    low, high = cfg.free_rider_ratio * med, cfg.boost_ratio * med
    _drop(
        keep,
        reason,
        norms < low,
        lambda i: (
            f"norm {float(norms[i]):.3g} < {low:.3g} = {cfg.free_rider_ratio:g} x median "
            "norm (free rider)"
        ),
    )
    _drop(
        keep,
        reason,
        norms > high,
        lambda i: (
            f"norm {float(norms[i]):.3g} > {high:.3g} = {cfg.boost_ratio:g} x median "
            "norm (boosted update)"
        ),
    )


def _anchor_stage(
    clipped: Tensor, reference: Tensor, keep: Tensor, reason: dict[int, str], min_cos: float
) -> Tensor:
    """Stage 4b: cosine with the owner's trust anchor not above ``min_cos``; returns every
    row's cosine with it."""
    ref = torch.as_tensor(reference)
    if ref.shape != clipped.shape[1:] or not bool(torch.isfinite(ref).all()) or not ref.any():
        raise AssumptionViolated(
            f"{RULE} needs a finite nonzero reference of shape [{clipped.shape[1]}]; got "
            f"shape {tuple(ref.shape)}: pass the server update of this model on the "
            "validation data, or None"
        )
    cos = cosines_to(clipped, ref)
    _drop(
        keep,
        reason,
        cos <= min_cos,
        lambda i: (
            f"cosine {float(cos[i]):.3f} with the server update on the owner's validation "
            f"data <= {min_cos:g} (FLTrust trust anchor: points away from it)"
        ),
    )
    return cos


def _record_stage(
    cos: Tensor,
    seen: Tensor,
    ids: list[str],
    record: AnchorRecord,
    keep: Tensor,
    reason: dict[int, str],
    min_cos: float,
) -> AnchorRecord:
    """Stage 4c: add this round's anchor cosines of the ``seen`` rows (those that reached
    stage 4b) to their trainers' records, then drop kept rows whose trainer's mean is not
    above ``min_cos``; returns the new record."""
    rows = seen.nonzero().flatten().tolist()
    record = record.with_round([ids[i] for i in rows], [float(cos[i]) for i in rows])
    means = {i: record.sums[ids[i]] / record.rounds[ids[i]] for i in rows}
    flagged = torch.tensor([i in means and means[i] <= min_cos for i in range(len(ids))])
    _drop(
        keep,
        reason,
        flagged,
        lambda i: (
            f"mean cosine {means[i]:.3f} with the trust anchor over trainer {ids[i]}'s "
            f"{record.rounds[ids[i]]} rounds <= {min_cos:g} (anchor record: works against "
            "the owner's validation data)"
        ),
    )
    return record


def _duplicate_stage(clipped: Tensor, keep: Tensor, reason: dict[int, str], rel: float) -> None:
    """Stage 5: drop every kept row closer than ``rel`` x the median nearest-neighbour
    distance to another kept row (one :func:`torch.cdist` over the kept rows)."""
    idx = keep.nonzero().flatten()
    if idx.numel() < 3 or rel <= 0.0:
        return
    dist = pairwise_sq_distances(clipped[idx]).sqrt()
    dist.fill_diagonal_(math.inf)
    limit = rel * median_of(dist.min(dim=1).values)
    close = dist < limit
    for a in close.any(dim=1).nonzero().flatten().tolist():
        i = int(idx[a])
        keep[i] = False
        reason[i] = (
            f"near-duplicate of updates {idx[close[a]].tolist()} (distance < {rel:g} x median "
            "nearest-neighbour distance; Sybil clones)"
        )


def _coordination_stage(
    clipped: Tensor, keep: Tensor, reason: dict[int, str], cfg: DefaultConfig
) -> None:
    """Stage 5b: drop rows whose second-highest cosine with another kept row is far above
    the federation's level (one ``[k, k]`` Gram matrix of the kept unit rows)."""
    idx = keep.nonzero().flatten()
    if idx.numel() < 4:
        return
    x = clipped[idx].to(torch.float64)
    unit = x / row_norms(x).clamp(min=torch.finfo(torch.float64).tiny).unsqueeze(1)
    cs = unit @ unit.T
    cs.fill_diagonal_(-math.inf)
    second = cs.topk(2, dim=1).values[:, 1]
    med, scale = robust_center_scale(second, side="lower")
    bound = max(med + cfg.z * scale, med + cfg.coordination_margin * (1.0 - med))
    for a in (second > bound).nonzero().flatten().tolist():
        i = int(idx[a])
        keep[i] = False
        reason[i] = (
            f"second-highest cosine {float(second[a]):.3f} with another update > {bound:.3f} "
            "(median + z MAD): a coordinated group (label flipping / colluding Sybils)"
        )


def _centre_stage(
    clipped: Tensor,
    keep: Tensor,
    reason: dict[int, str],
    cfg: DefaultConfig,
    *,
    anchored: bool,
) -> Tensor:
    """Stage 6: distance (and, without the trust anchor, cosine) to the coordinate-wise
    median of the kept rows, with one-sided robust thresholds (the distance at
    ``anchored_distance_z`` MADs with the anchor); returns every row's distance (the
    rule's scores). When earlier stages kept nobody there is no median to test against:
    distances are to the median of all rows and nothing more is dropped (the caller
    then refuses the round with the reason)."""
    if not bool(keep.any()):
        return row_norms(clipped - coordinate_median(clipped))
    reference = coordinate_median(clipped[keep])
    dist = row_norms(clipped - reference)
    cos = cosines_to(clipped, reference)
    med_d, s_d = robust_center_scale(dist[keep], side="lower")
    med_c, s_c = robust_center_scale(cos[keep], side="upper")
    z_d = cfg.anchored_distance_z if anchored else cfg.z
    d_bound = max(med_d + z_d * s_d, (1.0 + cfg.distance_margin) * med_d)
    c_bound = min(med_c - cfg.z * s_c, med_c - cfg.cosine_margin * abs(med_c))
    far = dist > d_bound
    turned = torch.zeros_like(far) if anchored else cos < c_bound
    _drop(
        keep,
        reason,
        far,
        lambda i: (
            f"distance {float(dist[i]):.3g} to the coordinate-wise median > "
            f"{d_bound:.3g} (median + {z_d:g} MAD)"
        ),
    )
    _drop(
        keep,
        reason,
        turned,
        lambda i: (
            f"cosine {float(cos[i]):.3f} with the coordinate-wise median < "
            f"{c_bound:.3f} (median - z MAD)"
        ),
    )
    return dist


def _cross_round_stage(
    clipped: Tensor, previous: Tensor, keep: Tensor, reason: dict[int, str], min_cos: float
) -> None:
    """Stage 7: cosine with the previous round's aggregate below ``min_cos``."""
    prev = torch.as_tensor(previous).to(clipped.dtype)
    if prev.shape != clipped.shape[1:]:
        raise AssumptionViolated(
            f"{RULE} needs a previous aggregate of shape [{clipped.shape[1]}]; got "
            f"{tuple(prev.shape)}: pass the last round's aggregate of this model"
        )
    if not bool(prev.any()):
        return
    cos = cosines_to(clipped, prev)
    _drop(
        keep,
        reason,
        cos < min_cos,
        lambda i: f"cosine {float(cos[i]):.3f} with the previous aggregate < {min_cos:g}",
    )
