"""The scores tree built in Python verifies as OpenZeppelin's MerkleProof would."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from marketplace.chain.merkle import ScoreTree, score_leaf


def verify(proof: list[bytes], root: bytes, leaf: bytes) -> bool:
    """``MerkleProof.verify``: fold the proof with the commutative pair hash."""
    h = leaf
    for sibling in proof:
        h = bytes(keccak(h + sibling if h < sibling else sibling + h))
    return h == root


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 9, 17])
def test_every_leaf_proves_against_the_root_and_a_wrong_score_does_not(n: int) -> None:
    inliers = [3 * i + 1 for i in range(n)]
    scores = [1000 + i for i in range(n)]
    tree = ScoreTree.of_scores(inliers, scores)
    for pos, (i, s) in enumerate(zip(inliers, scores, strict=True)):
        assert verify(tree.proof(pos), tree.root, score_leaf(i, s))
        assert not verify(tree.proof(pos), tree.root, score_leaf(i, s + 1))
        assert not verify(tree.proof(pos), tree.root, score_leaf(i + 1, s))


def test_empty_round_has_the_zero_root() -> None:
    assert ScoreTree.of_scores([], []).root == bytes(32)
