"""Measure the gas of ``SourceRegistry.applyFeedback`` per authenticated update.

Reference: Reliable-dRAG (Lu et al. 2025) spends 71,277 gas for one update and 628,048 for
20 (31,402 per update) with no replay protection. Here every update carries the source's
EIP-712 receipt (ecrecover) and is replay-proof.

Setup: 6 sources on the embedded chain (py-evm, Prague rules). For each batch size k the
updates go round-robin over the sources, with fresh nonces and random query ids, mixed-sign
deltas within the per-query cap. Each size is measured after a warm-up batch, so each
source's reputation slot is already non-zero, as it is in steady state (it is non-zero from
registration on anyway). Reported: the whole transaction's gas (21,000 base included),
``gas / k``, ``(gas - 21000) / k`` and the marginal ``(gas(k) - gas(1)) / (k - 1)``.

Run: ``.venv/bin/python scripts/bench_registry_gas.py [--sources 6] [--out PATH]``
"""

from __future__ import annotations

import argparse
import json
import logging
import random
from pathlib import Path

from eth_account import Account
from eth_utils import keccak

from marketplace.chain.connection import connect_embedded
from marketplace.chain.deploy import DEFAULT_SOURCE_STAKE, deploy_contract
from marketplace.chain.registry import FeedbackUpdate, RegistryClient
from marketplace.chain.tx import TxSender

logger = logging.getLogger("bench_registry_gas")

BATCHES = (1, 5, 10, 20, 50)
PAPER_PER_UPDATE = 31_402
TX_BASE_GAS = 21_000
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "registry_gas.json"


class Bench:
    """A deployed registry with ``n_sources`` sources and an evaluator."""

    def __init__(self, n_sources: int, seed: int) -> None:
        chain = connect_embedded()
        admin = chain.dev_account(0)
        address = deploy_contract(
            TxSender(chain, admin), "SourceRegistry", DEFAULT_SOURCE_STAKE
        ).address
        self.registry = RegistryClient(chain, address, admin)
        # Each source: owned by a dev account, receipts signed by its own derived key.
        self.keys = [keccak(text=f"bench source {i}") for i in range(n_sources)]
        self.ids = []
        for i, key in enumerate(self.keys):
            owner = self.registry.as_account(chain.dev_account(1 + i % 8))
            signer = Account.from_key(key).address
            sid, _ = owner.register_source(signer, f"http://127.0.0.1:{9000 + i}")
            self.ids.append(sid)
        evaluator = chain.dev_account(9)
        self.registry.grant_evaluator(evaluator.address)
        self.evaluator = self.registry.as_account(evaluator)
        self.nonces = [0] * n_sources
        self.rng = random.Random(seed)

    def batch(self, k: int) -> list[FeedbackUpdate]:
        """``k`` signed updates, round-robin over the sources."""
        out = []
        for j in range(k):
            i = j % len(self.ids)
            self.nonces[i] += 1
            qid = self.rng.randbytes(32)
            phash = self.rng.randbytes(32)
            sig = self.registry.sign_receipt(self.keys[i], self.ids[i], self.nonces[i], qid, phash)
            rel = self.rng.randint(-(10**6), 10**6)
            use = self.rng.randint(-50_000, 10**6)
            out.append(FeedbackUpdate(self.ids[i], self.nonces[i], qid, phash, rel, use, sig))
        return out

    def gas(self, k: int) -> int:
        self.evaluator.apply_feedback(self.batch(k))  # warm-up: same state as steady use
        receipt = self.evaluator.apply_feedback(self.batch(k))
        return int(receipt["gasUsed"])


def measure(n_sources: int = 6, seed: int = 0) -> list[dict[str, float | int]]:
    """One row per batch size: total gas and the three per-update figures."""
    bench = Bench(n_sources, seed)
    totals = {k: bench.gas(k) for k in BATCHES}
    rows: list[dict[str, float | int]] = []
    for k in BATCHES:
        marginal = (totals[k] - totals[1]) / (k - 1) if k > 1 else float(totals[1])
        rows.append(
            {
                "batch": k,
                "sources": n_sources,
                "gas": totals[k],
                "gas_per_update": round(totals[k] / k, 1),
                "gas_per_update_without_tx_base": round((totals[k] - TX_BASE_GAS) / k, 1),
                "marginal_gas_per_update": round(marginal, 1),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = measure(args.sources, args.seed)
    logger.info(
        "%6s %10s %12s %20s %17s", "batch", "gas", "gas/update", "(gas-21000)/update", "marginal"
    )
    for r in rows:
        logger.info(
            "%6d %10d %12.1f %20.1f %17.1f",
            r["batch"],
            r["gas"],
            r["gas_per_update"],
            r["gas_per_update_without_tx_base"],
            r["marginal_gas_per_update"],
        )
    logger.info("Reliable-dRAG reference: %d gas per update at batch 20", PAPER_PER_UPDATE)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    logger.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
