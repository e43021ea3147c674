"""Commit-then-reveal helpers shared by the chain tests (pytest puts tests/ on the path)."""

from __future__ import annotations

from typing import Any

from marketplace.chain.constants import ZERO_ADDRESS
from marketplace.chain.market import Opening

SKETCH = bytes([9]) * 32
ETH = 10**18
STAKE = 10**16
DURATION = 3600


def open_project(
    world: Any,
    n: int = 3,
    rounds: int = 2,
    bond: int = 0,
    attested: bool = False,
    verifier: str = ZERO_ADDRESS,
) -> int:
    """A project escrowing 1 ETH with ``n`` registered trainers (and the aggregator's
    ``bond`` posted when non-zero; its rounds proven to ``verifier`` when given); returns
    its id."""
    pid, _ = world.market.create_project(
        reward=ETH,
        aggregator=world.aggregator.address,
        rounds=rounds,
        round_duration=DURATION,
        min_stake=STAKE,
        aggregator_bond=bond,
        attested=attested,
        verifier=verifier,
    )
    for t in world.trainers[:n]:
        world.as_(t).register(pid, STAKE)
    if bond:
        world.as_(world.aggregator).post_bond(pid, bond)
    return pid


def cid_of(i: int) -> bytes:
    """A distinct CID digest per trainer (an equal one would be a copy: excluded)."""
    return bytes([7 + i]) * 32


def salt_of(address: str, round_: int) -> bytes:
    return (int(address, 16) + round_).to_bytes(32, "big")


def opening_of(trainer: Any, round_: int, cid: bytes, sketch: bytes = SKETCH) -> Opening:
    return Opening(trainer.address, cid, sketch, salt_of(trainer.address, round_))


def commit(world: Any, trainer: Any, pid: int, round_: int, cid: bytes, sketch: bytes = SKETCH):
    """Commit ``trainer``'s hidden commitment to (cid, sketch); returns its opening."""
    opening = opening_of(trainer, round_, cid, sketch)
    world.as_(trainer).commit_update(pid, round_, opening.commitment(pid, round_))
    return opening


def reveal(world: Any, trainer: Any, pid: int, round_: int, opening: Opening):
    return world.as_(trainer).reveal_updates(pid, round_, [opening])


def play(world: Any, pid: int, round_: int, trainers: list[Any]) -> list[Opening]:
    """Every given trainer commits (distinct CIDs), then each reveals."""
    openings = [commit(world, t, pid, round_, cid_of(i)) for i, t in enumerate(trainers)]
    for t, o in zip(trainers, openings, strict=True):
        reveal(world, t, pid, round_, o)
    return openings


def commit_round(
    world: Any, pid: int, round_: int, mask: list[bool], rejected: list[bool] | None = None
):
    """The aggregator commits ``round_`` with inliers ``mask`` (score 1 each) and the
    rejections ``rejected``."""
    return world.as_(world.aggregator).commit_round(
        pid,
        round_,
        global_model_cid=bytes([3]) * 32,
        inlier_mask=mask,
        scores=[1] * sum(mask),
        rejected_mask=rejected,
    )
