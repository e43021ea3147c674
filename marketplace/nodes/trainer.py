"""A trainer node: trains on its own data, commits to its update, then reveals and serves it.

The data never leaves the node. What leaves is the model update (a safetensors blob in
the trainer's *own* content store, served by its own trustless gateway) and, on-chain,
the digest of that update's CID and the Poseidon commitment of the update's sketch
(docs/architecture.md, round step 3). The sketch and its salt travel in the update blob's
metadata (:mod:`marketplace.rounds.sketches`, which also says where the sketch parameters
come from: the project's round verifier on-chain, or a default without one).

Commit, then reveal: in the round's commit window the node sends only
``keccak256(cidDigest, sketchCommitment, salt, trainer, project, round)``
(:func:`marketplace.chain.market.update_commitment`) and keeps the blob in a private
staging store, so nobody can read, copy or re-announce its update (or learn its sketch
salt) while commitments are still open. Once the window is closed it reveals the opening
on-chain and only then copies the blob into the store its gateway serves. Both salts
derive from the trainer's private key, so nobody else can guess them.

Where the model comes from: the project's model spec and every global model are
published by the aggregator in its content store and served by its gateway; their
digests are on-chain (``modelSpecCid``, ``globalModelCid``) so the trainer verifies
what it fetches. The aggregator cannot announce an endpoint on-chain (only trainers
can), so its gateway URL is given to the trainer out of band (``--aggregator-gateway``),
like the RPC URL. Round 1 starts from ``init_params(spec)``, which needs no transfer.

Attested projects (``ProjectInfo.attested``): once the aggregator commits a round, the node
replays it (:class:`marketplace.nodes.attest.RoundAttester`, with the owner's validation
data) and attests the scores root it computed; only a stake-majority root pays, and one
that is not the aggregator's replaces it. To replay sealed updates the node announces its
reader key on-chain and seals its own updates to its co-trainers' announced keys too
(:meth:`TrainerNode.replayers`): in an attested project the trainers read each other's
updates after the reveal, as the aggregator does (declare DP to protect against both).

A node is restartable: training is deterministic (the batch-order seed derives from
project, round, trainer index and the trainer's private secret), so a node killed
between committing and revealing trains again to the same CID and opens the
commitment it made; one that already revealed this round just waits. What it publishes
follows the project's privacy settings (:mod:`marketplace.privacy.updates`: sealed to
the readers, DP, bucketed sample count).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import ValidationError
from torch import Tensor

from marketplace.chain.market import (
    ZERO32,
    ZERO_ADDRESS,
    MarketClient,
    Opening,
    ProjectInfo,
    ProjectStatus,
    RoundScores,
)
from marketplace.errors import ChainError, ConfigError, StorageError, TransactionReverted
from marketplace.learning import (
    Dataset,
    ModelSpec,
    TrainConfig,
    TrainingRecipe,
    init_params,
    local_train,
)
from marketplace.privacy.keys import ReaderKey, hkdf, trainer_secret
from marketplace.privacy.updates import encode_update, private_train_config, update_metadata
from marketplace.rounds.chainview import chain_time
from marketplace.rounds.codec import KIND_MODEL, KIND_UPDATE, encode_params, get_params, get_spec
from marketplace.rounds.sketches import SketchOpening, make_opening, project_sketch_spec
from marketplace.storage import ContentStore, MemoryStore, cid_from_digest, digest_of, put_blob
from zk.sketch import SketchSpec, make_salt

if TYPE_CHECKING:
    from web3.types import TxReceipt

    from marketplace.nodes.attest import RoundAttester

log = logging.getLogger(__name__)

#: Reverts that mean "this round is no longer ours to commit", not a bug.
_ROUND_MOVED_ON = {
    "CommitWindowClosed",
    "RevealWindowClosed",
    "WrongRound",
    "AlreadyCommitted",
    "NotCommitted",
    "NotInRoster",
    "ProjectNotOpen",
    "AttestationClosed",
    "RoundSettledAlready",
    "AlreadyAttested",
}


@dataclass(frozen=True)
class TrainerStep:
    """What one call of :meth:`TrainerNode.step` did."""

    status: str  # committed | revealed | attested | waiting | missed | done | closed | retry
    round: int
    cid: str | None = None
    detail: str = ""


def sketch_spec_for(market: MarketClient, info: ProjectInfo) -> SketchSpec:
    """The project's sketch: the dimensions and value bits of its round verifier (read from
    the chain), or the default sketch when it has none."""
    if info.verifier == ZERO_ADDRESS:
        return project_sketch_spec(info.project_id)
    from marketplace.chain.verifier import read_verifier

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


def _require_spec(info: ProjectInfo) -> None:
    if info.model_spec_cid == ZERO32:
        raise ConfigError(
            f"project {info.project_id} was created without a model spec, so it cannot train: "
            "the owner must create a project with `ledgerlearn project create --model-spec "
            "spec.json`"
        )


def fetch_project_spec(source: ContentStore, info: ProjectInfo) -> ModelSpec:
    """The model spec whose CID digest the project committed to, fetched from ``source``."""
    _require_spec(info)
    return get_spec(source, cid_from_digest(info.model_spec_cid))


def check_project_spec(spec: ModelSpec, info: ProjectInfo, name: str = "this spec") -> ModelSpec:
    """``spec`` (e.g. a file the owner handed out) if it is the one the project committed
    to on-chain; a one-line :class:`ConfigError` naming both CIDs otherwise."""
    from marketplace.rounds.codec import spec_cid

    _require_spec(info)
    cid = spec_cid(spec)
    if digest_of(cid) != info.model_spec_cid:
        raise ConfigError(
            f"{name} has CID {cid} but project {info.project_id} committed to "
            f"{cid_from_digest(info.model_spec_cid)}: use the project's spec file"
        )
    return spec


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
        attester: RoundAttester | None = None,
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
        self._staged: dict[str, bytes] = {}  # CID -> blob, served only after its reveal
        self._committed: dict[int, str] = {}  # round -> CID this node committed to
        self.attester = attester
        self._attest_done: set[int] = set()  # rounds attested, or whose window passed

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

    def _secret(self, purpose: str, round_: int) -> bytes:
        """32 bytes only this trainer can compute (they derive from its private key), and
        the same after a restart."""
        text = f"ledgerlearn-{purpose}:{self.market.address}:{self.project_id}:{round_}"
        return hkdf(self.secret, text.encode())

    def opening(self, round_: int, update: Tensor) -> SketchOpening:
        """The sketch of ``update`` and this round's sketch salt (deterministic: a restarted
        node commits the same value; secret: derived from the trainer's key)."""
        secret = int.from_bytes(self._secret("sketch-salt", round_)[:8], "big") >> 1
        salt = make_salt(secret, self.address.lower(), round_)
        return make_opening(update, self.sketch_spec(), salt)

    def update_opening(self, round_: int, cid: str) -> Opening:
        """What this node commits to (hidden) and later reveals for ``cid``."""
        opening = self._openings.get(cid)
        sketch = ZERO32
        if opening is not None:
            sketch = opening.commitment_bytes(self.sketch_spec().value_bits)
        return Opening(self.address, digest_of(cid), sketch, self._secret("reveal-salt", round_))

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
        """Stage the update, with its sketch opening in the blob's metadata, privately;
        returns its CID. :meth:`reveal` serves it from this node's content store.
        ``opening`` defaults to the update's own (tests pass another to play a trainer
        that lies about its sketch)."""
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
        blob = encode_update(spec, inner, meta, self.secret, self.replayers())
        cid = put_blob(MemoryStore(), blob)
        self._staged[cid] = blob
        self._openings[cid] = opening
        return cid

    @property
    def reader(self) -> ReaderKey:
        """The key that opens updates sealed to this trainer (derived from its key)."""
        assert self.market.sender is not None
        return ReaderKey.from_eth_key(self.market.sender.account.key)

    def announce_reader_key(self) -> None:
        """Let co-trainers seal their updates to this node too (attested projects)."""
        self.market.announce_reader_key(self.project_id, bytes.fromhex(self.reader.public_hex))

    def replayers(self) -> list[str]:
        """Hex reader keys of the registered trainers (index order) that announced one, when
        the project is attested: they replay the round to attest it (none otherwise)."""
        if not self.market.project(self.project_id).attested:
            return []
        keys = self.market.reader_keys(self.project_id)
        order = self.market.trainer_indices(self.project_id)
        known = sorted((order[a], k.hex()) for a, k in keys.items() if a in order)
        return [k for _, k in known]

    def attest_due(self, info: ProjectInfo) -> list[TrainerStep]:
        """Replay and attest every committed round this trainer was active in whose
        attestation window is open and which no majority settled yet (attested projects
        with an attester only)."""
        if not info.attested or self.attester is None:
            return []
        steps = []
        for r in range(1, info.rounds_committed + 1):
            if r in self._attest_done:
                continue
            state = self.market.round_state(self.project_id, r)
            closed = chain_time(self.market) > state.committed_at + info.round_duration
            active = self.market.round_masks(self.project_id, r, state.roster).revealed
            me = self.index
            if closed or state.settled or not (me < len(active) and active[me]):
                self._attest_done.add(r)
                continue
            scores = self.attester.replay(r)
            if scores is None:
                steps.append(TrainerStep("retry", r, detail="cannot replay the round yet"))
                break
            done, _ = self.market.attestation(self.project_id, r, me, scores)
            if not done:
                try:
                    self.market.attest_round(self.project_id, r, scores)
                except ChainError as exc:  # a revert, or the node refusing the transaction
                    if getattr(exc, "error_name", None) not in _ROUND_MOVED_ON:
                        log.warning("trainer %d: attesting round %d failed: %s", me, r, exc)
                        steps.append(TrainerStep("retry", r, detail=f"attest failed: {exc}"))
                        break  # the next poll tries again while the window is open
            self._attest_done.add(r)
            problems = self.attester.problems.get(r) or []
            detail = "; ".join(problems) if problems else "matches the aggregator's commit"
            log.info("trainer %d attested round %d: %s", me, r, detail)
            steps.append(TrainerStep("attested", r, detail=detail))
        return steps

    def withdraw(self) -> TxReceipt:
        """Withdraw stake and reward share, claiming replaced rounds from this node's replay."""
        replayed: dict[int, RoundScores] = {}
        info = self.market.project(self.project_id)
        if self.attester is not None and info.attested:
            for r in range(1, info.rounds_committed + 1):
                if self.market.round_state(self.project_id, r).replaced:
                    scores = self.attester.replay(r)  # a node that did not attest it: now
                    if scores is not None:
                        replayed[r] = scores
        return self.market.withdraw(self.project_id, replayed=replayed)

    def commit(self, round_: int, cid: str) -> None:
        """Commit, hidden, to the update's CID digest and its sketch commitment (the
        commitment of the opening published with ``cid``; zero for a blob this node did
        not publish)."""
        opening = self.update_opening(round_, cid)
        self.market.commit_update(
            self.project_id, round_, opening.commitment(self.project_id, round_)
        )
        self._committed[round_] = cid

    def reveal(self, round_: int, cid: str | None = None) -> None:
        """Open this round's commitment on-chain, then serve the blob (the commit window
        must be closed: the contract refuses earlier reveals)."""
        cid = cid or self._committed[round_]
        self.market.reveal_updates(self.project_id, round_, [self.update_opening(round_, cid)])
        blob = self._staged.pop(cid, None)
        if blob is not None:
            put_blob(self.store, blob)

    def has_committed(self, round_: int) -> bool:
        masks = self.market.round_masks(self.project_id, round_)
        return self.index < len(masks.committed) and masks.committed[self.index]

    def _train_and_stage(self, r: int, info: ProjectInfo) -> str | TrainerStep:
        try:
            params = self.global_params(info)
        except StorageError as exc:
            log.warning("round %d: cannot fetch the global model yet: %s", r, exc)
            return TrainerStep("retry", r, detail=str(exc))
        return self.publish(r, self.train(r, params))

    def step(self) -> TrainerStep:
        """Do this round's work if it is due: train and commit in the commit window, reveal
        and serve once it is closed."""
        info = self.market.project(self.project_id)
        r = info.current_round
        if info.status != ProjectStatus.OPEN:
            return TrainerStep("closed", r)
        attested = self.attest_due(info)
        if attested:
            return attested[-1]
        if info.rounds_committed >= info.rounds:
            return TrainerStep("done", r)
        state = self.market.round_state(self.project_id, r)
        masks = self.market.round_masks(self.project_id, r, state.roster)
        me = self.index
        in_roster = state.roster == 0 or me < state.roster
        committed = me < len(masks.committed) and masks.committed[me]
        if not in_roster:
            return TrainerStep("waiting", r, detail="joined after this round's roster was fixed")
        if not committed:
            if state.commit_closed:
                return TrainerStep("missed", r, detail="the commit window is closed")
            staged = self._train_and_stage(r, info)
            if isinstance(staged, TrainerStep):
                return staged
            try:
                self.commit(r, staged)
            except TransactionReverted as exc:
                if exc.error_name in _ROUND_MOVED_ON:
                    return TrainerStep("missed", r, staged, str(exc))
                raise
            log.info("trainer %d committed round %d (hidden): %s", me, r, staged)
            return TrainerStep("committed", r, staged)
        opened = self._opened(r)
        if opened or not state.commit_closed:
            return TrainerStep("waiting", r)
        if state.reveal_closed:
            return TrainerStep("missed", r, detail="the reveal window is closed")
        cid = self._committed.get(r)
        if cid is None:  # restarted between commit and reveal: train again, same CID
            staged = self._train_and_stage(r, info)
            if isinstance(staged, TrainerStep):
                return staged
            cid = staged
        try:
            self.reveal(r, cid)
        except TransactionReverted as exc:
            if exc.error_name in _ROUND_MOVED_ON:
                return TrainerStep("missed", r, cid, str(exc))
            raise
        log.info("trainer %d revealed round %d: %s", me, r, cid)
        return TrainerStep("revealed", r, cid)

    def _opened(self, round_: int) -> bool:
        """Whether this trainer's opening for ``round_`` is on-chain (the market client's
        per-process log cache: each poll reads only new blocks, not the chain from 0)."""
        return any(
            int(log["args"]["round"]) == round_ and log["args"]["trainer"] == self.address
            for log in self.market.project_logs("UpdateRevealed", self.project_id, 0)
        )

    def run(
        self,
        poll_s: float = 0.5,
        stop: threading.Event | None = None,
        on_step: Callable[[TrainerStep], None] | None = None,
        on_poll: Callable[[], None] | None = None,
    ) -> None:
        """Loop until the project's last round is committed (or it closes).

        The node keeps serving (its gateway runs beside this loop) until then, because
        the aggregator fetches updates after they are revealed. ``on_poll`` runs before
        each step (a console tells a committed round's outcome before training the next).
        """
        last: tuple[str, int] | None = None
        while stop is None or not stop.is_set():
            if on_poll is not None:
                on_poll()
            result = self.step()
            if on_step is not None and (result.status, result.round) != last:
                on_step(result)
            last = (result.status, result.round)
            if result.status in ("done", "closed"):
                return
            time.sleep(poll_s)
