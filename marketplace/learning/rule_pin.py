"""The robust rule a project pins in its model spec (issue 13.9).

The spec's CID is committed on-chain at project creation, so a rule written here is
fixed before any trainer joins: the aggregator refuses to run another one, and
``ledgerlearn audit`` reports every round whose report names another rule or other
parameters (:mod:`marketplace.rounds.pinning`). A class of its own, beside
:class:`~marketplace.learning.models.TrainingRecipe`, because it is the aggregator's
contract with the trainers, not part of the network or of local training.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PinnedRule(BaseModel):
    """The robust rule (a name from ``marketplace.robust``) and its parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)

    def __hash__(self) -> int:  # a spec is hashed (cached model builds): hash the JSON
        return hash(json.dumps(self.model_dump(mode="json"), sort_keys=True))
