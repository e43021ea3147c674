"""One serving process per source: a second holder of the same source's lock is refused
(with the holder's pid), another source or a released lock is not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from drag.source_lock import SourceLock
from marketplace.errors import DragError

REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def test_a_second_server_of_one_source_is_refused_naming_the_holder(tmp_path: Path) -> None:
    with SourceLock(tmp_path, 31337, REGISTRY, 3):
        with pytest.raises(DragError, match=rf"source 3 is already served.*pid {os.getpid()}"):
            SourceLock(tmp_path, 31337, REGISTRY.lower(), 3).acquire()
        # another source, or the same id on another registry, is another lock
        with SourceLock(tmp_path, 31337, REGISTRY, 4), SourceLock(tmp_path, 1, REGISTRY, 3):
            pass


def test_the_lock_is_free_again_once_released(tmp_path: Path) -> None:
    first = SourceLock(tmp_path, 31337, REGISTRY, 3).acquire()
    first.release()
    with SourceLock(tmp_path, 31337, REGISTRY, 3) as again:
        assert again.path.read_text().strip() == str(os.getpid())
