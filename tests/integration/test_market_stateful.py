"""Random operation sequences against ContributionMarket keep its money invariants:

* contract balance == escrowed rewards + stakes - everything paid out;
* no trainer is ever paid more than its stake plus ``reward * score / totalScore``;
* every payout matches what a Python model of the contract predicts.

Each example starts from a snapshot of a freshly deployed market (fast revert).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from web3.logs import DISCARD

from marketplace.chain.connection import Chain, connect_embedded
from marketplace.chain.deploy import deploy_all
from marketplace.chain.market import MarketClient, Opening
from marketplace.chain.tx import TxSender
from marketplace.errors import TransactionReverted

pytestmark = pytest.mark.integration

DURATION = 100
N_TRAINERS = 4


@dataclass
class _Shared:
    chain: Chain
    accounts: list
    market_address: str
    snapshot: object


@functools.cache
def shared() -> _Shared:
    """One chain per test process; every example reverts to the post-deploy snapshot."""
    chain = connect_embedded()
    accounts = [chain.dev_account(i) for i in range(2 + N_TRAINERS)]
    address = deploy_all(TxSender(chain, accounts[0])).address("ContributionMarket")
    return _Shared(chain, accounts, address, chain.snapshot())


class MarketMachine(RuleBasedStateMachine):
    @initialize()
    def fresh_chain(self) -> None:
        s = shared()
        s.chain.revert(s.snapshot)
        self.chain = s.chain
        self.owner, self.agg, *self.trainers = s.accounts
        self.clients = {a.address: MarketClient(s.chain, s.market_address, a) for a in s.accounts}
        self.deposited = 0
        self.paid = 0
        self.projects: dict[int, dict] = {}

    def m(self, account) -> MarketClient:
        return self.clients[account.address]

    def _try(self, fn) -> object | None:
        try:
            return fn()
        except TransactionReverted:
            return None

    # ---------------------------------------------------------------- rules

    @rule(reward=st.integers(1, 10**18), rounds=st.integers(1, 3), stake=st.integers(0, 10**6))
    def create(self, reward: int, rounds: int, stake: int) -> None:
        pid, _ = self.m(self.owner).create_project(
            reward=reward,
            aggregator=self.agg.address,
            rounds=rounds,
            round_duration=DURATION,
            min_stake=stake,
        )
        self.deposited += reward
        self.projects[pid] = {
            "reward": reward,
            "min_stake": stake,
            "trainers": {},
            "scores": {},
            "total": 0,
            "withdrawn": set(),
        }

    @rule(data=st.data(), who=st.integers(0, N_TRAINERS - 1), extra=st.integers(0, 1000))
    def register(self, data, who: int, extra: int) -> None:
        if not self.projects:
            return
        pid = data.draw(st.sampled_from(sorted(self.projects)))
        p = self.projects[pid]
        t = self.trainers[who]
        amount = p["min_stake"] + extra
        if self._try(lambda: self.m(t).register(pid, amount)) is not None:
            assert t.address not in p["trainers"], "double registration accepted"
            p["trainers"][t.address] = amount
            p["scores"][t.address] = 0
            self.deposited += amount

    @rule(data=st.data(), who=st.integers(0, N_TRAINERS - 1))
    def commit(self, data, who: int) -> None:
        if not self.projects:
            return
        pid = data.draw(st.sampled_from(sorted(self.projects)))
        info = self.m(self.owner).project(pid)
        t = self.trainers[who]
        opening = Opening(t.address, bytes([1 + who]) * 32, b"\x02" * 32, b"\x05" * 32)
        self._try(
            lambda: self.m(t).commit_update(
                pid, info.current_round, opening.commitment(pid, info.current_round)
            )
        )

    @rule(data=st.data(), who=st.integers(0, N_TRAINERS - 1))
    def reveal(self, data, who: int) -> None:
        if not self.projects:
            return
        pid = data.draw(st.sampled_from(sorted(self.projects)))
        info = self.m(self.owner).project(pid)
        t = self.trainers[who]
        opening = Opening(t.address, bytes([1 + who]) * 32, b"\x02" * 32, b"\x05" * 32)
        self._try(lambda: self.m(self.agg).reveal_updates(pid, info.current_round, [opening]))

    @rule(data=st.data())
    def commit_round(self, data) -> None:
        if not self.projects:
            return
        pid = data.draw(st.sampled_from(sorted(self.projects)))
        market = self.m(self.agg)
        info = market.project(pid)
        revealed = market.round_masks(pid, info.current_round).revealed
        inliers = [c and data.draw(st.booleans()) for c in revealed]
        scores = [data.draw(st.integers(0, 10**6)) for b in inliers if b]
        done = self._try(
            lambda: market.commit_round(
                pid,
                info.current_round,
                global_model_cid=b"\x03" * 32,
                inlier_mask=inliers,
                scores=scores,
            )
        )
        if done is not None:
            p = self.projects[pid]
            addrs = [market.trainer(pid, i).address for i, b in enumerate(inliers) if b]
            for addr, s in zip(addrs, scores, strict=True):
                p["scores"][addr] += s
                p["total"] += s

    @rule(seconds=st.sampled_from([10, DURATION + 1, 2 * DURATION + 1, 3 * DURATION + 1]))
    def wait(self, seconds: int) -> None:
        self.chain.advance_time(seconds)

    @rule(data=st.data(), who=st.integers(0, N_TRAINERS + 1))
    def finalize(self, data, who: int) -> None:
        if self.projects:
            pid = data.draw(st.sampled_from(sorted(self.projects)))
            caller = ([self.owner, self.agg] + self.trainers)[who]
            self._try(lambda: self.m(caller).finalize(pid))

    @rule(data=st.data(), who=st.integers(0, N_TRAINERS - 1))
    def withdraw(self, data, who: int) -> None:
        if not self.projects:
            return
        pid = data.draw(st.sampled_from(sorted(self.projects)))
        t = self.trainers[who]
        market = self.m(t)
        receipt = self._try(lambda: market.withdraw(pid))
        if receipt is None:
            return
        p = self.projects[pid]
        withdrawn = market.contract.events.Withdrawn()  # the receipt also logs claims
        ev = withdrawn.process_receipt(receipt, errors=DISCARD)[0]["args"]
        assert t.address not in p["withdrawn"], "paid twice"
        p["withdrawn"].add(t.address)
        share = p["reward"] * p["scores"][t.address] // p["total"] if p["total"] else 0
        assert ev["stake"] == p["trainers"][t.address]
        assert ev["reward"] == share, "paid more (or less) than its share"
        self.paid += ev["stake"] + ev["reward"]

    @rule(data=st.data())
    def reclaim(self, data) -> None:
        if not self.projects:
            return
        pid = data.draw(st.sampled_from(sorted(self.projects)))
        market = self.m(self.owner)
        receipt = self._try(lambda: market.reclaim(pid))
        if receipt is not None:
            ev = market.contract.events.RewardReclaimed().process_receipt(receipt)[0]["args"]
            p = self.projects[pid]
            owed = sum(p["reward"] * s // p["total"] for s in p["scores"].values() if p["total"])
            assert ev["amount"] <= p["reward"] - owed, "owner took trainers' money"
            self.paid += ev["amount"]

    # ---------------------------------------------------------------- invariants

    @invariant()
    def balance_matches_escrow(self) -> None:
        if not hasattr(self, "chain"):
            return
        balance = self.chain.w3.eth.get_balance(shared().market_address)
        assert balance == self.deposited - self.paid


def _run(examples: int, steps: int) -> None:
    MarketMachine.TestCase.settings = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    MarketMachine.TestCase().runTest()


def test_money_invariants_hold_for_random_sequences() -> None:
    _run(examples=200, steps=12)


@pytest.mark.slow
def test_money_invariants_hold_for_long_random_sequences() -> None:
    _run(examples=1000, steps=40)
