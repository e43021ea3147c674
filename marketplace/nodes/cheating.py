"""Cheating aggregators for ``ledgerlearn simulate --aggregator-attack`` (issue #13.7-10).

Each one is the honest :class:`~marketplace.nodes.aggregator.AggregatorNode` with one
dishonest step, played by an aggregator that also runs trainer 0 (the slot it wants to
enrich). The node computes, stores and commits its round through the real code paths; the
contract and the attesting trainers decide what it earns:

* ``self_deal``: gives its own slot (trainer 0) 99 times everybody else's scores together
  (~99% of the round), which the ZK proof does not cover.
* ``rule_switch``: aggregates with FedAvg whatever robust rule the project pins, and says
  the pinned rule in its report.
* ``grind``: tries several round seeds and arrival orders of its own choosing (not the
  chain's reveal fold and commit order) and commits the one that scores trainer 0 highest.

Its trainer 0 attests the root the aggregator committed, whatever a replay gives.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from torch import Tensor

from marketplace.learning import ModelSpec
from marketplace.nodes.aggregator import AggregatorNode
from marketplace.rounds.pipeline import RoundConfig, RoundOutcome, Submission, run_round
from marketplace.rounds.seeds import derive_seed
from marketplace.rounds.state import RoundState

AggregatorAttack = Literal["empty_rounds", "self_deal", "rule_switch", "grind"]
ACCOMPLICE = 0
"""The trainer slot a cheating aggregator runs."""
GRIND_TRIES = 4
SELF_DEAL_FACTOR = 99


def _share(outcome: RoundOutcome, index: int) -> float:
    total = sum(outcome.scores)
    if index not in outcome.inliers or total == 0:
        return 0.0
    return outcome.scores[outcome.inliers.index(index)] / total


class CheatingAggregator(AggregatorNode):
    """An aggregator that cheats in :meth:`compute` as ``attack`` says (module docstring)."""

    def __init__(self, *args: Any, attack: AggregatorAttack, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.attack = attack

    def check_pinned(self, spec: ModelSpec, config: RoundConfig | None = None) -> None:
        if self.attack != "rule_switch":
            super().check_pinned(spec, config)

    def compute(
        self,
        global_params: Tensor,
        submissions: list[Submission],
        weights: list[float],
        config: RoundConfig,
        state: RoundState,
        **inputs: Any,
    ) -> RoundOutcome:
        args = (global_params, submissions, weights)
        if self.attack == "rule_switch":
            switched = config.model_copy(update={"rule": "fedavg", "rule_params": {}})
            return run_round(*args, switched, state, **inputs)
        if self.attack == "grind":
            n = len(submissions)
            tries = []
            for k in range(GRIND_TRIES):
                order = list(range(n))
                order = order[k % max(n, 1) :] + order[: k % max(n, 1)]  # rotated arrivals
                seed = derive_seed("grind", int(inputs.get("seed", 0)), k)
                tried = {**inputs, "seed": seed, "commit_order": order}
                tries.append(run_round(*args, config, state, **tried))
            return max(tries, key=lambda o: _share(o, ACCOMPLICE))
        outcome = run_round(*args, config, state, **inputs)
        if self.attack == "self_deal" and ACCOMPLICE in outcome.inliers:
            others = sum(outcome.scores) - outcome.scores[outcome.inliers.index(ACCOMPLICE)]
            scores = list(outcome.scores)
            scores[outcome.inliers.index(ACCOMPLICE)] = SELF_DEAL_FACTOR * max(others, 1)
            return replace(outcome, scores=scores)
        return outcome


__all__ = ["ACCOMPLICE", "AggregatorAttack", "CheatingAggregator"]
