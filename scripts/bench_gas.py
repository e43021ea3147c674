"""Gas of every ContributionMarket function on the embedded chain (py-evm, Prague rules).

Prints a table and writes ``benchmarks/results/gas.json`` rows
``{"function", "trainers", "n", "gas", "payer"}``. ``trainers`` is the number of trainers
in the project, ``n`` the number of entries a batched call carries (else ``trainers``);
``payer`` says who sends the transaction (``trainer`` rows are what one trainer pays per
round). A round is commit-then-reveal-then-attest: each trainer sends ``commitUpdate`` (or
signs it for ``commitUpdatesSigned``), then its opening with ``revealUpdates`` (alone, or
batched by anyone), and after the aggregator's ``commitRound`` its ``attestRound`` (the
project is attested; the settling attestation here also replaces the aggregator's root
and slashes its bond, the most expensive path). Every transaction must stay under
EIP-7825's cap of 2^24 = 16,777,216 gas.

Every size is measured (no fit). One trainer of each project stakes more than all the
others together, so its single attestation settles the round: the per-trainer gas of
``attestRound`` does not depend on how many trainers attest before a majority.
``--merge`` keeps the JSON's rows of the sizes not measured in this run (so 4,096 trainers,
~4,200 transactions, can run on its own).

Usage: python scripts/bench_gas.py [--sizes 10,100,1000,4096] [--merge]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from marketplace.chain.connection import connect_embedded
from marketplace.chain.deploy import deploy_all
from marketplace.chain.market import MarketClient, Opening, RoundScores, ScoreClaim
from marketplace.chain.merkle import ScoreTree
from marketplace.chain.tx import TxSender

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "gas.json"
STAKE = 10**16
BOND = 10**17
TX_GAS_CAP = 2**24
BATCH = 200  # entries per batched commit / reveal transaction
WITHDRAW_ALL = 100  # up to this n every trainer withdraws (then the owner reclaims)
WITHDRAW_SAMPLE = 10


def _opening(address: str, i: int) -> Opening:
    return Opening(address, (i + 1).to_bytes(32, "big"), b"\x22" * 32, b"\x33" * 32)


def measure(sizes: list[int], on_size: Callable[[list[dict]], None] | None = None) -> list[dict]:
    """Rows for every size; ``on_size(rows so far)`` after each (the JSON is written as the
    run goes, so a long run keeps what it measured)."""
    chain = connect_embedded(accounts=max(sizes) + 2)  # funded at genesis: no transfers
    owner, aggregator = chain.dev_account(0), chain.dev_account(1)
    funder = TxSender(chain, owner)
    manifest = deploy_all(funder)
    gas = manifest.contracts["ContributionMarket"].gas_used
    rows = [{"function": "deploy", "trainers": 0, "n": 0, "gas": gas, "payer": "deployer"}]
    market = MarketClient(chain, manifest.address("ContributionMarket"), owner)
    agg = market.as_account(aggregator)
    for n in sizes:
        began = time.perf_counter()

        def row(
            function: str, gas: int, payer: str, entries: int = 0, size: int = n, **extra: object
        ) -> None:
            entry = {"function": function, "trainers": size, "n": entries or size}
            rows.append(entry | {"gas": gas, "payer": payer} | extra)

        pid, receipt = market.create_project(
            reward=10**18,
            aggregator=aggregator.address,
            rounds=1,
            round_duration=86_400,  # registering thousands of trainers takes a while here
            min_stake=STAKE,
            aggregator_bond=BOND,
            attested=True,
        )
        row("createProject", receipt["gasUsed"], "owner")
        agg.post_bond(pid, BOND)
        trainers = [chain.dev_account(i + 2) for i in range(n)]
        # trainer 0 outweighs the others: its attestation alone is a stake-majority
        stakes = [STAKE * n] + [STAKE] * (n - 1)
        register_gas = [
            market.as_account(t).register(pid, stake)["gasUsed"]
            for t, stake in zip(trainers, stakes, strict=True)
        ]
        row("register", register_gas[-1], "trainer")
        openings = [_opening(t.address, i) for i, t in enumerate(trainers)]
        direct = market.as_account(trainers[0]).commit_update(
            pid, 1, openings[0].commitment(pid, 1)
        )
        row("commitUpdate", direct["gasUsed"], "trainer")
        batches = []
        for start in range(1, n, BATCH):
            signed = [
                market.sign_update(t, pid, 1, o.commitment(pid, 1))
                for t, o in zip(
                    trainers[start : start + BATCH], openings[start : start + BATCH], strict=True
                )
            ]
            batches.append((len(signed), agg.commit_updates_signed(pid, 1, signed)["gasUsed"]))
        if batches:
            k, g = max(batches)
            row("commitUpdatesSigned", g, "aggregator", k)
        single = market.as_account(trainers[0]).reveal_updates(pid, 1, openings[:1])
        row("revealUpdates", single["gasUsed"], "trainer", 1)
        batches = []
        for start in range(1, n, BATCH):
            part = openings[start : start + BATCH]
            batches.append((len(part), agg.reveal_updates(pid, 1, part)["gasUsed"]))
        if batches:
            k, g = max(batches)
            row("revealUpdates", g, "anyone", k)
        committed = RoundScores(list(range(n)), [1_000_000 + i for i in range(n)])
        round_receipt = agg.commit_round(
            pid,
            1,
            global_model_cid=b"\x33" * 32,
            inlier_mask=[True] * n,
            scores=committed.scores,
            report_cid=b"\x44" * 32,
        )
        row("commitRound", round_receipt["gasUsed"], "aggregator")
        # the trainers' replay gives other scores: they replace the aggregator's root
        replayed = RoundScores(committed.inliers, [s + 7 for s in committed.scores])
        if n > 1:
            vote = market.as_account(trainers[1]).attest_round(pid, 1, committed)
            row("attestRound", vote["gasUsed"], "trainer", case="a vote")
        settle = market.as_account(trainers[0]).attest_round(pid, 1, replayed)
        row("attestRound", settle["gasUsed"], "trainer", case="settles, replaces, slashes")
        row("finalize", agg.finalize(pid)["gasUsed"], "any")
        # withdraw is O(1) in n (plus one proof per round): measure a sample of trainers;
        # the owner's reclaim needs every trainer gone, so it is measured at small n only
        sample = trainers if n <= WITHDRAW_ALL else trainers[:WITHDRAW_SAMPLE]
        tree = ScoreTree.of_scores(replayed.inliers, replayed.scores)
        withdraws = [
            market.as_account(t).withdraw(
                pid, [ScoreClaim(1, i, replayed.scores[i], tree.proof(i))]
            )["gasUsed"]
            for i, t in enumerate(sample)
        ]
        row("withdraw", max(withdraws), "trainer")
        if n <= WITHDRAW_ALL:
            row("reclaim", market.reclaim(pid)["gasUsed"], "owner")
        print(f"{n} trainers measured in {time.perf_counter() - began:,.0f} s", flush=True)
        if on_size is not None:
            on_size(rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000,4096")
    parser.add_argument("--merge", action="store_true", help="keep the JSON's rows of other sizes")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    kept: list[dict] = []
    if args.merge and RESULTS.exists():
        kept = [
            r
            for r in json.loads(RESULTS.read_text())
            if "trainers" in r and r["trainers"] not in sizes and r["function"] != "deploy"
        ]

    def ordered(rows: list[dict]) -> list[dict]:
        return sorted(kept + rows, key=lambda r: r["trainers"])

    def save(rows: list[dict]) -> None:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(ordered(rows), indent=2) + "\n")

    rows = ordered(measure(sizes, save))
    table = Table(title="ContributionMarket gas (embedded py-evm)")
    for col in ("function", "trainers", "entries", "payer", "gas", "per entry", "under 2^24"):
        table.add_column(col, justify="right")
    for r in rows:
        batched = r["payer"] in ("aggregator", "anyone") and r["n"] > 1
        per = f"{r['gas'] / r['n']:,.0f}" if batched else ""
        fits = "yes" if r["gas"] < TX_GAS_CAP else "NO"
        name = r["function"] + (f" ({r['case']})" if "case" in r else "")
        table.add_row(name, str(r["trainers"]), str(r["n"]), r["payer"], f"{r['gas']:,}", per, fits)
    console = Console(width=140)
    console.print(table)
    rounds = {r["trainers"]: r["gas"] for r in rows if r["function"] == "commitRound"}
    if len(rounds) >= 2:
        (n0, g0), (n1, g1) = min(rounds.items()), max(rounds.items())
        slope = (g1 - g0) / (n1 - n0)
        console.print(
            f"commitRound: {slope:,.0f} gas per extra trainer, base {g0 - slope * n0:,.0f}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
