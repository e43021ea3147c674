"""A trainer node: trains on its own data, publishes updates by CID, commits on-chain.

The data never leaves the node. What leaves is the model update (a safetensors blob in
the trainer's *own* content store, served by its own trustless gateway) and, on-chain,
the digest of that update's CID and the Poseidon commitment of the update's sketch
(ARCHITECTURE.md, round step 3). The sketch and its salt travel in the update blob's
metadata (:mod:`marketplace.rounds.sketches`, which also says where the sketch parameters
come from: the project's round verifier on-chain, or a default without one).

Where the model comes from: the project's model spec and every global model are
published by the aggregator in its content store and served by its gateway; their
digests are on-chain (``modelSpecCid``, ``globalModelCid``) so the trainer verifies
what it fetches. The aggregator cannot announce an endpoint on-chain (only trainers
can), so its gateway URL is given to the trainer out of band (``--aggregator-gateway``),
like the RPC URL. Round 1 starts from ``init_params(spec)``, which needs no transfer.

A node is restartable: training is deterministic (the batch-order seed derives from
project, round, trainer index and the trainer's private secret), so a node killed between
storing and committing republishes the same CID; one that already committed this round
just waits. What it publishes follows the project's privacy settings
(:mod:`marketplace.privacy.updates`: sealed to the readers, DP, bucketed sample count).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError
from torch import Tensor

from marketplace.chain.market import (
    ZERO32,
    ZERO_ADDRESS,
    MarketClient,
    ProjectInfo,
    ProjectStatus,
)
from marketplace.errors import ConfigError, StorageError, TransactionReverted
from marketplace.learning import (
    Dataset,
    ModelSpec,
    TrainConfig,
    TrainingRecipe,
    init_params,
    local_train,
)
from marketplace.nodes.chainview import chain_time
from marketplace.privacy.keys import trainer_secret
from marketplace.privacy.updates import encode_update, private_train_config, update_metadata
from marketplace.rounds.codec import KIND_MODEL, KIND_UPDATE, encode_params, get_params, get_spec
from marketplace.rounds.seeds import derive_seed
from marketplace.rounds.sketches import SketchOpening, make_opening, project_sketch_spec
from marketplace.storage import ContentStore, cid_from_digest, digest_of, put_blob
from zk.sketch import SketchSpec, make_salt

log = logging.getLogger(__name__)

#: Reverts that mean "this round is no longer ours to commit", not a bug.
_ROUND_MOVED_ON = {"CommitWindowClosed", "WrongRound", "AlreadyCommitted", "ProjectNotOpen"}


@dataclass(frozen=True)
class TrainerStep:
    """What one call of :meth:`TrainerNode.step` did."""

    status: str  # committed | waiting | missed | done | closed | retry
    round: int
    cid: str | None = None
    detail: str = ""


def sketch_spec_for(market: MarketClient, info: ProjectInfo) -> SketchSpec:
    """The project's sketch: the dimensions and value bits of its round verifier (read from
    the chain), or the default sketch when it has none."""
    if info.verifier == ZERO_ADDRESS:
        return project_sketch_spec(info.project_id)
    from zk.onchain import read_verifier

    shape = read_verifier(market, info.verifier).shape
    return project_sketch_spec(info.project_id, shape.dim, shape.value_bits)


def local_recipe(
    spec: ModelSpec,
    *,
    epochs: int | None = None,
    lr: float | None = None,
    momentum: float | None = None,
    batch_size: int | None = None,
) -> TrainingRecipe:
    """The recipe a trainer trains with: each value given here, else the one the project's
    spec declares, else :class:`TrainingRecipe`'s default. A trainer that follows the
    declared recipe trains as the aggregator's trust anchor does (FLTrust's assumption)."""
    base = spec.training or TrainingRecipe()
    given = {"epochs": epochs, "lr": lr, "momentum": momentum, "batch_size": batch_size}
    changes = {k: v for k, v in given.items() if v is not None}
    try:
        return TrainingRecipe.model_validate({**base.model_dump(), **changes})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"invalid training recipe: {first['loc'][0]}: {first['msg']}") from None


def fetch_project_spec(source: ContentStore, info: ProjectInfo) -> ModelSpec:
    """The model spec whose CID digest the project committed to, fetched from ``source``."""
    if info.model_spec_cid == ZERO32:
        raise ConfigError(
            f"project {info.project_id} declares no model spec CID: the owner must create "
            "it with --model-spec-cid"
        )
    return get_spec(source, cid_from_digest(info.model_spec_cid))


class TrainerNode:
    """One trainer of one project. ``market`` signs as the trainer."""

    def __init__(
        self,
        market: MarketClient,
        project_id: int,
        data: Dataset,
        store: ContentStore,
        model_source: ContentStore,
        train_config: TrainConfig | None = None,
        spec: ModelSpec | None = None,
    ) -> None:
        if market.sender is None:
            raise ConfigError("a trainer node needs a signing account: pass --key or --account")
        self.market = market
        self.project_id = project_id
        self.data = data
        self.store = store
        self.model_source = model_source
        self.train_config = train_config or TrainConfig()
        self._spec: ModelSpec | None = spec
        self._index: int | None = None
        self._sketch_spec: SketchSpec | None = None
        self._openings: dict[str, SketchOpening] = {}

    @property
    def address(self) -> str:
        assert self.market.sender is not None
        return self.market.sender.address

    @property
    def index(self) -> int:
        """This trainer's registration index in the project."""
        if self._index is None:
            index = self.market.trainer_index(self.project_id, self.address)
            if index is None:
                raise ConfigError(
                    f"{self.address} is not registered in project {self.project_id}: run "
                    "`ledgerlearn trainer register` first"
                )
            self._index = index
        return self._index

    def spec(self, info: ProjectInfo | None = None) -> ModelSpec:
        """The project's model spec, fetched once by its on-chain CID."""
        if self._spec is None:
            info = info or self.market.project(self.project_id)
            self._spec = fetch_project_spec(self.model_source, info)
        return self._spec

    def sketch_spec(self, info: ProjectInfo | None = None) -> SketchSpec:
        """The project's sketch parameters, read once (see :func:`sketch_spec_for`)."""
        if self._sketch_spec is None:
            info = info or self.market.project(self.project_id)
            self._sketch_spec = sketch_spec_for(self.market, info)
        return self._sketch_spec

    def opening(self, round_: int, update: Tensor) -> SketchOpening:
        """The sketch of ``update`` and this round's salt (deterministic: a restarted node
        commits the same value)."""
        secret = derive_seed("salt", self.project_id, self.train_config.seed)
        salt = make_salt(secret, self.address.lower(), round_)
        return make_opening(update, self.sketch_spec(), salt)

    def announce(self, url: str) -> None:
        """Tell the aggregator (on-chain, in an event) where this node's gateway is."""
        self.market.announce_endpoint(self.project_id, url)
        log.info("trainer %s announced gateway %s", self.address, url)

    def global_params(self, info: ProjectInfo) -> Tensor:
        """The global model this round trains from: initial weights in round 1, else the
        aggregator's last committed model (verified against its on-chain CID)."""
        spec = self.spec(info)
        if info.rounds_committed == 0:
            return init_params(spec)
        cid = cid_from_digest(info.global_model_cid)
        params, meta = get_params(self.model_source, spec, cid)
        if meta.get("kind") != KIND_MODEL:
            raise StorageError(f"{cid} is not a global model (kind {meta.get('kind')!r})")
        return params

    @property
    def secret(self) -> bytes:
        """This node's private secret (derived from its signing key)."""
        assert self.market.sender is not None
        return trainer_secret(self.market.sender.account.key)

    def train(self, round_: int, global_params: Tensor) -> Tensor:
        """This trainer's honest update for ``round_`` (deterministic, privately seeded)."""
        cfg = private_train_config(
            self.spec(),
            self.train_config,
            self.secret,
            self.project_id,
            round_,
            self.index,
            len(self.data),
        )
        return local_train(self.spec(), global_params, self.data, cfg)

    def publish(self, round_: int, update: Tensor, opening: SketchOpening | None = None) -> str:
        """Store the update, with its sketch opening in the blob's metadata, in this node's
        content store; returns its CID. ``opening`` defaults to the update's own (tests
        pass another to play a trainer that lies about its sketch)."""
        opening = opening or self.opening(round_, update)
        base = {
            "kind": KIND_UPDATE,
            "project": str(self.project_id),
            "round": str(round_),
            **opening.metadata(),
        }
        spec = self.spec()
        meta = update_metadata(spec, base, round_, len(self.data))
        inner = encode_params(spec, update, meta)
        cid = put_blob(self.store, encode_update(spec, inner, meta, self.secret))
        self._openings[cid] = opening
        return cid

    def commit(self, round_: int, cid: str) -> None:
        """Commit the update's CID digest and its sketch commitment on-chain (the
        commitment of the opening published with ``cid``; zero for a blob this node did
        not publish)."""
        opening = self._openings.get(cid)
        sketch = ZERO32
        if opening is not None:
            sketch = opening.commitment_bytes(self.sketch_spec().value_bits)
        self.market.commit_update(self.project_id, round_, digest_of(cid), sketch)

    def has_committed(self, round_: int) -> bool:
        committed, _digest, _count = self.market.committed(self.project_id, round_)
        return self.index < len(committed) and committed[self.index]

    def step(self) -> TrainerStep:
        """Do this round's work if it is due: fetch, train, publish, commit."""
        info = self.market.project(self.project_id)
        r = info.current_round
        if info.status != ProjectStatus.OPEN:
            return TrainerStep("closed", r)
        if info.rounds_committed >= info.rounds:
            return TrainerStep("done", r)
        if self.has_committed(r):
            return TrainerStep("waiting", r)
        deadline = info.round_opened_at + info.round_duration
        if chain_time(self.market) > deadline:
            return TrainerStep("missed", r, detail=f"commit deadline {deadline} passed")
        try:
            params = self.global_params(info)
        except StorageError as exc:
            log.warning("round %d: cannot fetch the global model yet: %s", r, exc)
            return TrainerStep("retry", r, detail=str(exc))
        cid = self.publish(r, self.train(r, params))
        try:
            self.commit(r, cid)
        except TransactionReverted as exc:
            if exc.error_name in _ROUND_MOVED_ON:
                return TrainerStep("missed", r, cid, str(exc))
            raise
        log.info("trainer %d committed round %d: %s", self.index, r, cid)
        return TrainerStep("committed", r, cid)

    def run(
        self,
        poll_s: float = 0.5,
        stop: threading.Event | None = None,
        on_step: Callable[[TrainerStep], None] | None = None,
    ) -> None:
        """Loop until the project's last round is committed (or it closes).

        The node keeps serving (its gateway runs beside this loop) until then, because
        the aggregator fetches updates after they are committed.
        """
        last: tuple[str, int] | None = None
        while stop is None or not stop.is_set():
            result = self.step()
            if on_step is not None and (result.status, result.round) != last:
                on_step(result)
            last = (result.status, result.round)
            if result.status in ("done", "closed"):
                return
            time.sleep(poll_s)
