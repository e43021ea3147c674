"""A SourceRegistry with sources and real signed feedback, shared by the view and dashboard
tests (pytest puts tests/ on the path)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from drag.receipts import ReceiptDomain, sign_digest
from marketplace.chain.registry import FeedbackUpdate, RegistryClient


def source_key(i: int) -> bytes:
    return keccak(text=f"dashboard source key {i}")


def register_sources(
    admin: RegistryClient, owners: Sequence[LocalAccount], endpoints: Sequence[str]
) -> list[int]:
    """Each owner registers one source (signing key ``source_key(i)``); their ids."""
    ids = []
    for i, (owner, endpoint) in enumerate(zip(owners, endpoints, strict=True)):
        signer = Account.from_key(source_key(i)).address
        sid, _ = admin.as_account(owner).register_source(signer, endpoint)
        ids.append(sid)
    return ids


def apply_batches(
    evaluator: RegistryClient,
    ids: Sequence[int],
    batches: Sequence[dict[int, int]],
    seed: int = 0,
    nonces: dict[int, int] | None = None,
) -> list[str]:
    """One ``applyFeedback`` transaction per batch; a batch maps a source's index in ``ids``
    to its fixed-point reliability delta. Each update carries the source's EIP-712 receipt
    with its next nonce (kept in ``nonces`` across calls). Returns the transaction hashes."""
    rng = random.Random(seed)
    nonces = {} if nonces is None else nonces
    hashes = []
    for batch in batches:
        updates = []
        for index, delta in batch.items():
            sid = ids[index]
            nonces[sid] = nonces.get(sid, 0) + 1
            qid, phash = rng.randbytes(32), rng.randbytes(32)
            domain = ReceiptDomain(evaluator.chain.chain_id, evaluator.address)
            sig = sign_digest(source_key(index), domain, sid, nonces[sid], qid, phash)
            updates.append(FeedbackUpdate(sid, nonces[sid], qid, phash, delta, 0, sig))
        receipt = evaluator.apply_feedback(updates)
        hashes.append("0x" + bytes(receipt["transactionHash"]).hex())
    return hashes
