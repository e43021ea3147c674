"""Replay every committed round of a project and compare it with the chain.

The inputs an auditor trusts: the chain (revealed commitments, the round's active set and
randomness, ``RoundCommitted`` events), the updates fetched by their revealed CIDs
(verified by hash) from the trainers' announced gateways or a given store, the model spec
by its on-chain CID, and the owner's validation data (checked against the project's
validation commitment). The aggregator's round report (bound on-chain by its digest)
supplies the declared round config; the round seed comes from the chain's reveal fold;
everything else - robust filter state, hyper-parameters, the model and the contribution
scores - is recomputed by the auditor from round 1 on with
:func:`marketplace.rounds.run_round`, the same pure function the aggregator ran.

Without validation data the scores (and the loss-driven server step size) cannot be
recomputed: the replay then takes the step size from the report and marks scores as
not checked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from marketplace.audit.compare import AuditReport, RoundAudit, RoundFacts, compare_round
from marketplace.chain.market import ZERO32, MarketClient
from marketplace.errors import LedgerLearnError, StorageError
from marketplace.learning import Dataset, ModelSpec, init_params
from marketplace.nodes.chainview import (
    RoundCommit,
    UpdateCommit,
    round_commit,
    update_commits,
)
from marketplace.nodes.zkround import open_sketches
from marketplace.privacy.keys import ReaderKey
from marketplace.rounds.codec import (
    KIND_ANCHOR,
    KIND_MODEL,
    get_params,
    get_spec,
    put_round_params,
    validation_commitment,
)
from marketplace.rounds.pinning import pinned_rule_problem
from marketplace.rounds.pipeline import (
    RoundConfig,
    RoundOutcome,
    Submission,
    anchor_recipe_for,
    run_round,
)
from marketplace.rounds.provenance import commit_order
from marketplace.rounds.provenance import published as published_updates
from marketplace.rounds.report import MAX_REPORT_BYTES, RoundReport
from marketplace.rounds.seeds import round_seed
from marketplace.rounds.state import RoundState
from marketplace.rounds.validate import (
    UNAVAILABLE_KINDS,
    CheckedUpdate,
    fetch_update,
    storage_kind,
)
from marketplace.storage import ContentStore, MemoryStore, cid_from_digest, get_blob
from zk.onchain import VerifierConfig

log = logging.getLogger(__name__)

StoreResolver = Callable[[str], ContentStore | None]


@dataclass(frozen=True)
class _Fetched:
    """A round's updates as the replay obtained them."""

    subs: list[Submission]
    weights: list[float]
    commits: dict[int, UpdateCommit]
    sketches: dict[int, tuple[int, ...]]
    encrypted: int  # sealed to readers whose key the auditor lacks
    unavailable: dict[int, str]  # trainer index -> CID of an update found in no store


def _kind_of(reason: str | None) -> str | None:
    """The kind of a report's rejection reason (``"missing: ..."`` -> ``"missing"``)."""
    return None if reason is None else reason.partition(":")[0]


def model_cid(spec: ModelSpec, project_id: int, round_: int, params: Tensor) -> str:
    """CID of the global model blob an honest aggregator stores for ``round_``."""
    return put_round_params(MemoryStore(), spec, KIND_MODEL, project_id, round_, params)


def _facts(commit: RoundCommit) -> RoundFacts:
    return RoundFacts(
        commit.inlier_mask, commit.rejected_mask, commit.global_model_cid, commit.scores
    )


class _Replay:
    """State carried from one replayed round to the next."""

    def __init__(
        self,
        market: MarketClient,
        project_id: int,
        store: ContentStore,
        resolver: StoreResolver,
        validation: Dataset | None,
        start_block: int,
        reader: ReaderKey | None = None,
    ) -> None:
        self.reader = reader
        self.market = market
        self.project_id = project_id
        self.store = store
        self.resolver = resolver
        self.validation = validation
        self.start_block = start_block
        info = market.project(project_id)
        self.info = info
        self.spec = get_spec(store, cid_from_digest(info.model_spec_cid))
        self.params = init_params(self.spec)
        self.state: RoundState | None = None
        self.previous_cid: str | None = None
        self.used_published_anchor = False
        self.published: dict[int, Tensor] | None = None  # last round's, for copy checks
        self._verifier: VerifierConfig | None = None  # read once, in zk mode

    def submissions(
        self, round_: int, config: RoundConfig, report: RoundReport, roster: int
    ) -> _Fetched:
        """Fetch and check every committed update as the aggregator did, including (in zk
        mode) that each published sketch opens the trainer's on-chain commitment. Each
        update is looked for in the aggregator's store first (it keeps every blob a
        commitment refers to), then at its trainer's gateway. An update found nowhere is
        *unavailable* unless the aggregator itself rejected it as unfetchable: the replay
        cannot see it, which is no evidence against the aggregator."""
        commits = update_commits(
            self.market, self.project_id, round_, from_block=self.start_block, roster=roster
        )
        checked: dict[int, CheckedUpdate] = {}
        for i, c in commits.items():
            if i >= roster:
                continue
            checked[i] = self.fetch(c, round_)
        unavailable = {
            i: u.cid
            for i, u in checked.items()
            if u.kind in UNAVAILABLE_KINDS
            and _kind_of(report.rejected.get(i)) not in UNAVAILABLE_KINDS
        }
        sketches: dict[int, tuple[int, ...]] = {}
        if config.zk is not None and not unavailable:
            checked, openings = open_sketches(checked, commits, config.zk)
            sketches = {i: o.sketch for i, o in openings.items()}
        subs: list[Submission] = [None] * roster
        weights = [1.0] * roster
        for i, update in checked.items():
            subs[i] = update.vector if update.accepted else (update.reason or "rejected")
            weights[i] = float(update.num_samples)
        encrypted = sum(u.kind == "encrypted" for u in checked.values())
        return _Fetched(subs, weights, commits, sketches, encrypted, unavailable)

    def fetch(self, commit: UpdateCommit, round_: int) -> CheckedUpdate:
        """One update, from the aggregator's store, else from its trainer's gateway."""
        kept = fetch_update(
            self.store, commit.index, commit.cid, self.spec, self.project_id, round_, self.reader
        )
        if kept.kind not in UNAVAILABLE_KINDS:
            return kept
        try:
            source = self.resolver(commit.trainer)
        except Exception as exc:  # an unreachable trainer is a rejection, as for the node
            log.warning("no store for trainer %d: %s", commit.index, exc)
            source = None
        return fetch_update(
            source, commit.index, commit.cid, self.spec, self.project_id, round_, self.reader
        )

    def published_anchor(self, report: RoundReport) -> Tensor | None:
        """The trust anchor the report published (None when it published none or the blob
        is unavailable: the replay then runs without it and the masks are not checked)."""
        if report.anchor_cid is None:
            return None
        try:
            return get_params(self.store, self.spec, report.anchor_cid)[0]
        except LedgerLearnError as exc:
            log.warning("published anchor %s unavailable (%s)", report.anchor_cid, exc)
            return None

    def derived_seed(self, round_: int, report: RoundReport, fold: bytes) -> tuple[int, str | None]:
        """The round seed derived from the market's reveal fold (the trainers' hidden
        salts, order-independent), and a problem when the report used another seed. The
        replay uses the derived one, so a ground seed also shows up as different scores."""
        seed = round_seed(self.project_id, round_, fold)
        claimed = report.metrics.get("seed")
        problem = None
        if claimed != seed:
            problem = f"round seed {claimed} is not {seed}, derived from the reveals on-chain"
        return seed, problem

    def zk_outputs_match(self, commit: RoundCommit, sketches: dict[int, tuple[int, ...]]) -> bool:
        """Whether the proof's ``outputs`` (median distance and inlier sketch sums, which the
        contract takes as given) is what the rule gives on the published sketches of the
        trainers the round kept active (committed and not rejected). A sound proof under
        an honest key cannot carry other outputs; a forged one (whoever ran an UNSAFE
        single-party setup can forge) can, and this is where the replay catches it."""
        from marketplace.chain.verifier import committed_round_result, read_verifier
        from zk.onchain import RoundProofPayload
        from zk.witness import rule_outputs

        if self._verifier is None:
            self._verifier = read_verifier(self.market, self.info.verifier)
        verifier = self._verifier
        n = len(commit.rejected_mask)
        active = [
            None if commit.rejected_mask[i] or i not in sketches else sketches[i] for i in range(n)
        ]
        result = committed_round_result(self.market, commit.transaction)
        payload = RoundProofPayload.from_bytes(bytes(result["proof"]))
        return rule_outputs(verifier.shape, verifier.rule, active) == payload.outputs

    def report_problems(
        self, report: RoundReport, round_: int, cids: dict[int, str], commit: RoundCommit
    ) -> list[str]:
        out = []
        if report.project_id != self.project_id or report.round != round_:
            out.append(f"report is for project {report.project_id} round {report.round}")
        if report.previous_model_cid != self.previous_cid:
            out.append(
                f"report starts from model {report.previous_model_cid}, "
                f"the chain's previous model is {self.previous_cid}"
            )
        if report.update_cids != cids:
            out.append("report lists other update CIDs than the trainers committed on-chain")
        if report.global_model_cid != commit.global_model_cid:
            out.append("report's global model differs from the committed one")
        return out

    def round(self, round_: int) -> tuple[RoundAudit, bool]:
        """Audit one round; the bool says whether later rounds can still be replayed."""
        chain_round = self.market.round_state(self.project_id, round_)  # read once
        commit = round_commit(
            self.market, self.project_id, round_, chain_round.roster, from_block=self.start_block
        )
        if commit is None:
            return RoundAudit(round_, {}, ["no RoundCommitted event on-chain"]), False
        if commit.report_cid is None:
            return RoundAudit(round_, {}, ["no report CID committed: cannot replay"]), False
        try:
            data = get_blob(self.store, commit.report_cid, MAX_REPORT_BYTES)
        except StorageError as exc:
            if storage_kind(exc) in UNAVAILABLE_KINDS:  # gone, not wrong
                return RoundAudit(round_, {}, unavailable=[commit.report_cid]), False
            return RoundAudit(round_, {}, [f"report {commit.report_cid}: {exc}"]), False
        try:
            report = RoundReport.from_json(data)
        except StorageError as exc:
            return RoundAudit(round_, {}, [f"report {commit.report_cid}: {exc}"]), False
        config = report.config
        state = self.state or RoundState.initial(config.hyper)
        if self.validation is None:
            state = RoundState(report.hyper_used, state.rule_state)
        fetched = self.submissions(round_, config, report, chain_round.roster)
        subs, weights, commits, sketches = (
            fetched.subs,
            fetched.weights,
            fetched.commits,
            fetched.sketches,
        )
        n = len(subs)
        cids = {i: c.cid for i, c in commits.items()}
        if fetched.encrypted or fetched.unavailable:
            # updates the replay cannot see (sealed to readers whose key the auditor
            # lacks, or gone from every store): it checks what is public (the report's
            # CIDs) and stops here; neither is a mismatch
            extra = self.report_problems(report, round_, cids, commit)
            checks = dict.fromkeys(("mask", "rejected", "model", "scores"), None)
            return RoundAudit(
                round_,
                {**checks, "report": not extra},
                extra,
                fetched.encrypted,
                sorted(fetched.unavailable.values()),
            ), False
        seed, seed_problem = self.derived_seed(round_, report, chain_round.reveal_fold)
        published = self.published_anchor(report) if self.validation is None else None
        self.used_published_anchor |= published is not None
        outcome = run_round(
            self.params,
            subs,
            weights,
            config,
            state,
            spec=self.spec,
            validation=self.validation,
            seed=seed,
            anchor=published,
            commit_order=commit_order(commits.values(), n),
            public_updates=self.published,
        )
        self.published = published_updates(subs)
        replayed = RoundFacts(
            outcome.inlier_mask,
            outcome.rejected_mask,
            model_cid(self.spec, self.project_id, round_, outcome.new_global_params),
            outcome.scores if self.validation is not None else None,
        )
        committed = _facts(commit)
        if self.validation is None:
            committed = RoundFacts(
                committed.inlier_mask, committed.rejected_mask, committed.global_model_cid, None
            )
        audit = compare_round(round_, committed, replayed)
        uses_anchor = anchor_recipe_for(config, self.spec) is not None
        if self.validation is None and uses_anchor and published is None:
            # the rule's trust anchor is trained on the validation data: without them the
            # replay skips that stage, so its mask (and the model built on it) can differ
            # from an honest commitment; neither is a finding
            audit = RoundAudit(
                round_,
                {**audit.checks, "mask": None, "model": None},
                [p for p in audit.problems if not p.startswith(("inlier mask", "global model"))],
            )
        extra = self.report_problems(report, round_, cids, commit)
        pin_problem = pinned_rule_problem(self.spec, config)
        audit = RoundAudit(round_, {**audit.checks, "rule": pin_problem is None}, audit.problems)
        if pin_problem:
            extra.append(pin_problem)
        if self.validation is not None and outcome.anchor is not None:
            ours = put_round_params(
                MemoryStore(), self.spec, KIND_ANCHOR, self.project_id, round_, outcome.anchor
            )
            if report.anchor_cid is not None and report.anchor_cid != ours:
                extra.append(
                    f"published trust anchor {report.anchor_cid} is not {ours}, the one the "
                    "validation data give"
                )
        if seed_problem:
            extra.append(seed_problem)
        if config.zk is not None:
            matches = self.zk_outputs_match(commit, sketches)
            audit = RoundAudit(round_, {**audit.checks, "zk_outputs": matches}, audit.problems)
            if not matches:
                extra.append("the proof's outputs digest is not the rule's on the sketches")
        self.advance(outcome, report, commit)
        if extra:
            audit = RoundAudit(round_, {**audit.checks, "report": False}, audit.problems + extra)
        else:
            audit = RoundAudit(round_, {**audit.checks, "report": True}, audit.problems)
        return audit, True

    def advance(self, outcome: RoundOutcome, report: RoundReport, commit: RoundCommit) -> None:
        """Carry state to the next round: trainers train from the *committed* model, so
        the replay does too when that blob exists; otherwise from the replayed model."""
        following = outcome.next_state
        if self.validation is None:
            following = RoundState(report.hyper_next, following.rule_state)
        self.state = following
        self.params = outcome.new_global_params
        try:
            params, meta = get_params(self.store, self.spec, commit.global_model_cid)
            if meta.get("kind") == KIND_MODEL:
                self.params = params
        except LedgerLearnError as exc:
            log.warning("committed model %s unavailable (%s)", commit.global_model_cid, exc)
        self.previous_cid = commit.global_model_cid


def audit_project(
    market: MarketClient,
    project_id: int,
    store: ContentStore,
    resolver: StoreResolver,
    validation: Dataset | None,
    *,
    start_block: int = 0,
    reader: ReaderKey | None = None,
) -> AuditReport:
    """Replay every committed round of ``project_id`` and compare (module docstring).

    ``store`` holds the aggregator's blobs (model spec, reports, models: its gateway or a
    copy); ``resolver`` maps a trainer address to the store its updates come from.
    Round seeds are derived from the on-chain reveal fold, never taken from a report.
    ``reader`` opens updates sealed to the project's readers; without it a round with
    sealed updates is reported as unverifiable (``encrypted``), not as a mismatch.
    """
    replay = _Replay(market, project_id, store, resolver, validation, start_block, reader)
    notes: list[str] = []
    committed_validation = replay.info.validation_commitment
    if validation is None:
        notes.append("no validation data: scores and step sizes are taken as reported")
    elif committed_validation != ZERO32:
        if validation_commitment(validation) != committed_validation:
            notes.append(
                "the validation data does not match the project's validation commitment: "
                "pass the owner's validation file"
            )
    rounds: list[RoundAudit] = []
    for r in range(1, replay.info.rounds_committed + 1):
        audit, go_on = replay.round(r)
        rounds.append(audit)
        if not go_on:
            if audit.unavailable:
                notes.append(
                    f"cannot verify: {len(audit.unavailable)} blobs unavailable (in neither "
                    "the aggregator's store nor the trainers' gateways): "
                    + ", ".join(audit.unavailable)
                )
            if audit.encrypted:
                notes.append(
                    f"cannot verify {audit.encrypted} updates: encrypted (sealed to the "
                    "project's readers; pass --reader-key to replay them)"
                )
            notes.append(f"replay stopped at round {r}")
            break
    if replay.used_published_anchor:
        notes.append(
            "no validation data: masks are checked against the trust anchor the "
            "aggregator published, which only the validation data can check"
        )
    return AuditReport(project_id, rounds, notes)
