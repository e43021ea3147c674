"""The replayed scores a trainer node keeps for claiming replaced rounds after it stops."""

from __future__ import annotations

from pathlib import Path

from marketplace.chain.market import RoundScores
from marketplace.nodes.attest import load_replayed, replay_record, save_replayed


def test_replayed_scores_round_trip_and_a_broken_record_is_ignored(tmp_path: Path) -> None:
    path = replay_record(tmp_path / "node")
    assert load_replayed(path) == {}
    scores = {1: RoundScores([0, 2], [5, 7]), 2: RoundScores([], [])}
    save_replayed(path, scores)
    assert load_replayed(path) == scores
    assert load_replayed(path)[1].root == scores[1].root
    path.write_text('{"1": {"inliers": [0]')  # cut short: claims would not prove anyway
    assert load_replayed(path) == {}
