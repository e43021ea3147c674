"""Each trainer's track record with the trust anchor, carried from round to round.

The trust anchor (:mod:`marketplace.robust.anchor`) judges one round at a time, and one
round is noisy: on non-IID data honest updates sit only a little above cosine 0 with the
server update, and in some rounds label flippers sit there too. Measured on
``scripts/bench_robust.py`` (MNIST-1D, Dirichlet 0.5, 30% label flippers, seeds 0-3), the
flippers got through stage 4b in 40 of 360 trainer-rounds, each time with a cosine of
+0.00 to +0.13, while over the whole run every flipper's *mean* cosine was at most -0.001
and every honest trainer's at least +0.045. What one round cannot tell apart, the
trainer's history can.

So the default filter judges a trainer on its record: it drops an update whose trainer's
mean cosine with the anchor, over every round it reached the anchor test (this one
included), is not above the anchor's bound, and it lets a trainer with a good record
through a round whose cosine dips a little below the bound (``anchor_dip_tolerance``,
0.05), as honest non-IID trainers' do now and then. In a trainer's first round the record
is that round's cosine, so a newcomer meets FLTrust's test; a trainer who builds a record
and then turns against the anchor by more than the tolerance is dropped in that round.
The record is part of the rule's state, stored by CID with each round report, so a
restarted aggregator and an auditor replay it exactly.

The mean is over all past rounds and not a decaying average: the per-round test already
watches the present, and the record's job is to remember. (An exponential average with
decay 0.5 measured the same on the cells above.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from marketplace.errors import AssumptionViolated


@dataclass(frozen=True)
class AnchorRecord:
    """Per trainer id: the sum of its anchor cosines and the number of rounds summed.

    Never mutated: :meth:`with_round` returns a new record. Sums are Python floats
    (float64), stored exactly, so a replay from the stored record matches a run that never
    stopped.
    """

    sums: Mapping[str, float] = field(default_factory=dict)
    rounds: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if set(self.sums) != set(self.rounds):
            raise AssumptionViolated(
                "an anchor record needs a round count for every cosine sum; got ids "
                f"{sorted(set(self.sums) ^ set(self.rounds))} in one map only: "
                "rebuild it with AnchorRecord.with_round"
            )
        bad = sorted(trainer for trainer, k in self.rounds.items() if k < 1)
        if bad:
            raise AssumptionViolated(
                f"an anchor record needs at least one round per trainer; got 0 for {bad}: "
                "rebuild it with AnchorRecord.with_round"
            )

    def with_round(self, client_ids: Sequence[str], cosines: Sequence[float]) -> AnchorRecord:
        """A new record with this round's ``cosines[i]`` added to ``client_ids[i]``."""
        sums, rounds = dict(self.sums), dict(self.rounds)
        for trainer, cos in zip(client_ids, cosines, strict=True):
            sums[trainer] = sums.get(trainer, 0.0) + float(cos)
            rounds[trainer] = rounds.get(trainer, 0) + 1
        return AnchorRecord(sums=sums, rounds=rounds)
