"""The aggregator node: collect committed updates, filter, aggregate, commit the round.

Per round (docs/architecture.md, round step 4): wait until the round's reveal window is
closed (every roster trainer committed and every committer opened, or the deadlines
passed: the contract decides); read the active trainers' ``UpdateRevealed`` events (the
contract's revealed mask: the aggregator does not choose who is in the round); fetch
each update by CID from the gateway its trainer announced on-chain; validate;
run the pure round pipeline (:func:`marketplace.rounds.run_round`: robust filter,
aggregate, evaluate on the owner's validation data, hyper-parameters, scores); store
the new global model, the rule state and the round report in the aggregator's own
content store (served by its gateway to trainers and auditors); commit everything in
one ``commitRound`` transaction.

When the project names a round verifier (``ProjectInfo.verifier``), the round is
verifiable and the node proves it (:mod:`marketplace.rounds.zkround`): each update's
sketch opening is checked against the trainer's on-chain commitment and the update
(failures are rejected), the provable sketch rule is the filter, and the Groth16 proof
rides in the same ``commitRound``. Without a verifier nothing changes.

Restartable by construction: the node holds no state of its own between rounds. Round
``r`` is a function of the chain (commitments, the previous ``RoundCommitted`` event and
its report digest) and of content-addressed blobs, so a node killed at any point and
started again computes byte-identical blobs and commits the same result.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor

from marketplace.chain.market import (
    ZERO32,
    ZERO_ADDRESS,
    MarketClient,
    ProjectInfo,
    ProjectStatus,
    RoundInfo,
)
from marketplace.errors import ConfigError, StorageError, TransactionReverted
from marketplace.learning import Dataset, ModelSpec, init_params
from marketplace.privacy.keys import ReaderKey
from marketplace.rounds.chainview import (
    UpdateCommit,
    chain_time,
    round_commit,
    update_commits,
)
from marketplace.rounds.codec import (
    KIND_ANCHOR,
    KIND_MODEL,
    get_params,
    get_spec,
    put_round_params,
    put_spec,
)
from marketplace.rounds.pinning import check_pinned
from marketplace.rounds.pipeline import (
    RoundConfig,
    RoundOutcome,
    ScoreFn,
    Submission,
    run_round,
)
from marketplace.rounds.provenance import commit_order, published
from marketplace.rounds.report import RoundReport, build_report, get_report, put_report
from marketplace.rounds.seeds import round_seed
from marketplace.rounds.state import RoundState, get_rule_state, put_rule_state
from marketplace.rounds.validate import CheckedUpdate, fetch_update
from marketplace.storage import ContentStore, cid_from_digest, digest_of
from marketplace.storage.gateway import open_gateway
from marketplace.storage.keeping import KeepingReader

if TYPE_CHECKING:
    from marketplace.rounds.sketches import SketchOpening
    from marketplace.rounds.zkround import ZkProject
    from zk.onchain import RoundProver

log = logging.getLogger(__name__)

StoreResolver = Callable[[str], ContentStore | None]
"""Trainer address -> the store its updates are fetched from (None: no endpoint)."""

FETCH_WORKERS = 8


@dataclass(frozen=True)
class PreparedRound:
    """A computed, stored, not yet committed round."""

    round: int
    trainer_count: int
    outcome: RoundOutcome
    report: RoundReport
    model_cid: str
    report_cid: str
    checked: dict[int, CheckedUpdate] = field(default_factory=dict)
    proof: bytes = b""
    prove_seconds: float | None = None


@dataclass(frozen=True)
class RoundSummary:
    """One committed round, for progress lines and simulations."""

    round: int
    model_cid: str
    report_cid: str
    inliers: list[int]
    rejected: dict[int, str]
    excluded: dict[int, str]
    scores: list[int]
    metrics: dict[str, float | int | None]
    gas_used: int
    block: int
    seconds: float
    prove_seconds: float | None = None
    score_notes: dict[int, str] = field(default_factory=dict)  # why an inlier scored 0


class GatewayResolver:
    """Resolves trainers to bounded readers of their announced endpoints; an endpoint that
    :func:`~marketplace.untrusted.endpoints.check_endpoint` refuses (private addresses
    unless ``allow_private``, by default only on a development chain) rejects the update
    with the reason."""

    def __init__(
        self,
        market: MarketClient,
        project_id: int,
        timeout: float = 10.0,
        allow_private: bool | None = None,
    ) -> None:
        self.market = market
        self.project_id = project_id
        self.timeout = timeout
        self.allow_private = market.chain.development if allow_private is None else allow_private
        self._readers: dict[str, ContentStore] = {}
        self._endpoints: dict[str, str] = {}

    def refresh(self) -> None:
        self._endpoints = self.market.endpoints(self.project_id)

    def __call__(self, trainer: str) -> ContentStore | None:
        url = self._endpoints.get(trainer)
        if url is None:
            self.refresh()
            url = self._endpoints.get(trainer)
        if url is None:
            return None
        reader = self._readers.get(url)
        if reader is None:
            what = f"trainer {trainer}'s announced gateway"
            reader = open_gateway(url, self.timeout, self.allow_private, what)
            self._readers[url] = reader
        return reader

    def close(self) -> None:
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()


class AggregatorNode:
    """The aggregator of one project. ``market`` signs as the project's aggregator."""

    def __init__(
        self,
        market: MarketClient,
        project_id: int,
        store: ContentStore,
        validation: Dataset | None,
        config: RoundConfig | None = None,
        *,
        resolver: StoreResolver | None = None,
        score_fn: ScoreFn | None = None,
        min_trainers: int = 1,
        start_block: int = 0,
        prover: RoundProver | None = None,
        zk_keys_dir: Path | None = None,
    ) -> None:
        if market.sender is None:
            raise ConfigError("the aggregator node needs a signing account: pass --key")
        self.market = market
        self.project_id = project_id
        self.store = store
        self.validation = validation
        self.config = config or RoundConfig()
        self.resolver = resolver or GatewayResolver(market, project_id)
        self.score_fn = score_fn
        self.min_trainers = max(1, min_trainers)
        self.start_block = start_block
        self._spec: ModelSpec | None = None
        self._prover = prover
        self.zk_keys_dir = zk_keys_dir
        self._zk: ZkProject | None = None
        # (round, block) of the last round this node saw committed: only a hint that
        # narrows event scans (eth-tester scans every block in range); a restarted node
        # starts from ``start_block`` (the market's deployment block) and finds the same.
        self._last_commit: tuple[int, int] | None = None
        # (round, its published updates): the next round's copy-check input, kept so a
        # running node does not fetch them twice; a restarted node fetches them again
        self._published: tuple[int, dict[int, Tensor]] | None = None
        # the key sealed updates are opened with (marketplace.privacy): derived from the
        # aggregator's signing key, as `aggregator spec` declared it
        self.reader = ReaderKey.from_eth_key(market.sender.account.key)

    def _scan_from(self, committed_round: int) -> int:
        if self._last_commit is not None and self._last_commit[0] == committed_round:
            return self._last_commit[1]
        return self.start_block

    # ------------------------------------------------------------ setup

    def check_role(self, info: ProjectInfo | None = None) -> None:
        info = info or self.market.project(self.project_id)
        assert self.market.sender is not None
        if info.aggregator.lower() != self.market.sender.address.lower():
            raise ConfigError(
                f"project {self.project_id} names aggregator {info.aggregator}, not "
                f"{self.market.sender.address}: sign with the aggregator's key"
            )

    def _require_spec(self, info: ProjectInfo) -> None:
        if info.model_spec_cid == ZERO32:
            raise ConfigError(
                f"project {self.project_id} was created without a model spec, so it cannot "
                "train: create a new project with `ledgerlearn project create --model-spec "
                "spec.json` (from `ledgerlearn aggregator spec`)"
            )

    def publish_spec(self, spec: ModelSpec) -> str:
        """Serve the project's model spec; it must be the one whose digest is on-chain."""
        info = self.market.project(self.project_id)
        self._require_spec(info)
        cid = put_spec(self.store, spec)
        if info.model_spec_cid != digest_of(cid):
            raise ConfigError(
                f"this model spec has CID {cid} but project {self.project_id} committed to "
                f"{cid_from_digest(info.model_spec_cid)}: pass the owner's spec file"
            )
        self._spec = spec
        return cid

    def spec(self, info: ProjectInfo | None = None) -> ModelSpec:
        if self._spec is None:
            info = info or self.market.project(self.project_id)
            self._require_spec(info)
            cid = cid_from_digest(info.model_spec_cid)
            try:
                self._spec = get_spec(self.store, cid)
            except StorageError as exc:
                raise ConfigError(
                    f"the model spec {cid} is not in the aggregator's store: pass "
                    "--model-spec with the owner's spec file"
                ) from exc
        return self._spec

    def check_validation(self, data: Dataset, name: str = "the validation data") -> None:
        """Refuse validation data other than the set the owner committed to on-chain
        (``validationCommitment``), before the first round: rounds evaluated on other
        data would score trainers on a set nobody agreed to, and an audit with the
        committed file would not replay them. A project without a commitment is accepted
        (nothing to check against) with a warning."""
        from marketplace.rounds.codec import validation_commitment

        info = self.market.project(self.project_id)
        if info.validation_commitment == ZERO32:
            log.warning(
                "project %d committed to no validation set: %s cannot be checked",
                self.project_id,
                name,
            )
            return
        if validation_commitment(data) != info.validation_commitment:
            raise ConfigError(
                f"{name} is not the validation set project {self.project_id} committed to "
                f"(0x{info.validation_commitment.hex()[:16]}...): pass the file the owner gave "
                "`project create --validation-data`"
            )

    def zk(self, info: ProjectInfo) -> ZkProject | None:
        """The project's verifier and prover (None without a verifier); loaded once."""
        if info.verifier == ZERO_ADDRESS:
            return None
        if self._zk is None:
            from marketplace.rounds.zkround import load_zk_project

            self._zk = load_zk_project(self.market, info, self._prover, self.zk_keys_dir)
            self._prover = self._zk.prover
        return self._zk

    def check_pinned(self, spec: ModelSpec, config: RoundConfig | None = None) -> None:
        """Refuse a rule other than the one the project's spec pins (one-line error)."""
        check_pinned(spec, config or self.config)

    def round_config(self, info: ProjectInfo) -> RoundConfig:
        """The node's config, with the provable sketch rule when the project has a verifier."""
        zk = self.zk(info)
        if zk is None:
            return self.config
        return self.config.model_copy(update={"zk": zk.filter})

    # ------------------------------------------------------------ one round

    def round_ready(self, info: ProjectInfo, state: RoundInfo | None = None) -> bool:
        """The contract says the reveal window is closed (every roster trainer committed
        and opened, or the deadlines passed), with at least ``min_trainers`` in the
        roster unless the deadlines passed. ``state``: the round's, when already read."""
        state = state or self.market.round_state(self.project_id, info.current_round)
        if not state.reveal_closed:
            return False
        deadline = info.round_opened_at + 2 * info.round_duration
        return state.roster >= self.min_trainers or self.market.chain.now() > deadline

    def previous(self, round_: int, info: ProjectInfo) -> tuple[Tensor, RoundState, str | None]:
        """Global params, carried state and model CID that round ``round_`` starts from."""
        spec = self.spec(info)
        if round_ == 1:
            return init_params(spec), RoundState.initial(self.config.hyper), None
        commit = round_commit(  # masks unused: any trainer count saves a roundState read
            self.market,
            self.project_id,
            round_ - 1,
            info.trainer_count,
            from_block=self._scan_from(round_ - 1),
        )
        if commit is None or commit.report_cid is None:
            raise StorageError(
                f"round {round_ - 1} of project {self.project_id} has no report on-chain: "
                "it was not committed by a LedgerLearn aggregator"
            )
        report = get_report(self.store, commit.report_cid)
        if report.config != self.round_config(info):
            log.warning(
                "round config differs from round %d's report (%s): using the new one",
                round_ - 1,
                report.config.model_dump(),
            )
        params, meta = get_params(self.store, spec, commit.global_model_cid)
        if meta.get("kind") != KIND_MODEL:
            raise StorageError(f"{commit.global_model_cid} is not a global model")
        state = RoundState(report.hyper_next, get_rule_state(self.store, report.rule_state_cid))
        return params, state, commit.global_model_cid

    def collect(
        self, round_: int, commits: dict[int, UpdateCommit], spec: ModelSpec
    ) -> dict[int, CheckedUpdate]:
        """Fetch and validate every committed update (in parallel; order-independent)."""

        def one(c: UpdateCommit) -> CheckedUpdate:
            try:
                store = self.resolver(c.trainer)
            except Exception as exc:  # resolving reads the chain; never crash the round
                log.warning("no store for trainer %d: %s", c.index, exc)
                store = None
            if store is not None:  # keep every block read: audits outlive the trainers
                store = KeepingReader(store, self.store)
            return fetch_update(store, c.index, c.cid, spec, self.project_id, round_, self.reader)

        if isinstance(self.resolver, GatewayResolver):
            self.resolver.refresh()
        items = list(commits.values())
        if len(items) <= 1:
            return {c.index: one(c) for c in items}
        with ThreadPoolExecutor(max_workers=min(FETCH_WORKERS, len(items))) as pool:
            return {c.index: r for c, r in zip(items, pool.map(one, items), strict=True)}

    def published_updates(
        self, round_: int, info: ProjectInfo, spec: ModelSpec
    ) -> dict[int, Tensor] | None:
        """The updates round ``round_ - 1`` published (None in round 1): what a trainer
        could read, and copy, before committing in round ``round_``."""
        if round_ <= 1:
            return None
        if self._published is not None and self._published[0] == round_ - 1:
            return self._published[1]
        commits = update_commits(
            self.market, self.project_id, round_ - 1, from_block=self.start_block
        )
        checked = self.collect(round_ - 1, commits, spec)
        subs: list[Submission] = [None] * info.trainer_count
        for i, c in checked.items():
            if i < info.trainer_count and c.accepted:
                subs[i] = c.vector
        return published(subs)

    def compute(
        self,
        global_params: Tensor,
        submissions: list[Submission],
        weights: list[float],
        config: RoundConfig,
        state: RoundState,
        **inputs: Any,
    ) -> RoundOutcome:
        """The round's outcome: the pure pipeline, nothing else for an honest node (the
        seam where :mod:`marketplace.nodes.cheating` plays a dishonest aggregator)."""
        return run_round(global_params, submissions, weights, config, state, **inputs)

    def prepare(
        self, round_: int, info: ProjectInfo | None = None, chain_round: RoundInfo | None = None
    ) -> PreparedRound:
        """Compute round ``round_`` and store its model, state and report (no tx);
        ``chain_round``: the round's on-chain state when the caller has read it (one
        ``roundState`` read per round)."""
        info = info or self.market.project(self.project_id)
        spec = self.spec(info)
        chain_round = chain_round or self.market.round_state(self.project_id, round_)
        n = chain_round.roster
        global_params, state, previous_cid = self.previous(round_, info)
        # one read of the round's reveal (and commit) logs: the zk prover also needs the
        # excluded openings, whose sketches the verifier folded
        folded = update_commits(
            self.market,
            self.project_id,
            round_,
            from_block=self._scan_from(round_ - 1),
            active_only=False,
            roster=n,
        )
        active = self.market.round_masks(self.project_id, round_, n).revealed if folded else []
        commits = {i: c for i, c in folded.items() if i < len(active) and active[i]}
        checked = self.collect(round_, commits, spec)
        config = self.round_config(info)
        self.check_pinned(spec, config)
        zk = self.zk(info)
        openings: dict[int, SketchOpening] = {}
        if zk is not None:
            from marketplace.rounds.zkround import open_sketches

            checked, openings = open_sketches(checked, commits, zk.filter)
        submissions: list[Submission] = [None] * n
        weights = [1.0] * n
        for i, c in checked.items():
            if i >= n:
                continue
            submissions[i] = c.vector if c.accepted else (c.reason or "rejected")
            weights[i] = float(c.num_samples)
        outcome = self.compute(
            global_params,
            submissions,
            weights,
            config,
            state,
            spec=spec,
            validation=self.validation,
            score_fn=self.score_fn,
            seed=round_seed(self.project_id, round_, chain_round.reveal_fold),
            sketches={i: o.sketch for i, o in openings.items()},
            commit_order=commit_order(commits.values(), n),
            public_updates=self.published_updates(round_, info, spec),
        )
        self._published = (round_, published(submissions))
        model_cid = put_round_params(
            self.store, spec, KIND_MODEL, self.project_id, round_, outcome.new_global_params
        )
        state_cid = put_rule_state(self.store, outcome.next_state.rule_state)
        anchor_cid = None
        if outcome.anchor is not None:
            anchor_cid = put_round_params(
                self.store, spec, KIND_ANCHOR, self.project_id, round_, outcome.anchor
            )
        report = build_report(
            project_id=self.project_id,
            round_=round_,
            config=config,
            outcome=outcome,
            previous_model_cid=previous_cid,
            global_model_cid=model_cid,
            update_cids={i: c.cid for i, c in commits.items()},
            rule_state_cid=state_cid,
            anchor_cid=anchor_cid,
        )
        report_cid = put_report(self.store, report)
        if zk is None:
            return PreparedRound(round_, n, outcome, report, model_cid, report_cid, checked)
        from marketplace.chain.verifier import arrival_order
        from marketplace.rounds.zkround import prove_outcome

        proved = prove_outcome(
            zk,
            project_id=self.project_id,
            round_=round_,
            trainer_count=n,
            outcome=outcome,
            openings=openings,
            commits=commits,
            folded=folded,
            arrival=arrival_order(
                self.market,
                zk.verifier.address,
                self.project_id,
                round_,
                from_block=self._scan_from(round_ - 1),
            ),
        )
        log.info("round %d proved in %.2f s", round_, proved.seconds)
        return PreparedRound(
            round_,
            n,
            outcome,
            report,
            model_cid,
            report_cid,
            checked,
            proved.proof,
            proved.seconds,
        )

    def commit(self, prepared: PreparedRound) -> tuple[int, int]:
        """Commit a prepared round in one transaction; returns (gas used, block)."""
        receipt = self.market.commit_round(
            self.project_id,
            prepared.round,
            global_model_cid=digest_of(prepared.model_cid),
            inlier_mask=prepared.outcome.inlier_mask,
            scores=prepared.outcome.scores,
            rejected_mask=prepared.outcome.rejected_mask,
            report_cid=digest_of(prepared.report_cid),
            proof=prepared.proof,
            trainer_count=prepared.trainer_count,
        )
        block = int(receipt["blockNumber"])
        self._last_commit = (prepared.round, block)
        return int(receipt["gasUsed"]), block

    def _attesting(self, info: ProjectInfo) -> bool:
        """Whether the trainers may still be replaying the last round (attested project,
        not settled, window open): they fetch its report and model from this node's
        gateway, so the node keeps serving until then."""
        if not info.attested or info.rounds_committed == 0:
            return False
        last = self.market.round_state(self.project_id, info.rounds_committed)
        return (
            not last.settled and chain_time(self.market) <= last.committed_at + info.round_duration
        )

    def step(self) -> RoundSummary | str:
        """Aggregate and commit the current round if it is ready; else a status word
        (``waiting``, ``done``, ``closed``)."""
        info = self.market.project(self.project_id)
        if info.status != ProjectStatus.OPEN:
            return "closed"
        if info.rounds_committed >= info.rounds:
            return "waiting" if self._attesting(info) else "done"
        chain_round = self.market.round_state(self.project_id, info.current_round)
        if not self.round_ready(info, chain_round):
            return "waiting"
        start = time.perf_counter()
        prepared = self.prepare(info.current_round, info, chain_round)
        gas, block = self.commit(prepared)
        o = prepared.outcome
        summary = RoundSummary(
            round=prepared.round,
            model_cid=prepared.model_cid,
            report_cid=prepared.report_cid,
            inliers=o.inliers,
            rejected=o.rejections,
            excluded=o.exclusions,
            scores=o.scores,
            metrics=dict(o.metrics),
            gas_used=gas,
            block=block,
            seconds=time.perf_counter() - start,
            prove_seconds=prepared.prove_seconds,
            score_notes=dict(o.score_notes),
        )
        log.info("round %d committed: %d inliers", prepared.round, len(o.inliers))
        return summary

    def run(
        self,
        poll_s: float = 0.5,
        stop: threading.Event | None = None,
        on_round: Callable[[RoundSummary], None] | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> None:
        """Loop until every round is committed (or the project closes); ``on_wait`` is
        called at each poll while the round is not ready (a console says what it waits
        for instead of staying silent)."""
        self.check_role()
        while stop is None or not stop.is_set():
            try:
                result = self.step()
            except TransactionReverted as exc:
                if exc.error_name == "AggregationWindowClosed":
                    raise ConfigError(
                        f"project {self.project_id} missed its aggregation deadline; it can "
                        "only be finalized now (`ledgerlearn project finalize`)"
                    ) from exc
                raise
            if isinstance(result, RoundSummary):
                if on_round is not None:
                    on_round(result)
                continue
            if result in ("done", "closed"):
                return
            if on_wait is not None:
                on_wait()
            time.sleep(poll_s)


__all__ = [
    "AggregatorNode",
    "GatewayResolver",
    "PreparedRound",
    "RoundSummary",
    "StoreResolver",
]
