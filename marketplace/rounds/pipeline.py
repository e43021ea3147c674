"""One aggregation round as a pure function: validated updates in, new global model out.

``run_round`` is what the aggregator node runs and what an auditor replays
(docs/architecture.md, "The marketplace round", steps 4 and 7). Given the same inputs it
returns the same bytes: every tensor operation runs on one thread
(:func:`marketplace.learning.train.single_thread`) and nothing in it draws randomness
except through ``seed``.

Order of work:

1. updates rejected by validation (:mod:`.validate`) go to ``rejected_mask``;
2. every accepted update is clipped to ``clip_factor x clip_bound`` (:mod:`.hyper`);
3. the project's robust rule (:func:`marketplace.robust.aggregate`) keeps the inliers
   and aggregates them; a rule whose assumption fails (e.g. ``default`` with fewer than
   3 updates) keeps nobody and the model does not move, rather than guess. Rules that
   use a trust anchor (``default``) get FLTrust's server update: the global model trained
   on the owner's validation data with the rule's anchor recipe
   (:func:`marketplace.robust.anchor.server_update`), seeded by
   ``derive_seed("anchor", seed)``, so an auditor with the same validation data recomputes
   it; without validation data the anchor stage is skipped and a warning names the
   assumption it needs;
4. the global model takes a step ``server_lr * aggregate``;
5. validation accuracy and loss before and after the step (when validation data is
   given) feed the next round's hyper-parameters;
6. ``score_fn`` gives each inlier its contribution score; by default the project's
   ``config.contribution`` estimator with its noise floor (:mod:`marketplace.rounds.scoring`).

Before step 2, an update byte-identical to one committed earlier in the round (by
``commit_order``) is rejected as a copycat; the earlier committer keeps its update.

In a verifiable project (``config.zk`` set: the project has a round verifier) step 3 is
the provable sketch rule of :mod:`marketplace.rounds.zkfilter` instead of the robust rule,
so that the committed inlier mask is exactly the one the Groth16 proof covers; the
sketches are the trainers' opened ones (``sketches``) or, in a replay, recomputed from the
updates (they are equal for every accepted update: the aggregator rejects the others).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from marketplace.errors import AssumptionViolated, ConfigError
from marketplace.learning import Dataset, ModelSpec, evaluate_many
from marketplace.learning.train import single_thread
from marketplace.robust import aggregate
from marketplace.robust.anchor import AnchorRecipe, server_update
from marketplace.robust.default import ANCHOR_ASSUMPTION
from marketplace.robust.norm_clip import clip_to_norm
from marketplace.robust.registry import REMEMBERS_TRAINERS, anchor_recipe
from marketplace.robust.stats import median_of, row_norms
from marketplace.rounds.hyper import HyperConfig, ServerHyper, next_hyper
from marketplace.rounds.scoring import EQUAL_SHARE, ContributionConfig, score_round_noted
from marketplace.rounds.seeds import derive_seed
from marketplace.rounds.sketches import sketch_of
from marketplace.rounds.state import RoundState
from marketplace.rounds.zkfilter import ZkFilterConfig, zk_filter

log = logging.getLogger(__name__)

MAX_SCORE = 2**128 - 1  # uint128 on-chain


class RoundConfig(BaseModel):
    """How a project aggregates: the robust rule, its parameters, hyper-parameter rules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: str = "default"
    rule_params: dict[str, Any] = Field(default_factory=dict)
    hyper: HyperConfig = Field(default_factory=HyperConfig)
    contribution: ContributionConfig = Field(default_factory=ContributionConfig)
    zk: ZkFilterConfig | None = None

    @property
    def filter_name(self) -> str:
        """The rule that decides the inliers (the sketch rule in a verifiable project)."""
        return self.rule if self.zk is None else "zk_sketch_median"


@dataclass(frozen=True)
class RoundContext:
    """Everything a contribution estimator may look at, handed to ``score_fn``.

    ``inlier_updates`` are the (clipped) updates the rule saw, one row per inlier in
    ascending trainer-index order (``inlier_indices``); ``seed`` is the round's seed.
    ``public_updates`` are the previous round's accepted updates by trainer index: what
    any trainer could read before committing this round (the noise floor's novelty test).
    """

    spec: ModelSpec | None
    global_params: Tensor
    inlier_indices: list[int]
    inlier_updates: Tensor
    inlier_weights: Tensor
    aggregate: Tensor
    server_lr: float
    new_global_params: Tensor
    validation: Dataset | None
    seed: int
    aggregation_weights: Tensor | None = None
    public_updates: Mapping[int, Tensor] | None = None


ScoreFn = Callable[[RoundContext], list[int]]


def equal_scores(context: RoundContext) -> list[int]:
    """:data:`EQUAL_SHARE` for every inlier (``ContributionConfig(method="equal")``)."""
    return [EQUAL_SHARE] * len(context.inlier_indices)


@dataclass(frozen=True)
class RoundOutcome:
    """The result of :func:`run_round`, over all ``n`` trainer indices."""

    inlier_mask: list[bool]
    rejected_mask: list[bool]
    rejections: dict[int, str]
    exclusions: dict[int, str]
    scores: list[int]
    new_global_params: Tensor
    aggregate: Tensor
    hyper_used: ServerHyper
    next_state: RoundState
    metrics: dict[str, float | int | None] = field(default_factory=dict)
    filter_scores: dict[int, float | None] = field(default_factory=dict)
    anchor: Tensor | None = None  # the trust anchor the rule used (published with the round)
    score_notes: dict[int, str] = field(default_factory=dict)  # why an inlier scored 0

    @property
    def inliers(self) -> list[int]:
        return [i for i, keep in enumerate(self.inlier_mask) if keep]


Submission = Tensor | str | None
"""Per trainer index: an accepted update, the reason it was rejected, or None when the
trainer did not commit this round."""


def _accept(
    updates: Sequence[Submission], d: int
) -> tuple[list[int], list[Tensor], dict[int, str]]:
    accepted: list[int] = []
    vectors: list[Tensor] = []
    rejections: dict[int, str] = {}
    for i, item in enumerate(updates):
        if item is None:
            continue
        if isinstance(item, str):
            rejections[i] = item
            continue
        vec = item.detach().reshape(-1).to(torch.float32)
        if vec.numel() != d:
            rejections[i] = f"shape: update has {vec.numel()} values, the model has {d}"
        elif not bool(torch.isfinite(vec).all()):
            rejections[i] = "non-finite: update holds NaN or infinite values"
        else:
            accepted.append(i)
            vectors.append(vec)
    return accepted, vectors, rejections


def _reject_duplicates(
    accepted: list[int],
    vectors: list[Tensor],
    rejections: dict[int, str],
    order: Sequence[int] | None,
) -> tuple[list[int], list[Tensor]]:
    """Reject every update that is byte-identical to one committed earlier (a copycat that
    submits another trainer's blob or CID); the earliest committer keeps it.

    ``order[i]`` is trainer ``i``'s position in the round's commit order (the market's
    arrival order; lower is earlier; None: trainer-index order). Rejected, not excluded:
    provenance is checked before any rule, so the copy never reaches the filter, whose
    clone stage would otherwise drop the original with it."""
    first: dict[bytes, int] = {}
    rank = (lambda i: (order[i], i)) if order is not None else (lambda i: (i, i))
    for j in sorted(range(len(accepted)), key=lambda j: rank(accepted[j])):
        key = vectors[j].numpy().tobytes()
        if key in first:
            original = accepted[first[key]]
            rejections[accepted[j]] = (
                f"duplicate: the same update as trainer {original}'s, committed earlier (copycat)"
            )
        else:
            first[key] = j
    keep = [j for j in range(len(accepted)) if accepted[j] not in rejections]
    return [accepted[j] for j in keep], [vectors[j] for j in keep]


def _checked_scores(scores: Sequence[int], count: int) -> list[int]:
    out = [int(s) for s in scores]
    if len(out) != count:
        raise ConfigError(
            f"score_fn returned {len(out)} scores for {count} inliers: return one per inlier"
        )
    if any(s < 0 or s > MAX_SCORE for s in out):
        raise ConfigError("score_fn returned a score outside 0..2**128-1: scale the scores")
    return out


def _sketch_row(
    index: int, vector: Tensor, sketches: Mapping[int, Sequence[int]] | None, zk: ZkFilterConfig
) -> list[int]:
    if sketches is not None and index in sketches:
        return [int(v) for v in sketches[index]]
    return sketch_of(vector, zk.sketch_spec())


def _norm_bounded(updates: Tensor) -> Tensor:
    """The inliers' updates as the contribution game scores them: each clipped to the
    inliers' median norm. Below the loss-optimal step a coalition's gain grows with its
    step's length, so scored as sent, an honest update multiplied by k earned about k
    shares under every rule that keeps it whole (fedavg, median, trimmed mean, norm clip:
    17-37% of the reward for one booster of 10 in the red team). Bounded, a trainer is paid
    for the direction it brings, not for how far it pushes; an update under the median
    is scored as sent."""
    return clip_to_norm(updates, median_of(row_norms(updates)))


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def anchor_recipe_for(config: RoundConfig, spec: ModelSpec | None) -> AnchorRecipe | None:
    """How the round's rule trains its trust anchor, or None when it uses none (zk mode,
    a rule without one, or its stage off). The recipe is the rule's ``anchor_*``
    parameters, else the one the model spec declares, else the default
    (:func:`marketplace.robust.registry.anchor_recipe`)."""
    if config.zk is not None:
        return None
    declared = spec.training if spec is not None else None
    return anchor_recipe(config.rule, dict(config.rule_params), declared)


def _anchor(
    config: RoundConfig,
    start: Tensor,
    spec: ModelSpec | None,
    validation: Dataset | None,
    seed: int,
    given: Tensor | None = None,
) -> Tensor | None:
    """The rule's trust anchor, or None (zk mode, a rule without one, its stage off, or no
    validation data, which is logged: that project runs without the anchor stage).
    ``given`` (a published anchor) is used instead of training one; the recipe is
    :func:`anchor_recipe_for`'s."""
    recipe = anchor_recipe_for(config, spec)
    if recipe is None:
        return None
    if given is not None:
        return given.reshape(-1).to(torch.float32)
    if validation is None or spec is None:
        log.warning(
            "rule %s runs without its trust anchor: no validation data, so sign- and "
            "label-flipped updates on non-IID data may pass; give the owner's validation "
            "data (assumed: %s)",
            config.rule,
            ANCHOR_ASSUMPTION,
        )
        return None
    return server_update(spec, start, validation, recipe, derive_seed("anchor", seed))


def run_round(
    global_params: Tensor,
    updates: Sequence[Submission],
    weights: Sequence[float] | None,
    config: RoundConfig,
    state: RoundState,
    *,
    spec: ModelSpec | None = None,
    validation: Dataset | None = None,
    score_fn: ScoreFn | None = None,
    seed: int = 0,
    sketches: Mapping[int, Sequence[int]] | None = None,
    anchor: Tensor | None = None,
    commit_order: Sequence[int] | None = None,
    public_updates: Mapping[int, Tensor] | None = None,
) -> RoundOutcome:
    """Filter, aggregate, step and evaluate one round (see the module docstring).

    ``updates[i]`` belongs to trainer index ``i``; ``weights[i]`` is its claimed sample
    count (ignored unless the update is accepted; None weighs all equally).
    ``validation`` needs ``spec``. ``score_fn`` None scores with ``config.contribution``.
    ``sketches[i]`` is trainer ``i``'s opened sketch (zk mode only; recomputed from the
    update where absent). ``anchor`` replaces the trust anchor the rule would train on
    ``validation`` (an auditor without the validation data replays with the published
    one). ``commit_order[i]`` is trainer ``i``'s position in the round's commit order:
    of byte-identical updates only the earliest committed is accepted. ``public_updates``
    are the previous round's accepted updates by trainer index (what a trainer could copy;
    the noise floor does not pay for them again). Deterministic given its inputs.
    """
    if validation is not None and spec is None:
        raise ConfigError("run_round needs the model spec to evaluate on validation data")
    if weights is not None and len(weights) != len(updates):
        raise ConfigError(f"got {len(weights)} weights for {len(updates)} trainers")
    n = len(updates)
    start = global_params.detach().reshape(-1).to(torch.float32)
    d = start.numel()
    with single_thread():
        accepted, vectors, rejections = _accept(updates, d)
        accepted, vectors = _reject_duplicates(accepted, vectors, rejections, commit_order)
        hyper = state.hyper
        limit = hyper.update_clip_limit(config.hyper)
        raw = torch.stack(vectors) if vectors else torch.zeros(0, d)
        clipped = clip_to_norm(raw, limit) if limit is not None and vectors else raw
        w = torch.tensor(
            [float(weights[i]) if weights is not None else 1.0 for i in accepted],
            dtype=torch.float64,
        )
        keep = [False] * len(accepted)
        exclusions: dict[int, str] = {}
        filter_scores: dict[int, float | None] = {}
        agg = torch.zeros(d, dtype=torch.float32)
        effective: Tensor | None = None
        rule_state = state.rule_state
        reference: Tensor | None = None
        if accepted:
            params = dict(config.rule_params)
            if config.rule in REMEMBERS_TRAINERS and "client_ids" not in params:
                params["client_ids"] = [str(i) for i in accepted]
            name = config.filter_name
            try:
                if config.zk is None:
                    reference = _anchor(config, start, spec, validation, seed, anchor)
                    result = aggregate(
                        config.rule, clipped, w, state.rule_state, anchor=reference, **params
                    )
                else:
                    rows = [
                        _sketch_row(i, vectors[j], sketches, config.zk)
                        for j, i in enumerate(accepted)
                    ]
                    result = zk_filter(clipped, w, rows, config.zk)
            except AssumptionViolated as exc:
                log.warning("rule %s could not run; nobody is kept: %s", name, exc)
                exclusions = {i: f"rule {name} could not run: {exc}" for i in accepted}
            else:
                keep = [bool(k) for k in result.inlier_mask.tolist()]
                agg = result.aggregate.to(torch.float32)
                effective = result.weights
                rule_state = result.state if config.zk is None else state.rule_state
                for j, i in enumerate(accepted):
                    filter_scores[i] = _finite(float(result.scores[j]))
                    if not keep[j]:
                        exclusions[i] = result.reason.get(j, f"excluded by {name}")
        inlier_rows = [j for j, k in enumerate(keep) if k]
        inlier_indices = [accepted[j] for j in inlier_rows]
        new_global = start + hyper.server_lr * agg if inlier_indices else start.clone()

        metrics: dict[str, float | int | None] = {
            "trainers": n,
            "committed": sum(u is not None for u in updates),
            "accepted": len(accepted),
            "rejected": len(rejections),
            "inliers": len(inlier_indices),
            "step_norm": float(torch.linalg.vector_norm(new_global - start)),
            "seed": seed,  # the contribution estimator's seed derives from it: replayable
        }
        median_norm = median_of(row_norms(raw[inlier_rows])) if inlier_rows else None
        metrics["inlier_median_norm"] = median_norm
        scored = _norm_bounded(clipped[inlier_rows]) if inlier_rows else torch.zeros(0, d)
        loss_before = loss_after = None
        if validation is not None and spec is not None:
            acc, loss = evaluate_many(spec, torch.stack([start, new_global]), validation)
            metrics["accuracy_before"], metrics["accuracy"] = float(acc[0]), float(acc[1])
            loss_before, loss_after = float(loss[0]), float(loss[1])
            metrics["loss_before"], metrics["loss"] = _finite(loss_before), _finite(loss_after)
        context = RoundContext(
            spec=spec,
            global_params=start,
            inlier_indices=inlier_indices,
            inlier_updates=scored,
            inlier_weights=w[inlier_rows] if inlier_rows else torch.zeros(0, dtype=torch.float64),
            aggregate=agg,
            server_lr=hyper.server_lr,
            new_global_params=new_global,
            validation=validation,
            seed=seed,
            aggregation_weights=(
                effective[inlier_rows].to(torch.float64)
                if effective is not None and inlier_rows
                else None
            ),
            public_updates=public_updates,
        )
        score_notes: dict[int, str] = {}
        if score_fn is None:
            raw_scores, score_notes = score_round_noted(context, config.contribution)
            scores = _checked_scores(raw_scores, len(inlier_rows))
        else:
            scores = _checked_scores(score_fn(context), len(inlier_indices))
    following = next_hyper(
        hyper,
        config.hyper,
        inlier_median_norm=median_norm,
        loss_before=loss_before,
        loss_after=loss_after,
    )
    inlier_set = set(inlier_indices)
    return RoundOutcome(
        inlier_mask=[i in inlier_set for i in range(n)],
        rejected_mask=[i in rejections for i in range(n)],
        rejections=rejections,
        exclusions=dict(sorted(exclusions.items())),
        scores=scores,
        new_global_params=new_global,
        aggregate=agg,
        hyper_used=hyper,
        next_state=RoundState(hyper=following, rule_state=rule_state),
        metrics=metrics,
        filter_scores=filter_scores,
        anchor=reference,
        score_notes=score_notes,
    )


def rule_params_from(values: Mapping[str, Any]) -> dict[str, Any]:
    """Rule parameters from strings (CLI ``key=value``), numbers where they parse."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                out[key] = value
                continue
            out[key] = int(number) if number.is_integer() and "." not in value else number
        else:
            out[key] = value
    return out
