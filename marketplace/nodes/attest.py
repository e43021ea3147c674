"""A trainer's attestation of committed rounds: replay, then vote on the scores root.

Why: contribution scores are not covered by the ZK proof (it proves the inlier mask), so an
aggregator that also runs a trainer slot could score that slot ~100% (issue #13.7). In an
attested project (``ProjectInfo.attested``) ``ContributionMarket`` pays a round only the
(scores root, total) that more than half of the round's active trainers, by stake, attest
within ``roundDuration`` of its commit; a majority result that is not the aggregator's
replaces it and slashes the aggregator's bond to the trainers. This module is what each
trainer node runs for that: it replays every committed round with
:mod:`marketplace.audit.replay` (byte for byte what ``ledgerlearn audit`` does, the
same pure :func:`marketplace.rounds.run_round`), but under the rule the project's spec
pins, with the seed the chain's reveal fold gives and the arrival order the chain saw,
whatever the aggregator's report declares. The root it attests is therefore what an honest
aggregator would have committed.

What the replay needs, and from whom: the model spec, reports and global models (the
aggregator's gateway, each checked against its on-chain digest), every active trainer's
update (its gateway; sealed updates of an attested project are sealed to the trainers'
announced reader keys too, :meth:`marketplace.nodes.trainer.TrainerNode.replayers`) and
the owner's validation data (checked against the project's validation commitment). A
trainer without them cannot replay and does not attest.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from marketplace.audit.replay import _Replay
from marketplace.chain.market import MarketClient, RoundScores
from marketplace.errors import ConfigError, LedgerLearnError
from marketplace.learning import Dataset
from marketplace.privacy.keys import ReaderKey
from marketplace.rounds.codec import validation_commitment
from marketplace.storage import ContentStore

log = logging.getLogger(__name__)

StoreResolver = Callable[[str], ContentStore | None]


class RoundAttester:
    """Replays one project's committed rounds in order and keeps each round's scores."""

    def __init__(
        self,
        market: MarketClient,
        project_id: int,
        store: ContentStore,
        resolver: StoreResolver,
        validation: Dataset,
        reader: ReaderKey | None = None,
        start_block: int = 0,
        record: Path | None = None,
    ) -> None:
        info = market.project(project_id)
        if validation_commitment(validation) != info.validation_commitment:
            raise ConfigError(
                f"this validation data does not match project {project_id}'s validation "
                "commitment: pass the owner's validation file to replay and attest"
            )
        self.market = market
        self.project_id = project_id
        self._args = (market, project_id, store, resolver, validation, start_block, reader)
        self._replay: _Replay | None = None
        self._done = 0  # rounds replayed so far
        self.record = record
        self.scores: dict[int, RoundScores] = {}
        """round -> the scores this replay computed (the leaves of the root attested)."""
        self.problems: dict[int, list[str]] = {}
        """round -> how the aggregator's commit differs from the replay."""

    def replay(self, round_: int) -> RoundScores | None:
        """The scores an honest aggregator would have committed for ``round_`` (replaying
        every earlier round once); None when the round cannot be replayed (an update that
        this trainer cannot open or fetch, a missing report)."""
        if round_ in self.scores:
            return self.scores[round_]
        try:
            return self._replay_to(round_)
        except LedgerLearnError as exc:  # a gateway down, a blob not served yet: retry later
            log.warning("cannot replay round %d yet: %s", round_, exc)
            self._replay = None
            self._done = 0
            return None

    def _replay_to(self, round_: int) -> RoundScores | None:
        if self._replay is None:
            self._replay = _Replay(*self._args, pinned=True)
        while self._done < round_:
            r = self._done + 1
            audit, go_on = self._replay.round(r)
            outcome = self._replay.outcome
            if not go_on or outcome is None or audit.encrypted:
                log.warning("cannot replay round %d: %s", r, "; ".join(audit.problems))
                self._replay = None  # start over next time (a gateway may come back)
                self._done = 0
                return None
            self._done = r
            self._replay.outcome = None
            inliers = [i for i, b in enumerate(outcome.inlier_mask) if b]
            self.scores[r] = RoundScores(inliers, list(outcome.scores))
            self.problems[r] = list(audit.problems)
            if self.record is not None:
                save_replayed(self.record, self.scores)
        return self.scores.get(round_)


def replay_record(folder: Path) -> Path:
    """Where a trainer node keeps the scores its replays computed: a round whose root the
    trainers' majority replaced is claimed with these leaves, after the node stopped
    (``ledgerlearn trainer withdraw``)."""
    return folder / "replayed-scores.json"


def save_replayed(path: Path, scores: dict[int, RoundScores]) -> None:
    """Write ``scores`` whole (to a temporary file first: never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {str(r): {"inliers": s.inliers, "scores": s.scores} for r, s in scores.items()}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    tmp.replace(path)


def load_replayed(path: Path) -> dict[int, RoundScores]:
    """The scores :func:`save_replayed` wrote ({} when there is no record). A record that
    does not parse is ignored: the claims it would give must prove the on-chain root
    anyway, so nothing in it is trusted."""
    try:
        data = json.loads(path.read_text())
        return {
            int(r): RoundScores([int(i) for i in v["inliers"]], [int(x) for x in v["scores"]])
            for r, v in data.items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


__all__ = ["RoundAttester", "load_replayed", "replay_record", "save_replayed"]
