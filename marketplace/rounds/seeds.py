"""Seeds derived from public round coordinates, so every party computes the same ones.

A trainer's batch order in round ``r`` and the aggregator's round seed are functions of
``(purpose, project, round, index, base seed)`` only: a restarted node, or an auditor,
derives them again without being told.
"""

from __future__ import annotations

import hashlib


def derive_seed(purpose: str, *parts: int) -> int:
    """A seed in ``[0, 2**63)`` from a purpose label and integers (SHA-256 based)."""
    text = purpose + ":" + ":".join(str(int(p)) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1
