"""The trained model of a project (``ledgerlearn model get``): the global model a round
committed, fetched from the aggregator's store by the CID on-chain.

The blob is verified against that CID while it is read (a store cannot substitute other
bytes), decoded against the project's model spec (names, shapes, dtype) and checked to be
the global model of that very project and round (its metadata), then loaded into the
spec's network so the file is an ordinary torch ``state_dict``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from marketplace.chain.market import MarketClient
from marketplace.errors import ConfigError, StorageError
from marketplace.learning import ModelSpec
from marketplace.learning.models import build_model, set_flat_params
from marketplace.nodes.chainview import round_commits
from marketplace.rounds.codec import KIND_MODEL, get_params, get_spec
from marketplace.storage import ContentStore, cid_from_digest


@dataclass(frozen=True)
class TrainedModel:
    """A committed global model: its round, CID, spec and flat parameters."""

    project_id: int
    round: int
    cid: str
    spec: ModelSpec
    params: Tensor

    @property
    def num_params(self) -> int:
        return int(self.params.numel())

    def state_dict(self) -> dict[str, Tensor]:
        """The parameters in the spec's network, as ``build_model(spec)`` names them."""
        model = build_model(self.spec)
        set_flat_params(model, self.params)
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    def save(self, path: Path) -> None:
        """Write the state_dict with ``torch.save`` (written aside, then renamed: a
        failed download leaves no half-written file)."""
        tmp = path.with_name(path.name + ".part")
        torch.save(self.state_dict(), tmp)
        tmp.replace(path)


def fetch_model(
    market: MarketClient, store: ContentStore, project_id: int, round_: int | None = None
) -> TrainedModel:
    """The global model committed in ``round_`` (default: the last committed round)."""
    info = market.project(project_id)
    commits = round_commits(market, project_id, info.trainer_count)
    if not commits:
        raise ConfigError(f"project {project_id} has no committed round yet: no model to get")
    wanted = max(commits) if round_ is None else round_
    if wanted not in commits:
        raise ConfigError(
            f"round {wanted} of project {project_id} is not committed: "
            f"pick --round 1..{max(commits)}"
        )
    cid = commits[wanted].global_model_cid
    spec = get_spec(store, cid_from_digest(info.model_spec_cid))
    params, meta = get_params(store, spec, cid)
    expected = {"kind": KIND_MODEL, "project": str(project_id), "round": str(wanted)}
    if {k: meta.get(k) for k in expected} != expected:
        raise StorageError(
            f"blob {cid} is not the global model of project {project_id} round {wanted} "
            f"(its metadata says {meta}); the aggregator committed a wrong CID"
        )
    return TrainedModel(project_id, wanted, cid, spec, params)
