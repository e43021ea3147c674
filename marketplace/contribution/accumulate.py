"""Cumulative per-trainer scores across rounds (pure: old totals + round scores -> new).

The contract pays each trainer ``reward * total_i / sum(total)`` at finalisation, so the
totals must be exactly what the chain accumulates: integers from
:func:`marketplace.contribution.payable.to_fixed_point` (floats work too, for analysis).
Round scores must already be payable (non-negative): see ``payable.py`` for why
negatives are clipped per round rather than carried.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

from marketplace.errors import ConfigError

K = TypeVar("K", bound=Hashable)
Number = TypeVar("Number", int, float)


def accumulate(totals: Mapping[K, Number], round_scores: Mapping[K, Number]) -> dict[K, Number]:
    """New totals: ``totals`` plus ``round_scores`` per trainer (inputs are not modified).

    Trainers new in this round start from 0; trainers absent from the round keep their
    total.
    """
    out: dict[K, Number] = dict(totals)
    for trainer, score in round_scores.items():
        if score < 0:
            raise ConfigError(
                f"round score {score} of trainer {trainer!r} is negative; "
                "pass contributions through to_payable first"
            )
        out[trainer] = out.get(trainer, 0) + score  # type: ignore[assignment]
    return out


def round_scores(trainers: Sequence[K], scores: Sequence[Number]) -> dict[K, Number]:
    """Pair trainer ids with this round's scores (same order, e.g. the round's trainer list)."""
    if len(trainers) != len(scores):
        raise ConfigError(f"got {len(scores)} scores for {len(trainers)} trainers; give one each")
    if len(set(trainers)) != len(trainers):
        raise ConfigError("trainer ids repeat within a round; each trainer scores once")
    return dict(zip(trainers, scores, strict=True))
