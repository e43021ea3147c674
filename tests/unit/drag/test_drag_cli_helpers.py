"""Pure helpers behind the dRAG commands, and the caching embedder the simulations use."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from drag.embed import CachedEmbedder
from marketplace.chain.registry import SourceInfo
from marketplace.cli.drag_cmds import _find_source_id, default_index_dir, feedback_queue_path
from marketplace.errors import ConfigError

ME = "0x" + "11" * 20
OTHER = "0x" + "22" * 20


def _info(sid: int, signer: str, active: bool = True) -> SourceInfo:
    return SourceInfo(sid, OTHER, signer, active, 0, 0, 10**6, 0, bytes(32), "http://x")


def test_source_id_is_found_by_signer_or_checked() -> None:
    rows = [_info(1, OTHER), _info(2, ME), _info(3, ME, active=False)]
    assert _find_source_id(rows, ME, None) == 2
    assert _find_source_id(rows, ME, 3) == 3
    with pytest.raises(ConfigError, match="registered with signer"):
        _find_source_id(rows, ME, 1)
    with pytest.raises(ConfigError, match="not registered"):
        _find_source_id(rows, ME, 9)
    with pytest.raises(ConfigError, match="source register"):
        _find_source_id(rows[:1], ME, None)
    with pytest.raises(ConfigError, match="--source-id"):
        _find_source_id([*rows, _info(4, ME)], ME, None)


def test_state_lives_under_home_not_in_the_docs(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    assert default_index_dir(docs) == default_index_dir(tmp_path / "x" / ".." / "docs")
    assert docs not in default_index_dir(docs).parents
    path = feedback_queue_path(31337, "0xAbC", ME)
    assert path.name == f"feedback-31337-0xabc-{ME}.jsonl" and "drag" in path.parts
    assert feedback_queue_path(31337, "0xAbC", OTHER) != path  # one queue per account


class _Counting:
    name = "counting"
    dim = 2

    def __init__(self) -> None:
        self.seen: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.seen.extend(texts)
        return np.asarray([[len(t), 1.0] for t in texts], dtype=np.float32)


def test_cached_embedder_embeds_each_text_once() -> None:
    inner = _Counting()
    cached = CachedEmbedder(inner, max_items=3)
    first = cached.embed(["a", "bb", "a"])
    assert inner.seen == ["a", "bb"] and first.shape == (3, 2) and first[2, 0] == 1
    second = cached.embed(["bb", "ccc", "dddd"])  # overflows the cache: still correct
    assert inner.seen == ["a", "bb", "ccc", "dddd"]
    assert second[:, 0].tolist() == [2, 3, 4]
    assert cached.name == "counting" and cached.embed([]).shape == (0, 2)
