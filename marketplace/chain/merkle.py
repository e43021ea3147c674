"""The scores tree of a round, exactly as ``ContributionMarket`` builds it on-chain.

``commitRound`` does not write one storage slot per trainer (that cost ~7,700 gas per
inlier and put 4,096 trainers over EIP-7825's 2^24 gas cap). It folds the round's scores
into a Merkle root instead, and a trainer's score is credited when it presents the proof
of its leaf (``claimScores`` / ``withdraw``). Leaves follow OpenZeppelin's standard
(``keccak256(bytes.concat(keccak256(abi.encode(index, score))))``), pairs are hashed
commutatively (``Hashes.commutativeKeccak256``) and an odd node moves up unhashed, so
``MerkleProof.verify`` accepts the proofs built here. Pure: no chain access.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_abi import encode as abi_encode
from eth_utils import keccak

from marketplace.errors import ConfigError


def score_leaf(index: int, score: int) -> bytes:
    """The leaf of trainer ``index`` with ``score`` in a round's scores tree."""
    return bytes(keccak(keccak(abi_encode(["uint256", "uint128"], [index, score]))))


def _pair(a: bytes, b: bytes) -> bytes:
    return bytes(keccak(a + b if a < b else b + a))


class ScoreTree:
    """The tree over ``leaves`` in the order given (the inliers in trainer-index order)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.layers: list[list[bytes]] = [list(leaves)]
        while len(self.layers[-1]) > 1:
            layer = self.layers[-1]
            up = [_pair(layer[2 * i], layer[2 * i + 1]) for i in range(len(layer) // 2)]
            if len(layer) % 2:
                up.append(layer[-1])
            self.layers.append(up)

    @classmethod
    def of_scores(cls, inliers: Sequence[int], scores: Sequence[int]) -> ScoreTree:
        if len(inliers) != len(scores):
            raise ConfigError(f"{len(scores)} scores for {len(inliers)} inliers: give one each")
        return cls([score_leaf(i, s) for i, s in zip(inliers, scores, strict=True)])

    @property
    def root(self) -> bytes:
        return self.layers[-1][0] if self.layers[0] else b"\x00" * 32

    def proof(self, position: int) -> list[bytes]:
        """Sibling hashes from the leaf at ``position`` up to the root."""
        out: list[bytes] = []
        for layer in self.layers[:-1]:
            sibling = position ^ 1
            if sibling < len(layer):
                out.append(layer[sibling])
            position //= 2
        return out
