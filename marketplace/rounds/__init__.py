"""Federated rounds: validate fetched updates, filter and aggregate, update
hyper-parameters, and publish a report, all as pure, replayable functions. In a
verifiable project the filter is the provable sketch rule (:mod:`.zkfilter`) over the
sketches trainers commit (:mod:`.sketches`).

The nodes (:mod:`marketplace.nodes`) do the I/O around them: chain reads and writes,
content stores and gateways.
"""

from marketplace.rounds.codec import (
    KIND_MODEL,
    KIND_UPDATE,
    decode_params,
    encode_params,
    get_params,
    max_blob_bytes,
    param_shapes,
    put_params,
)
from marketplace.rounds.hyper import HyperConfig, ServerHyper, next_hyper
from marketplace.rounds.pipeline import (
    EQUAL_SHARE,
    RoundConfig,
    RoundContext,
    RoundOutcome,
    ScoreFn,
    equal_scores,
    run_round,
)
from marketplace.rounds.report import RoundReport, build_report, get_report, put_report
from marketplace.rounds.scoring import METHODS, ContributionConfig, score_round
from marketplace.rounds.sketches import (
    SketchOpening,
    check_opening,
    make_opening,
    project_sketch_spec,
)
from marketplace.rounds.state import RoundState, get_rule_state, put_rule_state
from marketplace.rounds.validate import CheckedUpdate, check_bytes, fetch_update
from marketplace.rounds.zkfilter import ZkFilterConfig, zk_filter

__all__ = [
    "EQUAL_SHARE",
    "KIND_MODEL",
    "KIND_UPDATE",
    "METHODS",
    "CheckedUpdate",
    "ContributionConfig",
    "HyperConfig",
    "RoundConfig",
    "RoundContext",
    "RoundOutcome",
    "RoundReport",
    "RoundState",
    "ScoreFn",
    "ServerHyper",
    "SketchOpening",
    "ZkFilterConfig",
    "build_report",
    "check_bytes",
    "check_opening",
    "decode_params",
    "encode_params",
    "equal_scores",
    "fetch_update",
    "get_params",
    "get_report",
    "get_rule_state",
    "make_opening",
    "max_blob_bytes",
    "next_hyper",
    "param_shapes",
    "project_sketch_spec",
    "put_params",
    "put_report",
    "put_rule_state",
    "run_round",
    "score_round",
    "zk_filter",
]
