"""The source's nonce ledger: monotone, durable across reopen and crash (skipping the rest of
the reserved block), one fsync per block, refuses repeated query ids, and recovers from a
torn last record."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from drag.nonces import LEDGER_FILE, RECORD_SIZE, RESERVED_FILE, NonceBoundReached, NonceLedger
from marketplace.errors import ConfigError, DragError, QueryIdReused


def _qid(i: int) -> bytes:
    return i.to_bytes(32, "big")


def test_nonces_count_up_and_survive_reopening(tmp_path: Path) -> None:
    ledger = NonceLedger(tmp_path)
    assert [ledger.issue(_qid(i)) for i in range(3)] == [1, 2, 3]
    ledger.close()
    reopened = NonceLedger(tmp_path)
    assert reopened.last == 3 and len(reopened) == 3 and _qid(1) in reopened
    assert reopened.issue(_qid(9)) == 4
    with pytest.raises(QueryIdReused, match="already answered"):
        reopened.issue(_qid(1))
    assert reopened.last == 4  # a refused query burns no nonce


def test_a_torn_record_is_cut_off(tmp_path: Path) -> None:
    ledger = NonceLedger(tmp_path)
    ledger.issue(_qid(1))
    ledger.close()
    with (tmp_path / LEDGER_FILE).open("ab") as f:
        f.write(b"\x00" * 17)  # a crash in the middle of the second record
    reopened = NonceLedger(tmp_path)
    assert (tmp_path / LEDGER_FILE).stat().st_size == RECORD_SIZE
    assert reopened.issue(_qid(2)) == 2


def test_concurrent_issues_get_distinct_nonces(tmp_path: Path) -> None:
    ledger = NonceLedger(tmp_path, fsync=False)
    got: list[int] = []

    def work(base: int) -> None:
        got.extend(ledger.issue(_qid(base + i)) for i in range(50))

    threads = [threading.Thread(target=work, args=(1000 * t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 201))


def test_bad_query_id_length(tmp_path: Path) -> None:
    with pytest.raises(DragError, match="32 bytes"):
        NonceLedger(tmp_path).issue(b"short")


def test_a_crash_skips_the_rest_of_the_reserved_block(tmp_path: Path) -> None:
    """No close() (a crash): the next node starts above the reservation, never reusing a
    nonce that may have been signed; a clean close gives the rest of the block back."""
    crashed = NonceLedger(tmp_path, block=8)
    assert [crashed.issue(_qid(i)) for i in range(3)] == [1, 2, 3]
    assert int.from_bytes((tmp_path / RESERVED_FILE).read_bytes(), "big") == 8
    del crashed
    after_crash = NonceLedger(tmp_path, block=8)
    assert after_crash.last == 8 and _qid(2) in after_crash
    assert after_crash.issue(_qid(10)) == 9
    after_crash.close()
    assert NonceLedger(tmp_path, block=8).issue(_qid(11)) == 10


def test_one_fsync_pair_per_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = NonceLedger(tmp_path, block=16)
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    nonces = [ledger.issue(_qid(i)) for i in range(40)]
    assert nonces == list(range(1, 41))
    assert len(calls) == 2 * 3  # log + reservation at nonces 1, 17 and 33
    with pytest.raises(ConfigError, match="reserve at least one"):
        NonceLedger(tmp_path / "x", block=0)


def test_a_second_process_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    """Two source processes on one index folder would hand out the same nonces."""
    import subprocess
    import sys

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom drag.nonces import NonceLedger\n"
            "ledger = NonceLedger(sys.argv[1], fsync=False)\nprint('held', flush=True)\n"
            "time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(DragError, match="another process"):
            NonceLedger(tmp_path, fsync=False)
    finally:
        holder.kill()
        holder.wait()
    NonceLedger(tmp_path, fsync=False).close()  # the lock died with the process


def test_the_log_is_compacted_to_the_newest_query_ids(tmp_path: Path) -> None:
    ledger = NonceLedger(tmp_path, fsync=False, keep=3)
    nonces = [ledger.issue(_qid(i)) for i in range(10)]
    assert nonces == list(range(1, 11))
    size = (tmp_path / LEDGER_FILE).stat().st_size
    assert size < 2 * 3 * RECORD_SIZE  # compacted at 6 records, never 10
    with pytest.raises(QueryIdReused):
        ledger.issue(_qid(9))  # recent: still refused
    assert _qid(0) not in ledger  # forgotten: its receipt nonce 1 is long out of the window
    assert ledger.issue(_qid(0)) == 11  # a fresh nonce, never an old one
    ledger.close()
    reopened = NonceLedger(tmp_path, fsync=False, keep=3)
    assert reopened.last == 11 and _qid(0) in reopened
    assert reopened.issue(_qid(20)) == 12


def test_an_oversized_log_is_compacted_on_open(tmp_path: Path) -> None:
    ledger = NonceLedger(tmp_path, fsync=False)
    for i in range(8):
        ledger.issue(_qid(i))
    ledger.close()
    smaller = NonceLedger(tmp_path, fsync=False, keep=2)
    assert len(smaller) == 2 and smaller.last == 8
    assert (tmp_path / LEDGER_FILE).stat().st_size == 2 * RECORD_SIZE
    assert not list(tmp_path.glob("*.compact"))
    assert smaller.issue(_qid(0)) == 9
    with pytest.raises(ConfigError, match="keep=0"):
        NonceLedger(tmp_path / "other", keep=0)


def test_nonces_stay_within_the_registrys_step_bound(tmp_path: Path) -> None:
    """Issued nonces are strictly increasing and never beyond the ceiling (the source's
    highest applied nonce + MAX_NONCE_STEP), which is re-read only when it is reached."""
    reads: list[int] = []
    bound = {"value": 3}

    def ceiling() -> int:
        reads.append(bound["value"])
        return bound["value"]

    ledger = NonceLedger(tmp_path, fsync=False, ceiling=ceiling)
    assert [ledger.issue(_qid(i)) for i in range(3)] == [1, 2, 3]
    assert reads == [3]  # read once, cached while the nonces stay below it
    with pytest.raises(NonceBoundReached, match="MAX_NONCE_STEP"):
        ledger.issue(_qid(3))
    assert ledger.last == 3 and _qid(3) not in ledger  # nothing issued, nothing recorded
    bound["value"] = 10  # feedback landed: the bound moved up
    assert ledger.issue(_qid(3)) == 4 and reads == [3, 3, 10]
