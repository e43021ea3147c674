"""The aggregator's side of a verifiable round: open the sketches, prove the filter.

A project created with a round verifier (``createProject(..., verifier)``) only accepts a
``commitRound`` whose proof shows that the inlier mask follows the verifier's rule from the
trainers' committed sketches (:mod:`zk.onchain`). The aggregator node therefore, per round:

1. opens each accepted update's sketch (published in the blob's metadata) against the
   trainer's on-chain ``sketchCommitment`` and checks it is the sketch of the update
   (:func:`marketplace.rounds.sketches.check_opening`); a trainer that fails is rejected
   with a ``sketch:`` reason, which is a public claim in the round result (disputable in
   the market), so the proof leaves it out consistently (active = revealed and not
   rejected, both from the market);
2. runs the round with the provable sketch rule as the filter
   (:mod:`marketplace.rounds.zkfilter`), so the committed mask is exactly the proved one;
3. after scoring, proves the round with the commit order the verifier's chain followed
   (:func:`marketplace.chain.verifier.arrival_order`) and encodes the proof for ``commitRound``.

Everything the prover needs to agree with the contract is read from the chain
(:func:`marketplace.chain.verifier.read_verifier`): the circuit shape, the rule, and the
verifying key, which must equal the local proving key's (else every proof would be refused
on-chain).
One :class:`~zk.onchain.RoundProver` is kept for the node's life: loading keys takes
seconds, proving a round well under one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from marketplace.chain.market import MarketClient, ProjectInfo
from marketplace.chain.verifier import read_verifier
from marketplace.errors import ZkError
from marketplace.nodes.chainview import UpdateCommit
from marketplace.rounds.pipeline import RoundOutcome
from marketplace.rounds.sketches import FRAC_BITS, SketchOpening, check_opening, sketch_seed
from marketplace.rounds.validate import CheckedUpdate
from marketplace.rounds.zkfilter import ZkFilterConfig
from zk.onchain import RoundProver, VerifierConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ZkProject:
    """A verifiable project's verifier (as deployed), filter config and prover."""

    verifier: VerifierConfig
    filter: ZkFilterConfig
    prover: RoundProver


def load_zk_project(
    market: MarketClient,
    info: ProjectInfo,
    prover: RoundProver | None = None,
    keys_dir: Path | None = None,
) -> ZkProject:
    """Read the project's verifier from the chain and get a prover whose key matches it.

    ``prover`` is reused when its shape is the verifier's; otherwise one is made from the
    cached keys in ``keys_dir`` (default: the shape's build folder under
    ``$LEDGERLEARN_HOME/zk``; keys are set up there when missing, which then cannot match a
    verifier deployed from other keys).
    """
    config = read_verifier(market, info.verifier)
    shape = config.shape
    if info.trainer_count > shape.n_max:
        raise ZkError(
            f"project {info.project_id} has {info.trainer_count} trainers but its verifier "
            f"proves at most {shape.n_max}; create the project with a larger verifier shape"
        )
    if prover is None or prover.shape != shape:
        start = time.perf_counter()
        prover = RoundProver(shape, keys_dir)
        log.info("loaded %s proving key in %.1f s", shape.name, time.perf_counter() - start)
    if prover.verifying_key() != config.vk:
        raise ZkError(
            f"the local {shape.name} keys are not the ones verifier {config.address} was "
            "deployed with; pass the keys folder that deployed it (--zk-keys)"
        )
    filter_config = ZkFilterConfig(
        dim=shape.dim,
        value_bits=shape.value_bits,
        frac_bits=FRAC_BITS,
        seed=sketch_seed(info.project_id),
        rule_num=config.rule.num,
        rule_den=config.rule.den,
    )
    return ZkProject(config, filter_config, prover)


def open_sketches(
    checked: Mapping[int, CheckedUpdate],
    commits: Mapping[int, UpdateCommit],
    zk: ZkFilterConfig,
) -> tuple[dict[int, CheckedUpdate], dict[int, SketchOpening]]:
    """Open every accepted update's sketch; reject those that do not open or do not match.

    Returns the updated checks and the openings of the updates still accepted.
    """
    spec = zk.sketch_spec()
    out: dict[int, CheckedUpdate] = {}
    openings: dict[int, SketchOpening] = {}
    for i, c in checked.items():
        if c.vector is None or i not in commits:
            out[i] = c
            continue
        opened = check_opening(c.vector, c.metadata, commits[i].sketch_commitment, spec)
        if isinstance(opened, str):
            out[i] = c.rejected("sketch", opened)
        else:
            out[i] = c
            openings[i] = opened
    # a commitment another trainer committed first is a copy: the circuit refuses two
    # active slots with one commitment, so the later committer is rejected
    first: dict[bytes, int] = {}
    for i in sorted(openings, key=lambda i: commits[i].arrival):
        original = first.setdefault(commits[i].sketch_commitment, i)
        if original != i:
            out[i] = out[i].rejected("sketch", f"copies trainer {original}'s commitment")
            del openings[i]
    return out, openings


@dataclass(frozen=True)
class RoundProofResult:
    """The ``proof`` argument of ``commitRound`` and what making it took."""

    proof: bytes
    seconds: float


def prove_outcome(
    zk: ZkProject,
    *,
    project_id: int,
    round_: int,
    trainer_count: int,
    outcome: RoundOutcome,
    openings: Mapping[int, SketchOpening],
    commits: Mapping[int, UpdateCommit],
    arrival: Sequence[int],
    folded: Mapping[int, UpdateCommit] | None = None,
) -> RoundProofResult:
    """Prove the round's filter and encode the proof for ``commitRound``.

    ``arrival`` is the order in which the trainers' sketch commitments were folded
    on-chain (at their reveals); ``folded`` every opened commitment, also of trainers the
    market then excluded (a CID an earlier committer holds), whose sketch commitment is
    still in the chain (default: ``commits``). Slot ``i`` is active iff trainer ``i`` is
    revealed (the market's mask, ``commits``) and is not rejected; the proof's mask
    must equal ``outcome.inlier_mask`` (both come from the same rule on the same
    sketches), which is checked so that a mismatch fails here and not on-chain.
    """
    n = trainer_count
    sketches: list[list[int] | None] = [None] * n
    salts = [0] * n
    for i, opening in openings.items():
        if i < n and not outcome.rejected_mask[i]:
            sketches[i] = list(opening.sketch)
            salts[i] = opening.salt
    onchain: list[int | None] = [None] * n
    for i, c in (folded if folded is not None else commits).items():
        if i < n:
            onchain[i] = int.from_bytes(c.sketch_commitment, "big")
    committed = [i in commits for i in range(n)]
    if not any(s is not None for s in sketches):
        raise ZkError(
            f"round {round_} has no accepted update, so there is no sketch to prove the filter "
            "on; it can only close at its deadline"
        )
    start = time.perf_counter()
    rp = zk.prover.prove_round(
        project_id,
        round_,
        sketches,
        salts,
        zk.verifier.rule,
        onchain_commitments=onchain,
        arrival=arrival,
    )
    if rp.inlier_mask(n) != list(outcome.inlier_mask):
        raise ZkError(
            f"round {round_}: the proved mask differs from the aggregated one; this is a bug"
        )
    if rp.rejected_mask(committed) != list(outcome.rejected_mask):
        raise ZkError(
            f"round {round_}: a committed trainer is neither active nor rejected; this is a bug"
        )
    return RoundProofResult(rp.to_bytes(), time.perf_counter() - start)
