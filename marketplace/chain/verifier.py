"""The round verifier on the chain: deploy it, read it back, check it before staking,
re-verify a committed round.

Which trainers are *active* (their sketch is in the rule) is not the prover's choice: it is
``revealed and not rejected``, both from the market (revealed = opened its hidden
commitment in time, first committer of its CID); a rejection is a public claim in the
round result that the rejected trainer can dispute. The market folds a sketch commitment
when its trainer reveals; the arrival order is the prover's private witness, read from the
events (:func:`arrival_order`).

The proof's encoding, the prover and the keys are pure and live in :mod:`zk.onchain`;
this module is their chain side (``zk`` itself never imports the chain layer).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marketplace.chain.artifacts import load_artifact
from marketplace.chain.constants import ZERO32, ZERO_ADDRESS
from marketplace.chain.deploy import deploy_contract
from marketplace.chain.eventlog import project_logs
from marketplace.chain.market import MarketClient
from marketplace.chain.tx import TxSender
from marketplace.errors import ZkError
from zk.filter_rule import FilterRule
from zk.onchain import (
    RoundProofPayload,
    VerifierConfig,
    groth16_constructor_args,
    load_verifying_key,
    vk_from_words,
)
from zk.proof import VerifyingKeyData
from zk.public_hash import commitments_accumulator, flags_word, fold
from zk.shape import CircuitShape

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifierStack:
    """A deployed verifier: pass ``address`` as the project's ``verifier``."""

    address: str
    groth16: str
    poseidon: str
    shape: CircuitShape
    rule: FilterRule
    gas_used: int


def deploy_poseidon(sender: TxSender) -> str:
    """Deploy ``PoseidonT3`` (stateless; one per chain can serve every verifier)."""
    return deploy_contract(sender, "PoseidonT3").address


def deploy_round_verifier(
    sender: TxSender,
    market_address: str,
    shape: CircuitShape,
    rule: FilterRule | None = None,
    *,
    keys_dir: Path | None = None,
    vk: VerifyingKeyData | None = None,
    poseidon: str | None = None,
) -> VerifierStack:
    """Deploy ``Groth16Verifier`` (the cached key of ``shape``) and ``FilterRoundVerifier``
    for ``market_address`` with ``rule`` fixed; reuse a ``PoseidonT3`` at ``poseidon``."""
    rule = rule or FilterRule()
    vk = vk or load_verifying_key(shape, keys_dir)
    gas = 0
    if poseidon is None:
        p = deploy_contract(sender, "PoseidonT3")
        poseidon, gas = p.address, gas + p.gas_used
    g = deploy_contract(sender, "Groth16Verifier", *groth16_constructor_args(vk))
    f = deploy_contract(
        sender,
        "FilterRoundVerifier",
        market_address,
        g.address,
        poseidon,
        shape.n_max,
        shape.dim,
        shape.value_bits,
        rule.num,
        rule.den,
    )
    log.info("deployed FilterRoundVerifier %s for %s, rule %s", f.address, shape.name, rule)
    return VerifierStack(f.address, g.address, poseidon, shape, rule, gas + g.gas_used + f.gas_used)


# --------------------------------------------------------------------------- auditing


def read_verifier(market: MarketClient, address: str) -> VerifierConfig:
    """Read a ``FilterRoundVerifier``'s shape, rule and verifying key from the chain."""
    w3 = market.chain.w3
    if address == ZERO_ADDRESS or not w3.eth.get_code(address):  # type: ignore[arg-type]
        raise ZkError(f"no round verifier at {address}; the project was created without one")
    f = w3.eth.contract(address=address, abi=load_artifact("FilterRoundVerifier").abi)  # type: ignore[call-overload]
    fn = f.functions
    shape = CircuitShape(fn.nMax().call(), fn.dim().call(), fn.valueBits().call())
    rule = FilterRule(fn.ruleNum().call(), fn.ruleDen().call())
    groth16 = str(fn.groth16().call())
    g = w3.eth.contract(address=groth16, abi=load_artifact("Groth16Verifier").abi)  # type: ignore[call-overload]
    vk = vk_from_words(g.functions.verifyingKey().call())
    return VerifierConfig(address, groth16, shape, rule, vk)


def _expected_code(market: MarketClient, name: str, *args: Any) -> bytes:
    """The runtime code ``name`` deployed with ``args`` would have: the creation code run
    in an ``eth_call`` (immutables included), so nothing needs the compiler's offsets."""
    art = load_artifact(name)
    w3 = market.chain.w3
    initcode = w3.eth.contract(abi=art.abi, bytecode=art.bytecode).constructor(*args)
    return bytes(w3.eth.call({"data": initcode.data_in_transaction}))


def check_verifier_code(market: MarketClient, address: str) -> VerifierConfig:
    """Check that ``address`` runs LedgerLearn's verifier stack for *this* market before
    a trainer stakes on a project that names it; returns what it fixes.

    The market calls the verifier on every commitment and round, so a project owner who
    named a contract of their own could block commitments or accept any round. Each of
    ``FilterRoundVerifier``, its ``Groth16Verifier`` and ``PoseidonT3`` must have exactly
    the runtime code our artifact gets with the arguments it reports.
    """
    w3 = market.chain.w3
    try:
        config = read_verifier(market, address)
        fn = _verifier_contract(market, address).functions
        verifier_market, poseidon = str(fn.market().call()), str(fn.poseidon().call())
    except ZkError:
        raise
    except Exception as exc:  # web3 raises several types for a contract without these views
        raise ZkError(
            f"{address} does not answer as a round verifier ({type(exc).__name__}); a project "
            "naming it could block or fake rounds: do not register"
        ) from exc
    if verifier_market.lower() != market.address.lower():
        raise ZkError(f"verifier {address} serves another market; do not register")
    expected = {
        address: _expected_code(
            market,
            "FilterRoundVerifier",
            market.address,
            config.groth16,
            poseidon,
            config.shape.n_max,
            config.shape.dim,
            config.shape.value_bits,
            config.rule.num,
            config.rule.den,
        ),
        config.groth16: _expected_code(
            market, "Groth16Verifier", *groth16_constructor_args(config.vk)
        ),
        poseidon: _expected_code(market, "PoseidonT3"),
    }
    for where, code in expected.items():
        if bytes(w3.eth.get_code(where)) != code:  # type: ignore[arg-type]
            raise ZkError(
                f"the code at {where} is not LedgerLearn's verifier stack; a project naming "
                "it could block or fake rounds: do not register"
            )
    return config


DEV_UNSAFE_FLAG = "--dev-unsafe-setup"


def check_verifier_setup(
    market: MarketClient, address: str, *, allow_dev_unsafe: bool = False
) -> VerifierConfig:
    """The pre-stake check: :func:`check_verifier_code`, and a key no single party can
    forge with.

    The project pins its verifying key at creation (the verifier address is in the
    project, and the key is in ``Groth16Verifier``'s immutables); code checks cannot tell
    where that key came from, and whoever knows a key's secrets can prove any mask. So the
    key's hash (:func:`zk.ceremony.vk_sha256`) must be one this machine verified with
    ``ledgerlearn zk ceremony verify`` (the whole transcript, against a circuit compiled
    here, with this party's own shares in it). ``allow_dev_unsafe`` accepts any key, for
    development and demos with a single-party setup (``zk setup``), with a warning.
    """
    from zk.ceremony import verified_setup, vk_sha256

    config = check_verifier_code(market, address)
    digest = vk_sha256(config.vk)
    if verified_setup(digest) is not None:
        return config
    if allow_dev_unsafe:
        log.warning(
            "verifier %s: key %s is from no ceremony verified here; whoever made it can "
            "forge rounds (accepted: %s)",
            address,
            digest[:16],
            DEV_UNSAFE_FLAG,
        )
        return config
    raise ZkError(
        f"verifier {address}'s verifying key (sha256 {digest[:16]}...) is not from a ceremony "
        "verified on this machine, so whoever made it may forge any round: run `ledgerlearn zk "
        f"ceremony verify --dir <ceremony folder>` first, or pass {DEV_UNSAFE_FLAG} "
        "(development only)"
    )


def _verifier_contract(market: MarketClient, address: str) -> Any:
    abi = load_artifact("FilterRoundVerifier").abi
    return market.chain.w3.eth.contract(address=address, abi=abi)  # type: ignore[call-overload]


def arrival_order(
    market: MarketClient, verifier: str, project_id: int, round_index: int, from_block: int = 0
) -> list[int]:
    """Trainer indices in the order the verifier folded their commitments (its events, read
    through the same per-process cache as the market's: each block once)."""
    contract = _verifier_contract(market, verifier)
    logs = project_logs(contract, "CommitmentFolded", project_id, from_block, round_index)
    logs = sorted(logs, key=lambda e: (int(e["blockNumber"]), int(e["logIndex"])))
    return [int(e["args"]["index"]) for e in logs]


def sketch_commitments(market: MarketClient, project_id: int, round_index: int) -> dict[int, int]:
    """Trainer index -> sketch commitment, from the market's ``UpdateRevealed`` events (every
    opened one: the verifier folded excluded duplicates too)."""
    logs = market.project_logs("UpdateRevealed", project_id, round_=round_index)
    return {
        int(log["args"]["index"]): int.from_bytes(log["args"]["sketchCommitment"], "big")
        for log in logs
        if bytes(log["args"]["cidDigest"]) != ZERO32
    }


def chain_public_hash(
    market: MarketClient,
    config: VerifierConfig,
    project_id: int,
    round_index: int,
    *,
    inlier_words: Sequence[int],
    rejected_words: Sequence[int],
    outputs: int,
) -> int:
    """The proof's public input from chain data, recomputed independently of the contract.

    The chain is refolded from the market's commitment events in the verifier's event
    order and must equal the verifier's own ``accumulator``. Raises :class:`ZkError` where
    the contract returns ``false`` before pairing.
    """
    _committed, words, _rejected = market.contract.functions.roundMasks(
        project_id, round_index
    ).call()
    n = config.shape.n_max

    def word0(ws: Sequence[int], what: str) -> int:
        if any(int(x) for x in ws[1:]) or (ws and int(ws[0]) >> n):
            raise ZkError(f"{what} has a trainer index >= {n}; the circuit has {n} slots")
        return int(ws[0]) if ws else 0

    revealed = word0(list(words), "revealed mask")
    active_bits = revealed & ~word0(rejected_words, "rejected mask")
    mask_bits = word0(inlier_words, "inlier mask")
    if mask_bits & ~active_bits:
        raise ZkError("the inlier mask includes a trainer that is not active")
    order = arrival_order(market, config.address, project_id, round_index)
    if not order or not {i for i in range(n) if revealed >> i & 1} <= set(order):
        raise ZkError("the verifier's folded commitments miss a trainer the market revealed")
    commitments = sketch_commitments(market, project_id, round_index)
    arrivals = [(i, commitments[i]) for i in order]
    acc = commitments_accumulator(project_id, round_index, arrivals)
    onchain = _verifier_contract(market, config.address).functions.accumulator(
        project_id, round_index
    )
    if acc != int(onchain.call()):
        raise ZkError("the verifier's commitment chain differs from the committed commitments")
    active = [(active_bits >> i) & 1 for i in range(n)]
    mask = [(mask_bits >> i) & 1 for i in range(n)]
    return fold(acc, flags_word(active, mask, config.rule.num, config.rule.den), outputs)


@dataclass(frozen=True)
class RoundAudit:
    """Outcome of re-verifying a committed round off-chain (py_ecc, independent of the EVM)."""

    project_id: int
    round_index: int
    ok: bool
    reason: str
    public_hash: int | None
    inliers: int
    tx_hash: str


def committed_round_result(market: MarketClient, tx_hash: bytes) -> Any:
    """The ``RoundResult`` argument of the ``commitRound`` transaction ``tx_hash``."""
    tx = market.chain.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
    _fn, args = market.contract.decode_function_input(tx["input"])
    return args["r"]


def audit_round(market: MarketClient, project_id: int, round_index: int) -> RoundAudit:
    """Re-verify round ``round_index`` of ``project_id`` from its ``commitRound`` calldata.

    Reads the proof from the transaction that emitted ``RoundCommitted``, the verifier's
    shape, rule and key from the chain, recomputes the public input from chain data and
    verifies with :class:`zk.verify_pyecc.PyEccVerifier`.
    """
    from zk.verify_pyecc import PyEccVerifier

    project = market.project(project_id)
    config = read_verifier(market, project.verifier)
    logs = market.project_logs("RoundCommitted", project_id, round_=round_index)
    if not logs:
        raise ZkError(f"round {round_index} of project {project_id} has not been committed")
    tx_hash = logs[-1]["transactionHash"]
    result = committed_round_result(market, tx_hash)

    def audit(ok: bool, reason: str, h: int | None = None, inliers: int = 0) -> RoundAudit:
        return RoundAudit(project_id, round_index, ok, reason, h, inliers, "0x" + tx_hash.hex())

    try:
        payload = RoundProofPayload.from_bytes(bytes(result["proof"]))
    except ZkError as exc:
        return audit(False, str(exc))
    inlier_words = [int(w) for w in result["inlierMask"]]
    try:
        h = chain_public_hash(
            market,
            config,
            project_id,
            round_index,
            inlier_words=inlier_words,
            rejected_words=[int(w) for w in result["rejectedMask"]],
            outputs=payload.outputs,
        )
    except ZkError as exc:
        return audit(False, str(exc))
    inliers = sum(bin(w).count("1") for w in inlier_words)
    if not PyEccVerifier(config.vk).verify(payload.proof, [h]):
        return audit(False, "the Groth16 proof does not verify (py_ecc)", h, inliers)
    return audit(True, "proof verifies for the committed round", h, inliers)
