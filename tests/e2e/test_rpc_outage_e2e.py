"""A real anvil node is stopped and restarted (state kept) while a client waits: the
connection rides out the outage and reads the chain as it was, with no exception."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from marketplace.chain.connection import connect
from marketplace.chain.node import free_port, start_anvil, stop

pytestmark = pytest.mark.e2e


def test_a_node_restart_is_ridden_out(tmp_path: Path) -> None:
    port, state = free_port(), tmp_path / "anvil-state.json"
    process, url = start_anvil(port, state)
    restarted: list[object] = []
    try:
        chain = connect(url, max_outage_s=60.0)
        sender, receiver = (chain.dev_account(i).address for i in (0, 1))
        tx = chain.w3.eth.send_transaction({"from": sender, "to": receiver, "value": 12345})
        chain.w3.eth.wait_for_transaction_receipt(tx)
        balance = chain.w3.eth.get_balance(receiver)
        stop(process)  # anvil writes its state file on SIGINT

        def restart() -> None:
            time.sleep(2.0)
            restarted.append(start_anvil(port, state)[0])

        thread = threading.Thread(target=restart)
        thread.start()
        start = time.monotonic()
        assert chain.w3.eth.get_balance(receiver) == balance  # waits, then resumes
        assert time.monotonic() - start > 1.5
        thread.join()
    finally:
        stop(process)
        for p in restarted:
            stop(p)  # type: ignore[arg-type]
