"""Typed client of ``ContributionMarket``: the only Python that encodes its calls.

Reads return dataclasses; writes go through :class:`TxSender` and return receipts.
Masks are Python ``list[bool]`` over trainer indices here and bitmap words on-chain.

A round is commit-then-reveal (the contract's header says why): a trainer first commits
:func:`update_commitment` of its update's CID digest, sketch commitment and a secret salt,
and only once the commit window is closed reveals the three (:class:`Opening`); the
round's roster, phases and randomness are read with :meth:`MarketClient.round_state`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3.types import TxReceipt

from marketplace.chain.client import ContractClient
from marketplace.chain.constants import ZERO32, ZERO_ADDRESS
from marketplace.chain.eventlog import project_logs as cached_project_logs
from marketplace.chain.merkle import ScoreTree

#: Gas for any attestRound: the settling vote's ~117k plus headroom (see attest_round).
ATTEST_GAS_FLOOR = 150_000


class ProjectStatus(IntEnum):
    NONE = 0
    OPEN = 1
    FINALIZED = 2
    CANCELLED = 3
    DISPUTED = 4


@dataclass(frozen=True)
class ProjectInfo:
    project_id: int
    owner: str
    aggregator: str
    verifier: str
    rounds: int
    round_duration: int
    rounds_committed: int
    trainer_count: int
    status: ProjectStatus
    min_stake: int
    reward: int
    reward_paid: int
    total_score: int
    round_opened_at: int
    stake_held: int
    model_spec_cid: bytes
    validation_commitment: bytes
    global_model_cid: bytes
    max_trainers: int = 4096
    bond_required: int = 0
    bond_posted: int = 0
    disputable_until: int = 0
    finalized_at: int = 0
    attested: bool = False
    """A round pays only the scores a stake-majority of its active trainers attest."""
    bond_slashed: bool = False

    @property
    def current_round(self) -> int:
        """The round open for commitments (1-based); rounds + 1 once all are done."""
        return self.rounds_committed + 1

    @property
    def bond_share(self) -> int:
        """What ``withdraw`` pays each trainer of the aggregator's bond: an equal share once
        it was slashed (a replaced round) or the project disputed, else nothing."""
        paid = self.bond_slashed or self.status == ProjectStatus.DISPUTED
        return self.bond_posted // self.trainer_count if paid and self.trainer_count else 0


@dataclass(frozen=True)
class TrainerInfo:
    index: int
    address: str
    stake: int
    score: int
    joined_round: int
    withdrawn: bool


def mask_to_words(mask: list[bool], n: int) -> list[int]:
    """Bitmap words (bit i of word i // 256) of a boolean mask over ``n`` trainers."""
    words = [0] * ((n + 255) // 256)
    for i, bit in enumerate(mask):
        if bit:
            words[i // 256] |= 1 << (i % 256)
    return words


def words_to_mask(words: list[int], n: int) -> list[bool]:
    """The boolean mask over ``n`` trainers of bitmap ``words`` (missing words are 0)."""
    return [bool(i // 256 < len(words) and words[i // 256] >> (i % 256) & 1) for i in range(n)]


@dataclass(frozen=True)
class Opening:
    """What a trainer commits to, hidden, and later reveals: its update's CID digest, its
    sketch commitment and a 32-byte secret salt (which makes the commitment hiding)."""

    trainer: str
    cid_digest: bytes
    sketch_commitment: bytes
    salt: bytes

    def commitment(self, project_id: int, round_: int) -> bytes:
        return update_commitment(
            self.cid_digest, self.sketch_commitment, self.salt, self.trainer, project_id, round_
        )

    def as_tuple(self) -> tuple[str, bytes, bytes, bytes]:
        return (self.trainer, self.cid_digest, self.sketch_commitment, self.salt)


def update_commitment(
    cid_digest: bytes, sketch: bytes, salt: bytes, trainer: str, project_id: int, round_: int
) -> bytes:
    """``keccak256(abi.encode(cidDigest, sketchCommitment, salt, trainer, projectId,
    round))``: the contract's ``updateCommitment``, computed locally."""
    encoded = abi_encode(
        ["bytes32", "bytes32", "bytes32", "address", "uint256", "uint256"],
        [cid_digest, sketch, salt, trainer, project_id, round_],
    )
    return bytes(keccak(encoded))


@dataclass(frozen=True)
class RoundInfo:
    """One round's on-chain state (``roundState``)."""

    round: int
    reveal_fold: bytes
    roster: int
    commit_count: int
    opened_count: int
    revealed_count: int
    committed_at: int
    has_rejections: bool
    scores_root: bytes
    commit_closed: bool
    reveal_closed: bool
    active_stake: int = 0
    scores_total: int = 0
    settled: bool = False
    """Attested project: a stake-majority attested ``(scores_root, scores_total)``."""
    replaced: bool = False
    """... and it replaced the aggregator's scores."""


@dataclass(frozen=True)
class ScoreClaim:
    """A trainer's score in one round and the Merkle proof of its leaf."""

    round: int
    index: int
    score: int
    proof: list[bytes]

    def as_tuple(self) -> tuple[int, int, int, list[bytes]]:
        return (self.round, self.index, self.score, self.proof)


@dataclass(frozen=True)
class RoundScores:
    """A round's scores as leaves of its scores tree: the inliers in index order and one
    score each (what ``commitRound`` folds, and what an attesting trainer's replay gives)."""

    inliers: list[int]
    scores: list[int]

    @property
    def root(self) -> bytes:
        return ScoreTree.of_scores(self.inliers, self.scores).root

    @property
    def total(self) -> int:
        return sum(self.scores)


@dataclass(frozen=True)
class RoundMasks:
    """Masks of a round over its roster: who committed, who is active (opened a matching
    commitment in time, first committer of its CID), who was rejected."""

    committed: list[bool]
    revealed: list[bool]
    rejected: list[bool]


def update_typed_data(
    chain_id: int, market: str, project_id: int, round_: int, commitment: bytes
) -> dict[str, Any]:
    """The EIP-712 message a trainer signs to let the aggregator batch its commitment."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "UpdateCommitment": [
                {"name": "projectId", "type": "uint256"},
                {"name": "round", "type": "uint256"},
                {"name": "commitment", "type": "bytes32"},
            ],
        },
        "primaryType": "UpdateCommitment",
        "domain": {
            "name": "LedgerLearn ContributionMarket",
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": market,
        },
        "message": {
            "projectId": project_id,
            "round": round_,
            "commitment": commitment,
        },
    }


@dataclass(frozen=True)
class SignedUpdate:
    trainer: str
    commitment: bytes
    signature: bytes

    def as_tuple(self) -> tuple[str, bytes, bytes]:
        return (self.trainer, self.commitment, self.signature)


class MarketClient(ContractClient):
    """Calls ``ContributionMarket`` at ``address`` on ``chain`` as ``account``."""

    CONTRACT = "ContributionMarket"

    def project_count(self) -> int:
        return int(self.contract.functions.projectCount().call())

    def project(self, project_id: int) -> ProjectInfo:
        p = self._call(self.contract.functions.getProject(project_id), f"project {project_id}")
        return ProjectInfo(
            project_id=project_id,
            owner=p[0],
            round_duration=p[1],
            rounds=p[2],
            aggregator=p[3],
            rounds_committed=p[4],
            trainer_count=p[5],
            status=ProjectStatus(p[6]),
            verifier=p[7],
            min_stake=p[8],
            reward=p[9],
            reward_paid=p[10],
            total_score=p[11],
            round_opened_at=p[12],
            stake_held=p[15],
            model_spec_cid=bytes(p[17]),
            validation_commitment=bytes(p[18]),
            global_model_cid=bytes(p[19]),
            max_trainers=int(p[20]),
            bond_required=int(p[21]),
            bond_posted=int(p[22]),
            disputable_until=int(p[23]),
            finalized_at=int(p[24]),
            attested=bool(p[25]),
            bond_slashed=bool(p[26]),
        )

    def trainer(self, project_id: int, index: int) -> TrainerInfo:
        t = self._call(self.contract.functions.trainerAt(project_id, index), "trainer")
        return TrainerInfo(index, t[0], t[1], t[2], t[3], t[4] == 2)

    def trainers(self, project_id: int) -> list[TrainerInfo]:
        count = self.project(project_id).trainer_count
        return [self.trainer(project_id, i) for i in range(count)]

    def trainer_index(self, project_id: int, account: str) -> int | None:
        ip1 = int(self.contract.functions.trainerIndexPlusOne(project_id, account).call())
        return ip1 - 1 if ip1 else None

    def round_state(self, project_id: int, round_: int) -> RoundInfo:
        """A round's roster, counters, randomness (``reveal_fold``) and phase."""
        state, commit_closed, reveal_closed = self._call(
            self.contract.functions.roundState(project_id, round_), "round state"
        )
        return RoundInfo(
            round_,
            bytes(state[0]),
            int(state[1]),
            int(state[2]),
            int(state[3]),
            int(state[4]),
            int(state[5]),
            bool(state[6]),
            bytes(state[7]),
            bool(commit_closed),
            bool(reveal_closed),
            int(state[8]),
            int(state[9]),
            bool(state[10]),
            bool(state[11]),
        )

    def round_masks(self, project_id: int, round_: int, roster: int | None = None) -> RoundMasks:
        """Committed, revealed (active) and rejected masks over the round's roster."""
        if roster is None:
            roster = self.round_state(project_id, round_).roster
        committed, revealed, rejected = self.contract.functions.roundMasks(
            project_id, round_
        ).call()
        return RoundMasks(
            words_to_mask(list(committed), roster),
            words_to_mask(list(revealed), roster),
            words_to_mask(list(rejected), roster),
        )

    def score_claims(
        self,
        project_id: int,
        index: int,
        from_block: int = 0,
        replayed: Mapping[int, RoundScores] | None = None,
    ) -> list[ScoreClaim]:
        """Trainer ``index``'s not yet claimed round scores, with proofs built from the
        ``RoundCommitted`` events (the scores are public there; only their root is stored).
        In an attested project only settled rounds pay; a round whose scores the trainers'
        majority replaced is claimed from ``replayed`` (round -> the scores this trainer's
        replay computed), whose root must be the settled one."""
        claimed = {
            int(e["args"]["round"])
            for e in self.project_logs("ScoreClaimed", project_id, from_block)
            if int(e["args"]["index"]) == index
        }
        attested = self.project(project_id).attested
        out: list[ScoreClaim] = []
        for log in self.project_logs("RoundCommitted", project_id, from_block):
            args = log["args"]
            r = int(args["round"])
            if r in claimed:
                continue
            words = list(args["inlierMask"])
            leaves = RoundScores(
                [i for i, b in enumerate(words_to_mask(words, 256 * len(words))) if b],
                [int(x) for x in args["scores"]],
            )
            if attested:
                state = self.round_state(project_id, r)
                if not state.settled:
                    continue  # no stake-majority attested this round: it pays nothing
                if state.replaced:
                    mine = (replayed or {}).get(r)
                    if mine is None or mine.root != state.scores_root:
                        continue  # the majority's scores, which this caller did not replay
                    leaves = mine
            if index not in leaves.inliers:
                continue
            position = leaves.inliers.index(index)
            tree = ScoreTree.of_scores(leaves.inliers, leaves.scores)
            out.append(ScoreClaim(r, index, leaves.scores[position], tree.proof(position)))
        return out

    def project_logs(
        self, event: str, project_id: int, from_block: int = 0, round_: int | None = None
    ) -> list[Any]:
        """``event``'s logs of one project from ``from_block``, reading only the blocks this
        process has not read yet (:func:`marketplace.chain.eventlog.project_logs`).
        ``round_``: only that round's logs (events with a ``round`` argument)."""
        return cached_project_logs(self.contract, event, project_id, from_block, round_)

    def expected_payout(self, project_id: int, account: str) -> tuple[int, int]:
        """Stake and the rest of what ``withdraw`` would pay ``account`` now: its reward
        share, counting round scores not claimed yet (the contract's ``expectedPayout``
        counts claimed ones), plus its share of a slashed bond, as the contract does (in a
        disputed project the bond's share alone)."""
        stake, share = self.contract.functions.expectedPayout(project_id, account).call()
        index = self.trainer_index(project_id, account)
        info = self.project(project_id)
        if index is None or int(stake) == 0 or info.status == ProjectStatus.DISPUTED:
            return int(stake), int(share)
        score = self.trainer(project_id, index).score
        score += sum(c.score for c in self.score_claims(project_id, index))
        share = info.reward * score // info.total_score if info.total_score else 0
        return int(stake), share + info.bond_share

    # ------------------------------------------------------------- writes

    def create_project(
        self,
        *,
        reward: int,
        aggregator: str,
        rounds: int,
        round_duration: int,
        min_stake: int,
        model_spec_cid: bytes = ZERO32,
        validation_commitment: bytes = ZERO32,
        verifier: str = ZERO_ADDRESS,
        aggregator_bond: int = 0,
        attested: bool = False,
    ) -> tuple[int, TxReceipt]:
        """Create a project escrowing ``reward`` wei; returns (project id, receipt).
        ``aggregator_bond`` is what the aggregator must post (:meth:`post_bond`) before
        its first round; it goes to the trainers if a rejection is disputed or a round's
        scores are replaced. ``attested``: a round pays only the scores a stake-majority of
        its active trainers attest (:meth:`attest_round`)."""
        params = (
            aggregator,
            verifier,
            rounds,
            round_duration,
            min_stake,
            model_spec_cid,
            validation_commitment,
            aggregator_bond,
            attested,
        )
        receipt = self._tx(
            self.contract.functions.createProject(params), value=reward, action="createProject"
        )
        event = self.contract.events.ProjectCreated().process_receipt(receipt)[0]
        return int(event["args"]["projectId"]), receipt

    def cancel_project(self, project_id: int) -> TxReceipt:
        return self._tx(self.contract.functions.cancelProject(project_id))

    def register(self, project_id: int, stake: int) -> TxReceipt:
        return self._tx(self.contract.functions.register(project_id), value=stake)

    def announce_endpoint(self, project_id: int, url: str) -> TxReceipt:
        return self._tx(self.contract.functions.announceEndpoint(project_id, url))

    def endpoints(self, project_id: int, from_block: int = 0) -> dict[str, str]:
        """Latest announced gateway URL per trainer address."""
        logs = self.project_logs("TrainerEndpoint", project_id, from_block)
        return {log["args"]["trainer"]: log["args"]["url"] for log in logs}

    def announce_reader_key(self, project_id: int, public: bytes) -> TxReceipt:
        """Announce the X25519 key co-trainers seal updates to for this trainer."""
        return self._tx(self.contract.functions.announceReaderKey(project_id, public))

    def trainer_indices(self, project_id: int) -> dict[str, int]:
        """Trainer address -> index, from the (cached) ``TrainerRegistered`` logs: one read
        where :meth:`trainers` makes a call per trainer."""
        logs = self.project_logs("TrainerRegistered", project_id)
        return {str(log["args"]["trainer"]): int(log["args"]["index"]) for log in logs}

    def reader_keys(self, project_id: int, from_block: int = 0) -> dict[str, bytes]:
        """Latest announced reader key per trainer address."""
        logs = self.project_logs("TrainerReaderKey", project_id, from_block)
        return {str(log["args"]["trainer"]): bytes(log["args"]["key"]) for log in logs}

    def attest_round(self, project_id: int, round_: int, scores: RoundScores) -> TxReceipt:
        """Attest the scores this trainer's replay of ``round_`` computed (root, total).

        Sent with at least :data:`ATTEST_GAS_FLOOR`: co-trainers attest at the same time, so
        the vote estimated as a plain one (~91k) may be mined as the one that settles,
        replaces and slashes (~117k, whatever the roster size: benchmarks/results/gas.json).
        """
        return self._tx(
            self.contract.functions.attestRound(project_id, round_, scores.root, scores.total),
            gas_floor=ATTEST_GAS_FLOOR,
        )

    def attestation(
        self, project_id: int, round_: int, index: int, scores: RoundScores
    ) -> tuple[bool, int]:
        """Whether trainer ``index`` attested ``round_``, and the stake behind ``scores``."""
        done, stake = self.contract.functions.attestation(
            project_id, round_, index, scores.root, scores.total
        ).call()
        return bool(done), int(stake)

    def commit_update(self, project_id: int, round_: int, commitment: bytes) -> TxReceipt:
        """Commit to this round's update (:func:`update_commitment`), hidden until revealed."""
        return self._tx(self.contract.functions.commitUpdate(project_id, round_, commitment))

    def reveal_updates(self, project_id: int, round_: int, openings: list[Opening]) -> TxReceipt:
        """Reveal openings (anyone may send them; each counts only if it matches)."""
        return self._tx(
            self.contract.functions.revealUpdates(
                project_id, round_, [o.as_tuple() for o in openings]
            )
        )

    def sign_update(
        self, account: LocalAccount, project_id: int, round_: int, commitment: bytes
    ) -> SignedUpdate:
        """Sign an update commitment off-chain (the trainer pays no gas)."""
        data = update_typed_data(self.chain.chain_id, self.address, project_id, round_, commitment)
        signed = Account.sign_message(encode_typed_data(full_message=data), account.key)
        return SignedUpdate(account.address, commitment, bytes(signed.signature))

    def commit_updates_signed(
        self, project_id: int, round_: int, updates: list[SignedUpdate]
    ) -> TxReceipt:
        return self._tx(
            self.contract.functions.commitUpdatesSigned(
                project_id, round_, [u.as_tuple() for u in updates]
            )
        )

    def commit_round(
        self,
        project_id: int,
        round_: int,
        *,
        global_model_cid: bytes,
        inlier_mask: list[bool],
        scores: list[int],
        rejected_mask: list[bool] | None = None,
        report_cid: bytes = ZERO32,
        proof: bytes = b"",
        trainer_count: int | None = None,
    ) -> TxReceipt:
        """Commit a round. ``scores`` has one entry per inlier, in trainer-index order;
        masks are over the round's roster (``trainer_count``, read when not given)."""
        n = trainer_count
        if n is None:
            n = max(self.round_state(project_id, round_).roster, len(inlier_mask))
        rejected = rejected_mask or [False] * n
        result = (
            round_,
            global_model_cid,
            report_cid,
            mask_to_words(inlier_mask, n),
            mask_to_words(rejected, n),
            scores,
            proof,
        )
        return self._tx(self.contract.functions.commitRound(project_id, result))

    def post_bond(self, project_id: int, amount: int) -> TxReceipt:
        return self._tx(self.contract.functions.postBond(project_id), value=amount)

    def withdraw_bond(self, project_id: int) -> TxReceipt:
        return self._tx(self.contract.functions.withdrawBond(project_id))

    def dispute_rejection(self, project_id: int, round_: int) -> TxReceipt:
        return self._tx(self.contract.functions.disputeRejection(project_id, round_))

    def finalize(self, project_id: int) -> TxReceipt:
        return self._tx(self.contract.functions.finalize(project_id))

    def claim_scores(self, project_id: int, claims: list[ScoreClaim]) -> TxReceipt:
        """Credit round scores (anyone may send a trainer's claims)."""
        return self._tx(
            self.contract.functions.claimScores(project_id, [c.as_tuple() for c in claims])
        )

    def withdraw(
        self,
        project_id: int,
        claims: list[ScoreClaim] | None = None,
        replayed: Mapping[int, RoundScores] | None = None,
    ) -> TxReceipt:
        """Withdraw stake and reward share, crediting ``claims`` first (default: every
        round score of this account not claimed yet, built from the chain's events and,
        for rounds the trainers' majority re-scored, from ``replayed``)."""
        if claims is None:
            assert self.sender is not None
            index = self.trainer_index(project_id, self.sender.address)
            claims = [] if index is None else self.score_claims(project_id, index, 0, replayed)
        return self._tx(
            self.contract.functions.withdraw(project_id, [c.as_tuple() for c in claims])
        )

    def reclaim(self, project_id: int) -> TxReceipt:
        return self._tx(self.contract.functions.reclaim(project_id))
