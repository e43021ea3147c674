"""Robust aggregation: filter Byzantine, Sybil and free-riding updates, then aggregate.

Every rule is a pure function over a stacked ``[n, d]`` update tensor returning a
:class:`FilterResult` (inlier mask, aggregate, per-update scores, reasons). Look rules up
by name with :func:`aggregate` / :data:`AGGREGATORS`; ``"default"`` is the combined filter
of :mod:`marketplace.robust.default`.
"""

from marketplace.robust.anchor_record import AnchorRecord
from marketplace.robust.cosine_check import cosine_check
from marketplace.robust.default import DefaultConfig, DefaultState, default_filter
from marketplace.robust.fedavg import fedavg
from marketplace.robust.foolsgold import FoolsGoldHistory, foolsgold
from marketplace.robust.krum import krum, multi_krum
from marketplace.robust.median import median
from marketplace.robust.norm_clip import norm_clip
from marketplace.robust.registry import AGGREGATORS, aggregate
from marketplace.robust.result import FilterResult
from marketplace.robust.sigma_krum import sigma_krum
from marketplace.robust.trimmed_mean import trimmed_mean

__all__ = [
    "AGGREGATORS",
    "AnchorRecord",
    "DefaultConfig",
    "DefaultState",
    "FilterResult",
    "FoolsGoldHistory",
    "aggregate",
    "cosine_check",
    "default_filter",
    "fedavg",
    "foolsgold",
    "krum",
    "median",
    "multi_krum",
    "norm_clip",
    "sigma_krum",
    "trimmed_mean",
]
