"""Partitions: exact disjoint cover, skew where asked, floors, parse errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.errors import ConfigError, DatasetError
from marketplace.learning.partition import PartitionScheme, parse_scheme, partition

LABELS = torch.arange(1000) % 10


def _assert_exact_cover(parts: list[torch.Tensor], n: int) -> None:
    joined = torch.cat(parts)
    assert joined.dtype == torch.int64
    assert len(joined) == n, "some index is duplicated or missing"
    assert torch.equal(joined.sort().values, torch.arange(n)), "not every index exactly once"


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(10, 400),
    clients=st.integers(1, 10),
    scheme=st.sampled_from(["iid", "dirichlet:0.1", "dirichlet:5", "quantity:0.3"]),
    seed=st.integers(0, 2**32 - 1),
    classes=st.integers(2, 7),
)
def test_cover_disjoint_and_floor(
    n: int, clients: int, scheme: str, seed: int, classes: int
) -> None:
    labels = torch.from_numpy(np.random.default_rng(seed).integers(0, classes, n))
    parts = partition(labels, clients, scheme, seed, min_size=3)
    assert len(parts) == clients
    _assert_exact_cover(parts, n)
    assert min(len(p) for p in parts) >= min(3, n // clients)


def test_same_seed_same_partition() -> None:
    a = partition(LABELS, 7, "dirichlet:0.5", seed=3)
    b = partition(LABELS, 7, "dirichlet:0.5", seed=3)
    c = partition(LABELS, 7, "dirichlet:0.5", seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def _mean_label_tv_distance(parts: list[torch.Tensor]) -> float:
    """Mean total-variation distance between each client's label histogram and the global one."""
    overall = torch.bincount(LABELS, minlength=10).double() / len(LABELS)
    dists = []
    for p in parts:
        hist = torch.bincount(LABELS[p], minlength=10).double() / len(p)
        dists.append(0.5 * float((hist - overall).abs().sum()))
    return sum(dists) / len(dists)


def test_dirichlet_skews_labels_and_iid_does_not() -> None:
    iid = _mean_label_tv_distance(partition(LABELS, 10, "iid", seed=0))
    skewed = _mean_label_tv_distance(partition(LABELS, 10, "dirichlet:0.1", seed=0))
    mild = _mean_label_tv_distance(partition(LABELS, 10, "dirichlet:100", seed=0))
    # dirichlet:100 cuts every class almost evenly, so it is even closer to global than iid
    assert iid < 0.2 and mild < 0.2
    assert skewed > 0.5


def test_quantity_skews_sizes_not_labels() -> None:
    parts = partition(LABELS, 10, "quantity:0.3", seed=1)
    sizes = sorted(len(p) for p in parts)
    assert sizes[-1] > 4 * sizes[0]
    iid_sizes = [len(p) for p in partition(LABELS, 10, "iid", seed=1)]
    assert max(iid_sizes) - min(iid_sizes) <= 1
    big = max(parts, key=len)
    assert len(torch.unique(LABELS[big])) == 10


def test_tiny_alpha_still_meets_the_floor() -> None:
    parts = partition(LABELS, 50, "dirichlet:0.01", seed=0, min_size=8)
    assert min(len(p) for p in parts) >= 8
    _assert_exact_cover(parts, len(LABELS))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dirichlet", "write 'dirichlet:ALPHA' with a number"),
        ("dirichlet:abc", "write 'dirichlet:ALPHA'"),
        ("quantity:-1", "ALPHA must be a positive number"),
        ("iid:2", "'iid' takes no parameter"),
        ("shards:2", "unknown partition scheme 'shards:2'"),
    ],
)
def test_bad_scheme_strings(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_scheme(text)


def test_parse_and_print() -> None:
    assert parse_scheme(" Dirichlet:0.5 ") == PartitionScheme("dirichlet", 0.5)
    assert str(parse_scheme("quantity:2")) == "quantity:2"


def test_more_clients_than_samples() -> None:
    with pytest.raises(DatasetError, match="cannot give each of 5 clients"):
        partition([0, 1, 0], 5, "iid", seed=0)
