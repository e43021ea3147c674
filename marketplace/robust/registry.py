"""Aggregation rules by name, behind one calling convention.

A project names its aggregator on-chain (``createProject``); the aggregator node and the
auditor look the rule up here, so both run the very same function. Every entry has the
signature ``(updates, weights=None, state=None, **params) -> FilterResult``; stateful
rules read ``state`` (FoolsGold: its history; cosine check: the previous aggregate;
default: the previous aggregate and each trainer's anchor record) and return the next one
in ``FilterResult.state``. Stateless rules ignore it.

Rules in :data:`ANCHORED` also take a ``reference`` keyword: a trust anchor computed from
the owner's validation data (:mod:`marketplace.robust.anchor`). It is data of the round,
not a parameter of the project, so it travels beside ``params`` rather than in them;
:func:`anchor_recipe` tells the caller whether and how to compute it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any, Protocol

from torch import Tensor

from marketplace.errors import ConfigError
from marketplace.learning import TrainingRecipe
from marketplace.robust.anchor import AnchorRecipe
from marketplace.robust.cosine_check import cosine_check
from marketplace.robust.default import DefaultConfig, DefaultState, default_filter
from marketplace.robust.fedavg import fedavg
from marketplace.robust.foolsgold import foolsgold
from marketplace.robust.krum import krum, multi_krum
from marketplace.robust.median import median
from marketplace.robust.norm_clip import norm_clip
from marketplace.robust.result import FilterResult
from marketplace.robust.sigma_krum import sigma_krum
from marketplace.robust.trimmed_mean import trimmed_mean


class Aggregator(Protocol):
    """The uniform signature of every registered rule."""

    def __call__(
        self, updates: Tensor, weights: Tensor | None = None, state: Any = None, **params: Any
    ) -> FilterResult: ...


def _stateless(rule: Callable[..., FilterResult]) -> Aggregator:
    def entry(
        updates: Tensor, weights: Tensor | None = None, state: Any = None, **params: Any
    ) -> FilterResult:
        return rule(updates, weights, **params)

    entry.__doc__ = rule.__doc__
    entry.__wrapped__ = rule  # type: ignore[attr-defined]
    return entry


def _foolsgold(
    updates: Tensor, weights: Tensor | None = None, state: Any = None, **params: Any
) -> FilterResult:
    return foolsgold(updates, weights, history=state, **params)


def _cosine_check(
    updates: Tensor, weights: Tensor | None = None, state: Any = None, **params: Any
) -> FilterResult:
    return cosine_check(updates, weights, previous_aggregate=state, **params)


def _default(
    updates: Tensor, weights: Tensor | None = None, state: Any = None, **params: Any
) -> FilterResult:
    reference = params.pop("reference", None)
    client_ids = params.pop("client_ids", None)
    config = params.pop("config", None)
    if config is None:
        config = DefaultConfig.from_mapping(params)
    elif params:
        raise ConfigError(
            f"pass either config= or individual parameters to 'default', not both: "
            f"got config and {sorted(params)}"
        )
    if isinstance(state, Tensor):  # rounds stored before the anchor record kept only this
        state = DefaultState(previous_aggregate=state)
    return default_filter(
        updates,
        weights,
        config=config,
        state=state,
        reference=reference,
        client_ids=client_ids,
    )


_default.__wrapped__ = default_filter  # type: ignore[attr-defined]
_foolsgold.__wrapped__ = foolsgold  # type: ignore[attr-defined]
_cosine_check.__wrapped__ = cosine_check  # type: ignore[attr-defined]

AGGREGATORS: dict[str, Aggregator] = {
    "fedavg": _stateless(fedavg),
    "median": _stateless(median),
    "trimmed_mean": _stateless(trimmed_mean),
    "krum": _stateless(krum),
    "multi_krum": _stateless(multi_krum),
    "sigma_krum": _stateless(sigma_krum),
    "norm_clip": _stateless(norm_clip),
    "foolsgold": _foolsgold,
    "cosine_check": _cosine_check,
    "default": _default,
}
"""Rule name -> aggregator with the uniform signature (see :class:`Aggregator`)."""

ANCHORED = frozenset({"default"})
"""Rules that use a validation-data trust anchor (``reference``) when one is given."""

REMEMBERS_TRAINERS = frozenset({"default", "foolsgold"})
"""Rules whose state is kept per trainer: the caller passes ``client_ids``, one stable id
per row, so that a trainer's past follows it when other trainers' updates are missing."""

_STATE_PARAMS = {"history", "previous_aggregate", "reference"}


RECIPE_PARAMS = ("anchor_epochs", "anchor_lr", "anchor_momentum", "anchor_batch_size")
"""Rule parameters that set the trust anchor's training recipe."""


def anchor_recipe(
    name: str, params: dict[str, Any], declared: TrainingRecipe | None = None
) -> AnchorRecipe | None:
    """How to train the trust anchor the rule ``name`` with ``params`` wants, or None when
    it takes none (not in :data:`ANCHORED`, or its anchor stage is switched off).

    ``declared`` is the recipe the project's model spec declares: it is used unless the
    parameters set the recipe themselves (any of :data:`RECIPE_PARAMS`, or a ``config``).
    """
    if name not in ANCHORED:
        return None
    config = params.get("config")
    explicit = isinstance(config, DefaultConfig) or any(k in params for k in RECIPE_PARAMS)
    if not isinstance(config, DefaultConfig):
        known = {f.name for f in fields(DefaultConfig)}
        config = DefaultConfig.from_mapping({k: v for k, v in params.items() if k in known})
    if config.anchor_min_cosine is None:
        return None
    if declared is not None and not explicit:
        return AnchorRecipe.declared(declared)
    return config.anchor_recipe()


def min_updates(name: str, params: Mapping[str, Any]) -> int:
    """The fewest updates rule ``name`` with ``params`` can aggregate: with fewer it
    raises :class:`~marketplace.errors.AssumptionViolated` and the round keeps nobody
    (the default rule and sigma-Krum need 3 to tell a majority from outliers, Krum
    2f + 3, the median 2f + 1, FoolsGold 2 to compare; averaging rules 1)."""
    _lookup(name)
    f = params.get("f", 0)
    f = int(f) if isinstance(f, int | float) and not isinstance(f, bool) else 0
    need = {
        "default": 3,
        "sigma_krum": 3,
        "foolsgold": 2,
        "krum": 2 * f + 3,
        "multi_krum": 2 * f + 3,
        "median": 2 * f + 1,
    }
    return max(1, need.get(name, 1))


def parameters_of(name: str) -> list[str]:
    """Keyword parameters the named rule accepts (beyond updates, weights, state)."""
    entry = _lookup(name)
    if name == "default":
        return ["config", "client_ids", *(f.name for f in fields(DefaultConfig))]
    target = getattr(entry, "__wrapped__", entry)
    return [
        p.name
        for p in inspect.signature(target).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in _STATE_PARAMS
    ]


def check_params(name: str, params: Mapping[str, Any]) -> None:
    """Refuse parameters rule ``name`` does not take, and a missing one it requires (Krum's
    ``f``), when a project is configured rather than in its first round's traceback."""
    known = parameters_of(name)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ConfigError(f"aggregator {name!r} has no parameter(s) {unknown}: known are {known}")
    target = getattr(_lookup(name), "__wrapped__", None)
    if target is None or name == "default":
        return
    missing = [
        p.name
        for p in inspect.signature(target).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
        and p.default is inspect.Parameter.empty
        and p.name not in _STATE_PARAMS
        and p.name not in params
    ]
    if missing:
        shown = " ".join(f"--rule-param {m}=N" for m in missing)
        raise ConfigError(f"aggregator {name!r} needs {', '.join(missing)}: pass {shown}")


def _lookup(name: str) -> Aggregator:
    try:
        return AGGREGATORS[name]
    except KeyError:
        raise ConfigError(
            f"unknown aggregator {name!r}: choose one of {sorted(AGGREGATORS)}"
        ) from None


def aggregate(
    name: str,
    updates: Tensor,
    weights: Tensor | None = None,
    state: Any = None,
    *,
    anchor: Tensor | None = None,
    **params: Any,
) -> FilterResult:
    """Run the rule registered as ``name`` on ``updates``.

    ``anchor`` is the round's trust anchor (``[d]``, from the owner's validation data),
    handed to rules in :data:`ANCHORED` as their ``reference``; other rules ignore it.

    Raises:
        ConfigError: unknown rule name or parameter.
        AssumptionViolated / UpdateRejected: from the rule itself.
    """
    entry = _lookup(name)
    check_params(name, params)
    if anchor is not None and name in ANCHORED:
        params = {**params, "reference": anchor}
    return entry(updates, weights, state, **params)
