"""One project's event logs of a contract, each block range read once per process.

Why: eth-tester's ``get_logs`` reads every receipt in its range, and 20 trainers'
withdrawals each scanning from block 0 took 228 of 257 s of a 3-round simulation. Every
reader of per-project events (the market's, the round verifier's) goes through
:func:`project_logs`, so a view polled every few seconds, or a node's loop, costs only
the blocks mined since its last read.
"""

from __future__ import annotations

from typing import Any

# (contract address, event name, project id) -> (first block, last block scanned, that
# block's hash, the logs)
_EVENT_LOGS: dict[tuple[str, str, int], tuple[int, int, bytes, list[Any]]] = {}


def project_logs(
    contract: Any, event: str, project_id: int, from_block: int = 0, round_: int | None = None
) -> list[Any]:
    """``event``'s logs of ``contract`` (a web3 contract whose event has an indexed
    ``projectId``) for one project from ``from_block``, reading only the blocks this
    process has not read yet. The cache is trusted only while the last block it scanned
    still has the hash it had (a reorg, or another chain at this address, rescans).
    ``round_``: only that round's logs (events with a ``round`` argument)."""
    w3 = contract.w3
    key = (contract.address, event, project_id)
    latest = int(w3.eth.block_number)
    start, scanned, seen_hash, logs = _EVENT_LOGS.get(key, (from_block, -1, b"", []))
    if start > from_block or (
        scanned >= 0 and (scanned > latest or bytes(w3.eth.get_block(scanned)["hash"]) != seen_hash)
    ):
        start, scanned, logs = from_block, -1, []
    if latest > scanned:
        logs = logs + list(
            getattr(contract.events, event)().get_logs(
                from_block=max(start, scanned + 1),
                to_block=latest,
                argument_filters={"projectId": project_id},
            )
        )
        scanned = latest
        _EVENT_LOGS[key] = (start, scanned, bytes(w3.eth.get_block(scanned)["hash"]), logs)
    return [
        log
        for log in logs
        if int(log["blockNumber"]) >= from_block
        and (round_ is None or int(log["args"]["round"]) == round_)
    ]
