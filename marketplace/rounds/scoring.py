"""The round's contribution scores: the estimator of :mod:`marketplace.contribution`
plugged into :func:`marketplace.rounds.run_round`'s ``score_fn`` seam.

U(S) is the validation metric of ``g + server_lr * sum_{i in S} w_i u_i / W``: the
previous global model stepped with coalition S's part of the round's FedAvg (updates as
the rule saw them, weighted by the rule's effective, capped weights where it reports
them, ``W`` the total weight of all inliers), so the grand coalition is the step the
pipeline takes and a zero update is a null player (its value is exactly 0; see
:mod:`marketplace.contribution.utility`); U(empty) is ``g`` itself. All coalitions go
through :func:`marketplace.learning.evaluate_many` in batches.

A round score is then paid only above the noise floor
(:mod:`marketplace.contribution.noise_floor`): an inlier whose gain is not beyond what
random updates of its norm give, or whose part not explained by an update published in
the previous round is not, scores 0 that round, with the reason in the round report.

The default metric is **negative validation loss**, not accuracy: accuracy moves in
steps of one validation sample, so the small contributors of a round tie or swap places
on noise even under exact Shapley, and the estimator's surrogate (a smooth function of
the averaged update) fits a smooth utility far better (``docs/contribution.md``: Spearman
with exact Shapley ~0.99 vs ~0.96 at the same budget). Owners who want to pay for
accuracy itself choose ``metric="accuracy"``.

Scores are the payable (clipped at 0, ``marketplace/contribution/payable.py``) values
in fixed point; outliers are not players and get nothing. The estimator's seed derives
from the round's seed, so a replay computes identical scores.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from marketplace.contribution import (
    MAX_EXACT_PLAYERS,
    ContributionResult,
    GTGConfig,
    SubsetUtility,
    TMCConfig,
    Utility,
    exact_shapley,
    gtg_shapley,
    leave_one_out,
    tmc_shapley,
    to_fixed_point,
    to_payable,
)
from marketplace.contribution.noise_floor import FloorVerdict, NoiseFloorConfig, noise_floor
from marketplace.contribution.payable import DEFAULT_SCALE
from marketplace.errors import ConfigError
from marketplace.learning import evaluate_many
from marketplace.rounds.seeds import derive_seed

if TYPE_CHECKING:
    from marketplace.rounds.pipeline import RoundContext

log = logging.getLogger(__name__)

Method = Literal["gtg", "exact", "tmc", "loo", "equal"]
METHODS: tuple[str, ...] = ("gtg", "exact", "tmc", "loo", "equal")
#: Score of every inlier under ``method="equal"`` (and without validation data).
EQUAL_SHARE = 1_000_000


class ContributionConfig(BaseModel):
    """How a project measures contribution (part of the round config and its report).

    ``options`` are passed to the estimator's config (:class:`GTGConfig` or
    :class:`TMCConfig`), e.g. ``{"within_eps": 0.001, "control_variate": False}``.
    ``noise_floor`` None pays every positive Shapley value (not recommended: noise earns).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Method = "gtg"
    metric: Literal["neg_loss", "accuracy"] = "neg_loss"
    scale: int = Field(default=DEFAULT_SCALE, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)
    noise_floor: NoiseFloorConfig | None = Field(default_factory=NoiseFloorConfig)


def estimate_with(
    utility: Utility, method: str, seed: int, options: dict[str, Any] | None = None
) -> ContributionResult:
    """Run one named estimator (``gtg``, ``exact``, ``tmc``, ``loo``) on ``utility``.

    ``exact`` above :data:`MAX_EXACT_PLAYERS` players falls back to ``gtg`` (logged):
    a round must not fail because more trainers joined.
    """
    opts = dict(options or {})
    try:
        if method == "exact" and utility.n > MAX_EXACT_PLAYERS:
            log.warning("exact Shapley refuses n=%d players; using gtg", utility.n)
            method = "gtg"
        if method == "gtg":
            return gtg_shapley(utility, GTGConfig(**opts), seed=seed)
        if method == "tmc":
            return tmc_shapley(utility, TMCConfig(**opts), seed=seed)
    except TypeError as exc:
        raise ConfigError(f"bad contribution option for {method}: {exc}; see GTGConfig") from None
    if method == "exact":
        return exact_shapley(utility)
    if method == "loo":
        return leave_one_out(utility)
    raise ConfigError(f"unknown contribution method {method!r}; use one of {', '.join(METHODS)}")


def round_utility(context: RoundContext, metric: str) -> SubsetUtility:
    """U(S) of a round (module docstring); needs the spec and validation data."""
    assert context.spec is not None and context.validation is not None
    spec, validation = context.spec, context.validation

    def evaluate_batch(params: torch.Tensor) -> dict[str, torch.Tensor]:
        accuracy, loss = evaluate_many(spec, params.to(torch.float32), validation)
        return {"accuracy": accuracy, "loss": loss}

    weights = context.inlier_weights
    if context.aggregation_weights is not None:
        weights = context.aggregation_weights.to(torch.float64).clamp_min(1e-12)
    return SubsetUtility(
        context.global_params,
        context.inlier_updates * context.server_lr,
        weights,
        evaluate_batch,
        metric=metric,  # type: ignore[arg-type]
    )


def _public_rows(context: RoundContext) -> dict[int, torch.Tensor]:
    """Per inlier position: the previous round's published updates of the *other*
    trainers (what it could read before committing)."""
    published = context.public_updates
    if not published:
        return {}
    out: dict[int, torch.Tensor] = {}
    for pos, index in enumerate(context.inlier_indices):
        rows = [v.reshape(-1) for j, v in sorted(published.items()) if j != index]
        if rows:
            out[pos] = torch.stack(rows).to(torch.float64)
    return out


def floor_verdicts(
    context: RoundContext, config: ContributionConfig, utility: SubsetUtility | None = None
) -> list[FloorVerdict] | None:
    """The noise floor's verdict per inlier (None when the floor is off)."""
    if config.noise_floor is None or not context.inlier_indices:
        return None
    utility = utility or round_utility(context, config.metric)
    return noise_floor(
        utility,
        config.noise_floor,
        derive_seed("noise_floor", context.seed),
        _public_rows(context),
    )


def contribution_values(context: RoundContext, config: ContributionConfig) -> torch.Tensor:
    """Payable (non-negative) float contributions of the inliers, in inlier order
    (before the noise floor)."""
    n = len(context.inlier_indices)
    if n == 0:
        return torch.zeros(0, dtype=torch.float64)
    return _values(round_utility(context, config.metric), context, config)


def _values(
    utility: SubsetUtility, context: RoundContext, config: ContributionConfig
) -> torch.Tensor:
    seed = derive_seed("contribution", context.seed)
    result = estimate_with(utility, config.method, seed, config.options)
    log.info(
        "contribution (%s, %s): %d evaluations, %s",
        config.method,
        config.metric,
        result.evaluations,
        {k: v for k, v in result.details.items() if k != "method"},
    )
    return to_payable(result.values)


def score_round(context: RoundContext, config: ContributionConfig) -> list[int]:
    """Fixed-point scores of the inliers (one int each) for ``commitRound``."""
    return score_round_noted(context, config)[0]


def score_round_noted(
    context: RoundContext, config: ContributionConfig
) -> tuple[list[int], dict[int, str]]:
    """:func:`score_round` plus, per trainer index scored 0 by the noise floor, why."""
    n = len(context.inlier_indices)
    if config.method == "equal":
        return [EQUAL_SHARE] * n, {}
    if context.validation is None or context.spec is None:
        log.warning("no validation data: every inlier gets an equal share of this round")
        return [EQUAL_SHARE] * n, {}
    if n == 0:
        return [], {}
    utility = round_utility(context, config.metric)
    values = _values(utility, context, config)
    notes: dict[int, str] = {}
    verdicts = floor_verdicts(context, config, utility)
    if verdicts is not None:
        for pos, verdict in enumerate(verdicts):
            if not verdict.passed:
                values[pos] = 0.0
                notes[context.inlier_indices[pos]] = verdict.reason or "noise floor"
    return to_fixed_point(values, config.scale), notes
