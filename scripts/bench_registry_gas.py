"""Measure the gas of ``SourceRegistry.applyFeedback`` per authenticated update, and
of listing 10,000 sources page by page (``scores(offset, limit)``).

Reference: Reliable-dRAG (Lu et al. 2025) spends 71,277 gas for one update and 628,048 for
20 (31,402 per update) with no replay protection. Here every update carries the source's
EIP-712 receipt (ecrecover) and is replay-proof.

Setup: 6 sources on the embedded chain (py-evm, Prague rules). For each batch size k the
updates go round-robin over the sources, with fresh nonces and random query ids, mixed-sign
deltas within the per-query cap. Each size is measured after a warm-up batch, so each
source's reputation slot is already non-zero, as it is in steady state (it is non-zero from
registration on anyway). Reported: the whole transaction's gas (21,000 base included),
``gas / k``, ``(gas - 21000) / k`` and the marginal ``(gas(k) - gas(1)) / (k - 1)``. Replay
protection is kept per (source, evaluator) lane, one storage slot each: the first batch of
a new evaluator pays for creating its lanes, so that case is reported too
(``new_evaluator_batch_20``).

Paging: ``--paging N`` sources (default 10,000) are written straight into the embedded
chain's state (:func:`marketplace.chain.registry_seed.seed_sources`; registering them one
transaction at a time would take ~12 minutes of py-evm), once with a short endpoint and
once with the longest one allowed (256 bytes: the worst case per row, what a Sybil would
choose), then :meth:`RegistryClient.all_scores` reads them in pages of ``MAX_PAGE``. Per
page: the gas of the call (executed once, as ``eth_call`` runs it, intrinsic gas
included), against the 30M eth_call cap of common nodes; and the wall time of the whole
listing on py-evm (a real node is much faster). The gas of one call over all sources (what
the removed ``allScores`` needed) is the sum of the pages.

Run: ``.venv/bin/python scripts/bench_registry_gas.py [--sources 6] [--paging 10000]
[--out PATH]``
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils import keccak, to_canonical_address

from drag.receipts import ReceiptDomain, sign_digest
from marketplace.chain.connection import connect_embedded
from marketplace.chain.deploy import DEFAULT_SOURCE_STAKE, deploy_contract
from marketplace.chain.registry import MAX_PAGE, FeedbackUpdate, RegistryClient
from marketplace.chain.registry_seed import seed_sources
from marketplace.chain.tx import TxSender

logger = logging.getLogger("bench_registry_gas")

BATCHES = (1, 5, 10, 20, 50)
PAPER_PER_UPDATE = 31_402
TX_BASE_GAS = 21_000
CALL_GAS_CAP = 30_000_000
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
        newcomer = chain.dev_account(8)
        self.registry.grant_evaluator(newcomer.address)
        self.newcomer = self.registry.as_account(newcomer)
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
            domain = ReceiptDomain(self.registry.chain.chain_id, self.registry.address)
            sig = sign_digest(self.keys[i], domain, self.ids[i], self.nonces[i], qid, phash)
            rel = self.rng.randint(-(10**6), 10**6)
            use = self.rng.randint(-50_000, 10**6)
            out.append(FeedbackUpdate(self.ids[i], self.nonces[i], qid, phash, rel, use, sig))
        return out

    def gas(self, k: int) -> int:
        self.evaluator.apply_feedback(self.batch(k))  # warm-up: same state as steady use
        receipt = self.evaluator.apply_feedback(self.batch(k))
        return int(receipt["gasUsed"])

    def gas_new_evaluator(self, k: int) -> int:
        """A batch from an evaluator that never submitted before (its lanes are created)."""
        return int(self.newcomer.apply_feedback(self.batch(k))["gasUsed"])


def call_gas(registry: RegistryClient, fn: Any) -> int:
    """Gas one ``eth_call`` of ``fn`` uses (intrinsic included), from one py-evm execution
    (``estimate_gas`` would binary-search over ~25 executions)."""
    from eth_tester.backends.pyevm.main import EVMSpoofTransaction, _execute_and_revert_transaction

    backend = registry.chain.tester.backend
    sender = to_canonical_address(registry.chain.dev_account(0).address)
    tx = {
        "from": sender,
        "to": to_canonical_address(registry.address),
        "data": bytes.fromhex(fn._encode_transaction_data()[2:]),
        "gas": CALL_GAS_CAP * 10,
        "value": 0,
    }
    unsigned = backend._get_normalized_and_unsigned_evm_transaction(tx, "latest")
    computation = _execute_and_revert_transaction(
        backend.chain, EVMSpoofTransaction(unsigned, from_=sender), "latest"
    )
    if computation.is_error:
        raise RuntimeError(f"scores call failed: {computation.error}")
    return int(tx["gas"] - computation.get_gas_remaining())


def measure_paging(n_sources: int, endpoint: str) -> dict[str, Any]:
    """Seed ``n_sources`` sources with ``endpoint``; gas per page and time of the listing."""
    chain = connect_embedded()
    admin = chain.dev_account(0)
    address = deploy_contract(TxSender(chain, admin), "SourceRegistry", 0).address
    registry = RegistryClient(chain, address, admin)
    registry.register_source(admin.address, endpoint)
    seed_sources(registry, n_sources - 1, admin.address, admin.address, endpoint)
    start = time.perf_counter()
    rows = registry.all_scores()
    list_s = time.perf_counter() - start
    assert len(rows) == n_sources and rows[-1].endpoint == endpoint
    page_gas = [
        call_gas(registry, registry.contract.functions.scores(offset, MAX_PAGE))
        for offset in range(0, n_sources, MAX_PAGE)
    ]
    per_source = max(page_gas) / MAX_PAGE
    return {
        "sources": n_sources,
        "endpoint_bytes": len(endpoint),
        "page_size": MAX_PAGE,
        "pages": len(page_gas),
        "max_page_gas": max(page_gas),
        "gas_per_source": round(per_source, 1),
        "one_call_gas": sum(page_gas),
        "one_call_limit_sources": int(CALL_GAS_CAP // per_source),
        "list_all_s_pyevm": round(list_s, 2),
    }


def measure(n_sources: int = 6, seed: int = 0) -> list[dict[str, float | int]]:
    """One row per batch size: total gas and the three per-update figures."""
    bench = Bench(n_sources, seed)
    new_evaluator = bench.gas_new_evaluator(20)
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
    rows.append(
        {
            "batch": 20,
            "sources": n_sources,
            "case": "new_evaluator_batch_20",
            "gas": new_evaluator,
            "gas_per_update": round(new_evaluator / 20, 1),
            "gas_per_update_without_tx_base": round((new_evaluator - TX_BASE_GAS) / 20, 1),
        }
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--paging", type=int, default=10_000, help="sources to list (0: skip)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    rows = measure(args.sources, args.seed)
    logger.info(
        "%6s %10s %12s %20s %17s", "batch", "gas", "gas/update", "(gas-21000)/update", "marginal"
    )
    for r in rows:
        logger.info(
            "%6d %10d %12.1f %20.1f %17s %s",
            r["batch"],
            r["gas"],
            r["gas_per_update"],
            r["gas_per_update_without_tx_base"],
            r.get("marginal_gas_per_update", ""),
            r.get("case", ""),
        )
    logger.info("Reliable-dRAG reference: %d gas per update at batch 20", PAPER_PER_UPDATE)
    paging = []
    if args.paging:
        for endpoint in ("http://10.0.0.1:8600", "http://" + "s" * 249):
            paging.append(measure_paging(args.paging, endpoint))
            p = paging[-1]
            logger.info(
                "%d sources, %d-byte endpoints: %d pages of %d, <= %d gas per page "
                "(%.0f per source; one call: %d gas, over the 30M cap past %d sources), "
                "listed in %.1f s on py-evm",
                p["sources"],
                p["endpoint_bytes"],
                p["pages"],
                p["page_size"],
                p["max_page_gas"],
                p["gas_per_source"],
                p["one_call_gas"],
                p["one_call_limit_sources"],
                p["list_all_s_pyevm"],
            )
    out = {
        "apply_feedback": rows,
        "scores_paging": paging,
        "seconds": round(time.perf_counter() - start, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    logger.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
