"""Gas of every ContributionMarket function on the embedded chain (py-evm, Prague rules).

Prints a table and writes ``benchmarks/results/gas.json`` rows
``{"function", "n", "gas", "payer"}``. ``n`` is the number of trainers in the project
(for the batched calls: the number of entries in the batch); ``payer`` says who sends
the transaction (``trainer`` rows are what one trainer pays per round). A round is
commit-then-reveal: each trainer sends ``commitUpdate`` (or signs it for
``commitUpdatesSigned``), then its opening with ``revealUpdates`` (alone, or batched by
anyone). Every transaction must stay under EIP-7825's cap of 2^24 = 16,777,216 gas.

Sizes too large to register here in reasonable time (4,096 trainers are ~12k
transactions on py-evm) are given by ``--fit-to``: an affine fit ``base + n * slope`` of
the measured rows of each size-dependent transaction (``commitRound`` and the batched
commit / reveal per 200 entries), written with ``"extrapolated": true``. ``--fit-only``
redoes that on the rows already in the JSON, without a chain.

Usage: python scripts/bench_gas.py [--sizes 10,100,1000] [--fit-to 4096] [--fit-only]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from marketplace.chain.connection import connect_embedded
from marketplace.chain.deploy import deploy_all
from marketplace.chain.market import MarketClient, Opening, ScoreClaim
from marketplace.chain.merkle import ScoreTree
from marketplace.chain.tx import TxSender

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "gas.json"
STAKE = 10**16
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
    rows = [
        {
            "function": "deploy",
            "n": 0,
            "gas": manifest.contracts["ContributionMarket"].gas_used,
            "payer": "deployer",
        }
    ]
    market = MarketClient(chain, manifest.address("ContributionMarket"), owner)
    agg = market.as_account(aggregator)
    for n in sizes:
        pid, receipt = market.create_project(
            reward=10**18,
            aggregator=aggregator.address,
            rounds=1,
            round_duration=86_400,  # registering thousands of trainers takes a while here
            min_stake=STAKE,
        )
        rows.append(
            {"function": "createProject", "n": n, "gas": receipt["gasUsed"], "payer": "owner"}
        )
        trainers = [chain.dev_account(i + 2) for i in range(n)]
        register_gas = [market.as_account(t).register(pid, STAKE)["gasUsed"] for t in trainers]
        rows.append({"function": "register", "n": n, "gas": register_gas[-1], "payer": "trainer"})
        openings = [_opening(t.address, i) for i, t in enumerate(trainers)]
        direct = market.as_account(trainers[0]).commit_update(
            pid, 1, openings[0].commitment(pid, 1)
        )
        rows.append(
            {"function": "commitUpdate", "n": n, "gas": direct["gasUsed"], "payer": "trainer"}
        )
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
            rows.append(
                {"function": "commitUpdatesSigned", "n": k, "gas": g, "payer": "aggregator"}
            )
        single = market.as_account(trainers[0]).reveal_updates(pid, 1, openings[:1])
        rows.append(
            {"function": "revealUpdates", "n": 1, "gas": single["gasUsed"], "payer": "trainer"}
        )
        batches = []
        for start in range(1, n, BATCH):
            part = openings[start : start + BATCH]
            batches.append((len(part), agg.reveal_updates(pid, 1, part)["gasUsed"]))
        if batches:
            k, g = max(batches)
            rows.append({"function": "revealUpdates", "n": k, "gas": g, "payer": "anyone"})
        scores = [1_000_000 + i for i in range(n)]
        round_receipt = agg.commit_round(
            pid,
            1,
            global_model_cid=b"\x33" * 32,
            inlier_mask=[True] * n,
            scores=scores,
            report_cid=b"\x44" * 32,
        )
        rows.append(
            {
                "function": "commitRound",
                "n": n,
                "gas": round_receipt["gasUsed"],
                "payer": "aggregator",
            }
        )
        rows.append(
            {"function": "finalize", "n": n, "gas": agg.finalize(pid)["gasUsed"], "payer": "any"}
        )
        # withdraw is O(1) in n (plus one proof per round): measure a sample of trainers;
        # the owner's reclaim needs every trainer gone, so it is measured at small n only
        sample = trainers if n <= WITHDRAW_ALL else trainers[:WITHDRAW_SAMPLE]
        tree = ScoreTree.of_scores(list(range(n)), scores)
        withdraws = [
            market.as_account(t).withdraw(pid, [ScoreClaim(1, i, scores[i], tree.proof(i))])[
                "gasUsed"
            ]
            for i, t in enumerate(sample)
        ]
        rows.append({"function": "withdraw", "n": n, "gas": max(withdraws), "payer": "trainer"})
        if n <= WITHDRAW_ALL:
            gas = market.reclaim(pid)["gasUsed"]
            rows.append({"function": "reclaim", "n": n, "gas": gas, "payer": "owner"})
        if on_size is not None:
            on_size(rows)
    return rows


def extrapolate(rows: list[dict], targets: list[int]) -> list[dict]:
    """Affine fits (least squares over the measured sizes) of ``commitRound`` to each target
    n not measured; the batched calls are bounded by ``BATCH`` entries whatever n."""
    measured = {r["n"]: r["gas"] for r in rows if r["function"] == "commitRound"}
    out: list[dict] = []
    if len(measured) < 2:
        return out
    ns, gs = list(measured), list(measured.values())
    mean_n, mean_g = sum(ns) / len(ns), sum(gs) / len(gs)
    slope = sum((n - mean_n) * (g - mean_g) for n, g in zip(ns, gs, strict=True)) / sum(
        (n - mean_n) ** 2 for n in ns
    )
    base = mean_g - slope * mean_n
    for n in targets:
        if n not in measured:
            gas = round(base + slope * n)
            out.append(
                {
                    "function": "commitRound",
                    "n": n,
                    "gas": gas,
                    "payer": "aggregator",
                    "extrapolated": True,
                }
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--fit-to", default="4096", help="sizes to extrapolate to (comma list)")
    parser.add_argument("--fit-only", action="store_true", help="refit the JSON's rows only")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    def save(rows: list[dict]) -> None:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(rows, indent=2) + "\n")

    if args.fit_only:
        rows = [r for r in json.loads(RESULTS.read_text()) if not r.get("extrapolated")]
    else:
        rows = measure(sizes, save)
    rows += extrapolate(rows, [int(s) for s in args.fit_to.split(",") if s])
    table = Table(title="ContributionMarket gas (embedded py-evm)")
    for col in ("function", "n", "payer", "gas", "per entry", "under 2^24"):
        table.add_column(col, justify="right")
    for r in rows:
        batched = r["payer"] in ("aggregator", "anyone") and r["n"] > 1
        per = f"{r['gas'] / r['n']:,.0f}" if batched else ""
        fits = "yes" if r["gas"] < TX_GAS_CAP else "NO"
        n = f"{r['n']} (fit)" if r.get("extrapolated") else str(r["n"])
        table.add_row(r["function"], n, r["payer"], f"{r['gas']:,}", per, fits)
    console = Console()
    console.print(table)
    rounds = {r["n"]: r["gas"] for r in rows if r["function"] == "commitRound"}
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
