"""Who committed first, and what was public: the inputs of the round's copy checks.

A copier can only copy what it can read. With commit-then-reveal that is the previous
round's revealed updates (``published``), and a trainer that submits another's blob
of the same round must have committed after it. Both facts come from the chain, so the
aggregator and an auditor derive the same inputs for
:func:`marketplace.rounds.pipeline.run_round` (``commit_order``, ``public_updates``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from torch import Tensor


class Committed(Protocol):
    """A trainer's commitment as read from the chain (``chainview.UpdateCommit``)."""

    @property
    def index(self) -> int: ...

    @property
    def commit_arrival(self) -> tuple[int, int]: ...


def commit_order(commits: Iterable[Committed], n: int) -> list[int]:
    """Position of each of the ``n`` trainers in the round's commit order (block, log
    index of the hidden commitment, not of the reveal: a copier that reveals first is
    still the later committer); trainers without a commitment come last, by index."""
    ranked = sorted(commits, key=lambda c: (c.commit_arrival, c.index))
    position = {c.index: k for k, c in enumerate(ranked)}
    return [position.get(i, len(ranked) + i) for i in range(n)]


def published(submissions: Sequence[Tensor | str | None]) -> dict[int, Tensor]:
    """The updates of a round that passed validation, by trainer index: what every
    trainer can read before committing in the next round."""
    return {i: s for i, s in enumerate(submissions) if isinstance(s, Tensor)}
