"""Each attack's defining property, on the pure functions."""

from __future__ import annotations

from statistics import NormalDist

import pytest
import torch

from marketplace.attacks.alie import alie, alie_z
from marketplace.attacks.free_rider import free_rider
from marketplace.attacks.gaussian_noise import gaussian_noise
from marketplace.attacks.ipm import ipm
from marketplace.attacks.label_flip import label_flip
from marketplace.attacks.scaling import scaling
from marketplace.attacks.sign_flip import sign_flip
from marketplace.attacks.sybil_clones import sybil_clones
from marketplace.errors import AssumptionViolated
from marketplace.learning.datasets import Dataset


def _benign(n: int = 16, d: int = 200, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return 0.5 + torch.randn(n, d, generator=gen)


def test_label_flip_maps_y_to_c_minus_1_minus_y() -> None:
    data = Dataset(torch.rand(5, 3), torch.tensor([0, 1, 2, 3, 1]), 4, (3,))
    flipped = label_flip(data)
    assert flipped.y.tolist() == [3, 2, 1, 0, 2]
    assert torch.equal(flipped.x, data.x)
    assert data.y.tolist() == [0, 1, 2, 3, 1], "input must stay untouched"
    assert torch.equal(label_flip(flipped).y, data.y)


def test_sign_flip_negates_and_scales() -> None:
    u = _benign(1, 50)[0]
    assert torch.equal(sign_flip(u), -u)
    assert torch.allclose(sign_flip(u, 3.0), -3.0 * u)
    assert float(torch.dot(sign_flip(u), u)) < 0


def test_scaling_multiplies_by_ten() -> None:
    u = _benign(2, 30)
    assert torch.allclose(scaling(u), 10 * u)
    assert torch.allclose(scaling(u).norm(dim=1), 10 * u.norm(dim=1))


def test_gaussian_noise_replaces_update_with_n0_sigma() -> None:
    u = torch.full((20_000,), 7.0)
    noise = gaussian_noise(u, 0.5, torch.Generator().manual_seed(0))
    assert noise.shape == u.shape
    assert abs(float(noise.mean())) < 0.02
    assert float(noise.std()) == pytest.approx(0.5, rel=0.03)
    again = gaussian_noise(u, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(noise, again)


def test_alie_z_matches_the_paper() -> None:
    # n=50, m=12: s = floor(26) - 12 = 14, z = Phi^-1(36/50)
    assert alie_z(50, 12) == pytest.approx(NormalDist().inv_cdf(0.72))
    assert alie_z(20, 4) == pytest.approx(NormalDist().inv_cdf(13 / 20))
    with pytest.raises(AssumptionViolated, match="benign majority"):
        alie_z(10, 6)


def test_alie_is_mean_minus_z_std_and_inside_benign_range() -> None:
    benign = _benign()
    z = alie_z(20, 4)
    attack = alie(benign, z)
    assert torch.allclose(attack, benign.mean(0) - z * benign.std(0))
    low, high = benign.min(0).values, benign.max(0).values
    assert bool(((attack >= low) & (attack <= high)).all()), "ALIE must hide in the spread"
    assert bool((attack < benign.mean(0)).all())


def test_ipm_has_negative_inner_product_with_benign_mean() -> None:
    benign = _benign()
    attack = ipm(benign, eps=0.1)
    assert torch.allclose(attack, -0.1 * benign.mean(0))
    assert float(torch.dot(attack, benign.mean(0))) < 0


def test_sybil_clones_identical_or_nearly() -> None:
    base = _benign(1, 40)[0]
    clones = sybil_clones(base, 5)
    assert clones.shape == (5, 40)
    assert bool((clones == base).all())
    noisy = sybil_clones(base, 5, noise_std=1e-4, generator=torch.Generator().manual_seed(1))
    cos = torch.nn.functional.cosine_similarity(noisy[:, None], noisy[None], dim=-1)
    assert float(cos.min()) > 0.9999
    assert not torch.equal(noisy[0], noisy[1])


def test_free_rider_sends_zero_or_tiny_noise() -> None:
    u = _benign(1, 100)[0]
    assert torch.equal(free_rider(u), torch.zeros(100))
    tiny = free_rider(u, 1e-3, torch.Generator().manual_seed(0))
    assert 0 < float(tiny.abs().max()) < 1e-2
