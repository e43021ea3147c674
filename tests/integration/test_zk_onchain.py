"""The filter proof checked by ``commitRound`` on the embedded chain (smallest shape 10x16).

A valid round is accepted; every way of cheating the issue lists reverts with
``InvalidRoundProof``; the contract Poseidon equals the Python one. Keys are set up once
(about 15 s on 2 cores) into pytest's cache folder, content-addressed by the circuit hash,
so later runs reuse them.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from chain_asserts import reverts
from market_rounds import DURATION, ETH, STAKE, cid_of, open_project, reveal
from market_rounds import commit as commit_hidden

from marketplace.chain.deploy import deploy_contract
from marketplace.chain.market import ProjectStatus
from marketplace.chain.revert import decode_revert
from marketplace.chain.tx import REVERT_ERRORS, TxSender, revert_data
from marketplace.chain.verifier import (
    VerifierStack,
    arrival_order,
    audit_round,
    deploy_round_verifier,
)
from marketplace.errors import ZkError
from zk.build import build_dir
from zk.field import FIELD_MODULUS
from zk.filter_rule import FilterRule
from zk.onchain import RoundProofPayload, RoundProver, load_verifying_key
from zk.poseidon import poseidon
from zk.proof import Groth16Proof, VerifyingKeyData
from zk.public_hash import flags_word, fold, outputs_digest
from zk.shape import CircuitShape
from zk.sketch import sketch_commitment

pytestmark = pytest.mark.integration

SHAPE = CircuitShape(10, 16)
RULE = FilterRule(2, 1)
CID = bytes([7]) * 32
N = 7  # trainers in the conftest world


@pytest.fixture(scope="module")
def keys_dir(request: pytest.FixtureRequest) -> Path:
    root = Path(request.config.cache.mkdir("ledgerlearn-zk"))
    return build_dir(SHAPE, root) / "groth16py"


@pytest.fixture(scope="module")
def prover(keys_dir: Path) -> RoundProver:
    return RoundProver(SHAPE, keys_dir)


@pytest.fixture
def stack(world, keys_dir: Path, prover: RoundProver) -> VerifierStack:
    sender = TxSender(world.chain, world.owner)
    return deploy_round_verifier(sender, world.market.address, SHAPE, RULE, keys_dir=keys_dir)


def sketches_for(seed: int = 0) -> tuple[list[list[int]], list[int]]:
    rng = random.Random(seed)
    sketches = [[rng.randint(-50_000, 50_000) for _ in range(SHAPE.dim)] for _ in range(N)]
    sketches[0] = [v * 40 for v in sketches[0]]  # a boosted update: the rule masks it out
    salts = [rng.randrange(FIELD_MODULUS) for _ in range(N)]
    return sketches, salts


def open_round(
    world,
    verifier: str,
    sketches,
    salts,
    rounds: int = 2,
    pid: int | None = None,
    order=None,
    bond: int = 0,
):
    """Create a project (unless ``pid``), register everyone, commit the current round's
    sketches (hidden) and reveal them in ``order`` (default: trainer order): the verifier
    folds them as they are revealed. Trainers left out of ``order`` do not take part."""
    if pid is None:
        pid = open_project(world, N, rounds, bond, verifier=verifier)
    round_ = world.market.project(pid).current_round
    order = list(order if order is not None else range(N))
    openings = {}
    for i in order:
        c = sketch_commitment(sketches[i], salts[i], SHAPE.value_bits)
        openings[i] = commit_hidden(
            world, world.trainers[i], pid, round_, cid_of(i), c.to_bytes(32, "big")
        )
    if len(order) < N:
        world.chain.advance_time(DURATION + 1)  # the others never commit: the window closes
    for i in order:
        reveal(world, world.trainers[i], pid, round_, openings[i])
    if len(order) < N:
        world.chain.advance_time(DURATION)  # and nobody else can reveal
    return pid, round_


def commit(world, pid, round_, mask, proof_bytes, rejected=None, scores=None):
    scores = scores if scores is not None else [1] * sum(mask)
    return world.as_(world.aggregator).commit_round(
        pid,
        round_,
        global_model_cid=CID,
        inlier_mask=mask,
        scores=scores,
        rejected_mask=rejected,
        proof=proof_bytes,
    )


def honest(prover, pid, round_, sketches, salts):
    rp = prover.prove_round(pid, round_, sketches, salts, RULE)
    return rp, rp.inlier_mask(N), rp.to_bytes()


def onchain_commitments(world, pid, round_):
    from marketplace.chain.verifier import sketch_commitments

    commitments = sketch_commitments(world.market, pid, round_)
    return [commitments.get(i) for i in range(N)]


# ------------------------------------------------------------------ accepted


def test_valid_round_is_accepted_and_audits(world, stack, prover):
    sketches, salts = sketches_for()
    pid, r = open_round(world, stack.address, sketches, salts)
    rp, mask, data = honest(prover, pid, r, sketches, salts)
    assert mask[0] is False and sum(mask) >= 5
    from marketplace.chain.artifacts import load_artifact

    contract = world.chain.w3.eth.contract(
        address=stack.address, abi=load_artifact("FilterRoundVerifier").abi
    )
    payload = RoundProofPayload.from_bytes(data)
    fits, h = contract.functions.publicHash(
        pid, r, [(1 << N) - 1], [sum(1 << i for i, m in enumerate(mask) if m)], [0], payload.outputs
    ).call()
    assert fits and h == rp.statement.public_hash  # the Solidity fold equals zk/public_hash.py
    assert contract.functions.accumulator(pid, r).call() == rp.statement.accumulator
    receipt = commit(world, pid, r, mask, data)
    assert receipt["status"] == 1
    assert world.market.project(pid).rounds_committed == 1
    audit = audit_round(world.market, pid, r)
    assert audit.ok, audit.reason
    assert audit.public_hash == rp.statement.public_hash and audit.inliers == sum(mask)


def test_rejected_trainer_is_a_public_claim(world, stack, prover):
    """A trainer reported rejected is left out of the rule; the proof must say so too."""
    sketches, salts = sketches_for(1)
    pid, r = open_round(world, stack.address, sketches, salts)
    withheld: list[list[int] | None] = list(sketches)
    withheld[3] = None
    onchain = onchain_commitments(world, pid, r)
    rp = prover.prove_round(pid, r, withheld, salts, RULE, onchain_commitments=onchain)
    revealed = world.market.round_masks(pid, r).revealed
    rejected = rp.rejected_mask(revealed)
    assert rejected == [i == 3 for i in range(N)]
    mask = rp.inlier_mask(N)
    assert commit(world, pid, r, mask, rp.to_bytes(), rejected=rejected)["status"] == 1


def test_arrival_order_is_read_from_the_chain(world, stack, prover):
    """Trainers commit in any order; the prover follows the verifier's events."""
    sketches, salts = sketches_for(2)
    order = [4, 0, 6, 2, 1, 5, 3]
    pid, r = open_round(world, stack.address, sketches, salts, order=order)
    assert arrival_order(world.market, stack.address, pid, r) == order
    # read through the per-process event cache: asked again with no new block, the
    # verifier's events cost no eth_getLogs (on main each call scanned from block 0)
    calls = []
    eth = world.chain.w3.eth
    real_get_logs = eth.get_logs
    eth.get_logs = lambda *a, **k: calls.append(a) or real_get_logs(*a, **k)
    try:
        assert arrival_order(world.market, stack.address, pid, r) == order
    finally:
        del eth.get_logs
    assert calls == []
    _, mask, data = honest(prover, pid, r, sketches, salts)  # assumes trainer order
    with reverts("InvalidRoundProof"):
        commit(world, pid, r, mask, data)
    rp = prover.prove_round(pid, r, sketches, salts, RULE, arrival=order)
    assert commit(world, pid, r, rp.inlier_mask(N), rp.to_bytes())["status"] == 1
    assert audit_round(world.market, pid, r).ok


def test_verification_gas_does_not_grow_with_trainers(world, stack, prover):
    """The commitments are folded as they arrive, so verifyRound costs the same for 3 and
    7 active trainers (the per-trainer work moved to commitUpdate)."""
    from marketplace.chain.artifacts import load_artifact
    from marketplace.chain.market import mask_to_words

    contract = world.chain.w3.eth.contract(
        address=stack.address, abi=load_artifact("FilterRoundVerifier").abi
    )
    sketches, salts = sketches_for(3)
    gas = {}
    for k in (3, N):
        pid, r = open_round(world, stack.address, sketches, salts, order=range(k))
        rp = prover.prove_round(pid, r, sketches[:k] + [None] * (N - k), salts, RULE)
        mask = rp.inlier_mask(N)
        call = contract.functions.verifyRound(
            pid,
            r,
            mask_to_words([i < k for i in range(N)], N),
            mask_to_words(mask, N),
            [0],
            rp.to_bytes(),
        )
        assert call.call({"from": world.market.address})
        gas[k] = call.estimate_gas({"from": world.market.address})
    assert abs(gas[N] - gas[3]) < 1_000, gas


def test_only_the_market_feeds_the_chain_and_bad_commitments_revert(world, stack):
    from marketplace.chain.artifacts import load_artifact

    contract = world.chain.w3.eth.contract(
        address=stack.address, abi=load_artifact("FilterRoundVerifier").abi
    )
    with reverts("NotMarket"):
        TxSender(world.chain, world.owner).transact(
            contract.functions.onCommitment(1, 1, 0, (5).to_bytes(32, "big"))
        )
    bads = (bytes(32), FIELD_MODULUS.to_bytes(32, "big"))
    pid = open_project(world, 2, 1, verifier=stack.address)
    openings = [
        commit_hidden(world, world.trainers[i], pid, 1, cid_of(i), bad)
        for i, bad in enumerate(bads)
    ]
    for i, opening in enumerate(openings):  # the verifier folds at reveal: it refuses there
        with reverts("CommitmentNotInField"):
            reveal(world, world.trainers[i], pid, 1, opening)


# ------------------------------------------------------------------ rejected


def test_flipped_mask_bit_is_rejected(world, stack, prover):
    sketches, salts = sketches_for()
    pid, r = open_round(world, stack.address, sketches, salts)
    _, mask, data = honest(prover, pid, r, sketches, salts)
    for flip in (0, 2):  # let the outlier in; drop an honest inlier
        bad = list(mask)
        bad[flip] = not bad[flip]
        scores = [1] * sum(bad)  # a well-formed result: only the proof can fail
        with reverts("InvalidRoundProof"):
            commit(world, pid, r, bad, data, scores=scores)


def test_excluded_honest_trainer_is_rejected(world, stack, prover):
    """Proving without an honest trainer's sketch, without reporting it rejected, fails."""
    sketches, salts = sketches_for()
    pid, r = open_round(world, stack.address, sketches, salts)
    dropped: list[list[int] | None] = list(sketches)
    dropped[4] = None
    rp = prover.prove_round(pid, r, dropped, salts, RULE)
    mask = rp.inlier_mask(N)
    assert not mask[4]
    with reverts("InvalidRoundProof"):
        commit(world, pid, r, mask, rp.to_bytes())
    # treating it as rejected in the proof only (its commitment kept in the chain) also fails:
    # the contract's active set comes from the rejected mask of the round result
    rp = prover.prove_round(
        pid, r, dropped, salts, RULE, onchain_commitments=onchain_commitments(world, pid, r)
    )
    with reverts("InvalidRoundProof"):
        commit(world, pid, r, rp.inlier_mask(N), rp.to_bytes())


def test_wrong_reference_point_is_rejected(world, stack, prover):
    """A witness whose median is the attacker's own sketch (so the honest look far) cannot
    yield a valid proof, and a lied median distance in the payload fails too."""
    from zk.witness import build_round

    sketches, salts = sketches_for()
    pid, r = open_round(world, stack.address, sketches, salts)
    inputs, st = build_round(
        SHAPE, project_id=pid, round_index=r, sketches=sketches, salts=salts, rule=RULE
    )
    offsets = inputs["sketch"]
    fake_median = list(offsets[0])  # the boosted trainer as the reference point
    dists = [sum(abs(u - m) for u, m in zip(row, fake_median, strict=True)) for row in offsets[:N]]
    fake_md = sorted(dists)[(N - 1) // 2]
    fake_mask = [int(RULE.den * d <= RULE.num * fake_md) for d in dists] + [0] * (SHAPE.n_max - N)
    lift = 1 << SHAPE.value_bits
    fake_sums = [
        sum(offsets[i][j] + lift for i in range(SHAPE.n_max) if fake_mask[i])
        for j in range(SHAPE.dim)
    ]
    assert fake_mask[0] == 1 and fake_mask != list(st.mask)
    fake_outputs = outputs_digest(fake_md, fake_sums, SHAPE)
    fake_hash = fold(
        st.accumulator, flags_word(st.active, fake_mask, RULE.num, RULE.den), fake_outputs
    )
    forged = dict(inputs, median=fake_median, medianDist=fake_md, publicHash=fake_hash)
    with pytest.raises(ZkError):
        prover.backend.prove(forged)
    bogus = prover.backend.prove_unchecked(forged)  # bypass the prover's own check
    with reverts("InvalidRoundProof"):
        commit(
            world,
            pid,
            r,
            [bool(m) for m in fake_mask[:N]],
            RoundProofPayload(bogus, fake_outputs).to_bytes(),
        )
    # an honest proof with different claimed outputs (median distance, sums)
    rp, mask, data = honest(prover, pid, r, sketches, salts)
    good = RoundProofPayload.from_bytes(data)
    lied = RoundProofPayload(good.proof, (good.outputs + 1) % FIELD_MODULUS)
    with reverts("InvalidRoundProof"):
        commit(world, pid, r, mask, lied.to_bytes())


def test_sketch_not_matching_commitment_is_rejected(world, stack, prover):
    sketches, salts = sketches_for()
    pid, r = open_round(world, stack.address, sketches, salts)
    swapped = [list(s) for s in sketches]
    swapped[2][0] += 1000  # the aggregator proves with a sketch trainer 2 did not commit
    onchain = onchain_commitments(world, pid, r)
    with pytest.raises(ZkError, match="trainer 2"):
        prover.prove_round(pid, r, swapped, salts, RULE, onchain_commitments=onchain)
    _, mask, data = honest(prover, pid, r, swapped, salts)
    with reverts("InvalidRoundProof"):
        commit(world, pid, r, mask, data)


def test_proof_replayed_for_another_project_or_round_is_rejected(world, stack, prover):
    sketches, salts = sketches_for()
    pid_a, r = open_round(world, stack.address, sketches, salts)
    pid_b, _ = open_round(world, stack.address, sketches, salts)
    _, mask, data = honest(prover, pid_a, r, sketches, salts)
    with reverts("InvalidRoundProof"):
        commit(world, pid_b, r, mask, data)  # same commitments, other project
    commit(world, pid_a, r, mask, data)
    open_round(world, stack.address, sketches, salts, pid=pid_a)  # round 2, same sketches
    with reverts("InvalidRoundProof"):
        commit(world, pid_a, 2, mask, data)


def test_proof_under_another_circuits_key_is_rejected(world, stack, prover, tmp_path):
    """A key the attacker set up for a trivial circuit proves any public input: the
    verifier's own key must refuse that proof."""
    import groth16py

    src = tmp_path / "any.circom"
    src.write_text(
        "pragma circom 2.1.0;\ntemplate Any() { signal input publicHash; "
        "signal sq; sq <== publicHash * publicHash; }\n"
        "component main {public [publicHash]} = Any();\n"
    )
    pk, _vk = groth16py.setup_circom(str(src), [])
    sketches, salts = sketches_for()
    pid, r = open_round(world, stack.address, sketches, salts)
    rp, mask, _ = honest(prover, pid, r, sketches, salts)
    forged = Groth16Proof.from_bytes(groth16py.prove(pk, {"publicHash": rp.statement.public_hash}))
    other = RoundProofPayload(forged, RoundProofPayload.from_bytes(rp.to_bytes()).outputs)
    with reverts("InvalidRoundProof"):
        commit(world, pid, r, mask, other.to_bytes())


def test_more_trainers_than_slots_is_refused_at_registration(world, prover, keys_dir):
    """#13.5: the market reads the verifier's capacity at project creation and refuses the
    registration beyond it (on main the registration passed and the aggregator refused the
    whole project later)."""
    sender = TxSender(world.chain, world.owner)
    small = deploy_round_verifier(
        sender,
        world.market.address,
        CircuitShape(5, 16),
        RULE,
        vk=load_verifying_key(SHAPE, keys_dir),
    )
    pid = open_project(world, 5, 1, verifier=small.address)
    assert world.market.project(pid).max_trainers == 5
    with reverts("TooManyTrainers"):
        world.as_(world.trainers[5]).register(pid, STAKE)


def test_rejecting_honest_trainers_is_disputed_and_slashes_the_bond(world, stack, prover):
    """#17.1: marking three honest trainers "malformed" moved the median onto two colluders
    and paid them everything, with a valid proof. Now the active set is the market's
    revealed set: a rejection is a public claim the rejected trainer disputes, which halts
    the project, pays no reward to anyone and splits the aggregator's bond among the
    trainers."""
    sketches, salts = sketches_for(5)
    colluders = [5, 6]
    for i in colluders:  # the colluders' sketches sit together, far from the honest ones
        sketches[i] = [200_000 + i] * SHAPE.dim
    bond = ETH // 2
    pid, r = open_round(world, stack.address, sketches, salts, rounds=1, bond=bond)
    forged: list[list[int] | None] = list(sketches)
    for i in (0, 1, 2):
        forged[i] = None
    onchain = onchain_commitments(world, pid, r)
    rp = prover.prove_round(pid, r, forged, salts, RULE, onchain_commitments=onchain)
    rejected = rp.rejected_mask(world.market.round_masks(pid, r).revealed)
    mask = rp.inlier_mask(N)
    assert not any(mask[:3])
    commit(world, pid, r, mask, rp.to_bytes(), rejected=rejected)  # the proof still verifies
    with reverts("NotDisputable"):  # only a rejected trainer may dispute
        world.as_(world.trainers[3]).dispute_rejection(pid, r)
    with reverts("NotFinalizable"):  # the dispute window is open
        world.as_(world.aggregator).finalize(pid)
    world.as_(world.trainers[0]).dispute_rejection(pid, r)
    assert world.market.project(pid).status is ProjectStatus.DISPUTED
    for i in colluders + [0]:
        stake, share = world.market.expected_payout(pid, world.trainers[i].address)
        assert (stake, share) == (STAKE, bond // N)  # no reward to anyone, the bond split
    world.market.reclaim(pid)  # the reward goes back to the owner
    with reverts("ProjectNotFinalized"):
        world.as_(world.aggregator).withdraw_bond(pid)


# ------------------------------------------------------------------ Poseidon


def test_solidity_poseidon_matches_python(world):
    sender = TxSender(world.chain, world.owner)
    address = deploy_contract(sender, "PoseidonT3").address
    from marketplace.chain.artifacts import load_artifact

    h = world.chain.w3.eth.contract(address=address, abi=load_artifact("PoseidonT3").abi)
    rng = random.Random(5)
    pairs = [(0, 0), (1, 2), (FIELD_MODULUS - 1, FIELD_MODULUS - 1)]
    pairs += [(rng.randrange(FIELD_MODULUS), rng.randrange(FIELD_MODULUS)) for _ in range(12)]
    for a, b in pairs:
        assert h.functions.hash(a, b).call() == poseidon([a, b])
    with pytest.raises(REVERT_ERRORS) as info:
        h.functions.hash(FIELD_MODULUS, 0).call()
    assert decode_revert(revert_data(info.value))[0] == "NotAFieldElement"


def test_committed_poseidon_contract_is_generated_from_circomlib():
    from zk.gen_poseidon_sol import main as generate

    assert generate(["--check"]) == 0, "run `python -m zk.gen_poseidon_sol` and rebuild"


def test_trainers_can_check_the_verifier_stack_before_staking(world, stack, keys_dir):
    """The market calls a project's verifier on every commitment: a trainer checks that
    it is LedgerLearn's stack for this market (`trainer register` does it)."""
    from marketplace.chain.verifier import check_verifier_code

    config = check_verifier_code(world.market, stack.address)
    assert config.shape == SHAPE and config.rule == RULE
    sender = TxSender(world.chain, world.owner)
    elsewhere = deploy_round_verifier(
        sender, world.trainers[0].address, SHAPE, RULE, keys_dir=keys_dir
    )  # a genuine stack, but for another "market"
    with pytest.raises(ZkError, match="another market"):
        check_verifier_code(world.market, elsewhere.address)
    with pytest.raises(ZkError, match="does not answer as a round verifier"):
        check_verifier_code(world.market, stack.poseidon)


def _key_with_known_secrets(seed: int) -> tuple[VerifyingKeyData, dict[str, int]]:
    """A one-input Groth16 verifying key whose secrets (alpha, beta, gamma, delta and the
    IC discrete logs) the caller knows: what whoever ran a single-party setup holds."""
    from py_ecc.bn128 import G1, G2, curve_order, multiply

    rng = random.Random(seed)
    s = {
        k: rng.randrange(1, curve_order) for k in ("alpha", "beta", "gamma", "delta", "ic0", "ic1")
    }

    def g1(k: int) -> tuple[int, int]:
        p = multiply(G1, k)
        return (int(p[0].n), int(p[1].n))

    def g2(k: int) -> tuple[tuple[int, int], tuple[int, int]]:
        p = multiply(G2, k)
        return (
            (int(p[0].coeffs[0]), int(p[0].coeffs[1])),
            (int(p[1].coeffs[0]), int(p[1].coeffs[1])),
        )

    vk = VerifyingKeyData(
        g1(s["alpha"]), g2(s["beta"]), g2(s["gamma"]), g2(s["delta"]), (g1(s["ic0"]), g1(s["ic1"]))
    )
    return vk, s


def _forge(secrets: dict[str, int], public_input: int) -> Groth16Proof:
    """A proof for any public input: pick A = aG1, B = bG2, and solve the pairing equation
    a*b = alpha*beta + (ic0 + x*ic1)*gamma + c*delta for c."""
    from py_ecc.bn128 import G1, G2, curve_order, multiply

    a, b = 5, 7
    s = secrets
    vx = (s["ic0"] + public_input * s["ic1"]) % curve_order
    c = (a * b - s["alpha"] * s["beta"] - vx * s["gamma"]) * pow(s["delta"], -1, curve_order)
    pa, pb, pc = multiply(G1, a), multiply(G2, b), multiply(G1, c % curve_order)
    return Groth16Proof(
        (int(pa[0].n), int(pa[1].n)),
        (
            (int(pb[0].coeffs[0]), int(pb[0].coeffs[1])),
            (int(pb[1].coeffs[0]), int(pb[1].coeffs[1])),
        ),
        (int(pc[0].n), int(pc[1].n)),
    )


def test_a_key_whose_secrets_are_known_forges_rounds_and_is_refused_before_staking(world):
    """Issue #17.2: with a single-party key, an arbitrary mask (only the colluder paid) is
    accepted on-chain, and the code check alone passes; the pre-stake check refuses any key
    that is not from a ceremony this machine verified (unless --dev-unsafe-setup)."""
    from marketplace.chain.artifacts import load_artifact
    from marketplace.chain.verifier import check_verifier_code, check_verifier_setup
    from zk import ceremony

    vk, secrets = _key_with_known_secrets(17)
    sender = TxSender(world.chain, world.owner)
    forged_stack = deploy_round_verifier(sender, world.market.address, SHAPE, RULE, vk=vk)
    assert check_verifier_code(world.market, forged_stack.address).vk == vk  # passes today
    with pytest.raises(ZkError, match="not from a ceremony verified on this machine"):
        check_verifier_setup(world.market, forged_stack.address)
    assert check_verifier_setup(world.market, forged_stack.address, allow_dev_unsafe=True).vk == vk

    sketches, salts = sketches_for(3)
    pid, r = open_round(world, forged_stack.address, sketches, salts)
    mask = [False] * (N - 1) + [True]  # only the colluder, who committed like everyone
    outputs = 12345
    contract = world.chain.w3.eth.contract(
        address=forged_stack.address, abi=load_artifact("FilterRoundVerifier").abi
    )
    fits, h = contract.functions.publicHash(
        pid, r, [(1 << N) - 1], [1 << (N - 1)], [0], outputs
    ).call()
    assert fits
    proof = RoundProofPayload(_forge(secrets, h), outputs).to_bytes()
    commit(world, pid, r, mask, proof)  # accepted: the key's maker proved a mask of its choice
    assert world.market.project(pid).rounds_committed == 1

    # a key this machine verified in a ceremony passes without the flag (the record is what
    # `zk ceremony verify` writes; tests/unit/zk/test_zk_ceremony.py checks how it is earned)
    ceremony._remember("verified", ceremony.vk_sha256(vk), {"ceremony": "test"})
    assert check_verifier_setup(world.market, forged_stack.address).vk == vk
