"""Seeds derived from public round coordinates, so every party computes the same ones.

A trainer's batch order in round ``r`` is a function of ``(purpose, project, round, index,
base seed)``; the aggregator's round seed derives from the round's on-chain reveal fold
(:func:`round_seed`). A restarted node, or an auditor, derives them again without being
told.
"""

from __future__ import annotations

import hashlib


def derive_seed(purpose: str, *parts: int) -> int:
    """A seed in ``[0, 2**63)`` from a purpose label and integers (SHA-256 based)."""
    text = purpose + ":" + ":".join(str(int(p)) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def round_seed(project_id: int, round_: int, reveal_fold: bytes) -> int:
    """The aggregator's seed for a round (contribution sampling, the validation anchor):
    from the market's ``revealFold``, the XOR of ``keccak256(index, salt)`` over every opened
    commitment. The salts were hidden until the commit window closed and the XOR does not
    depend on the order in which reveals arrive, so the aggregator (who orders what it
    batches) cannot try seeds until one favours someone. An auditor reads the same fold
    from the chain (``roundState``)."""
    return derive_seed("round", project_id, round_, int.from_bytes(reveal_fold, "big"))
