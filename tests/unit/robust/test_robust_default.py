"""The default filter against a synthetic attack benchmark, its stages, and the registry.

Benchmark: 20 honest updates ``(mu + c_k + noise_i) * s_i`` around a shared direction
``mu`` with four non-IID client groups ``c_k``, per-client noise level and update size
(``s_i`` in [0.7, 1.5]), plus attackers of one kind.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest
import torch

from marketplace.errors import AssumptionViolated, ConfigError
from marketplace.robust import (
    DefaultConfig,
    DefaultState,
    aggregate,
    default_filter,
    fedavg,
)

D = 500
N_HONEST = 20


def honest_updates(n: int, gen: torch.Generator, mu: torch.Tensor) -> torch.Tensor:
    groups = torch.randn(4, D, generator=gen)
    groups = 0.8 * groups / groups.norm(dim=1, keepdim=True)
    level = 0.5 + torch.rand(n, 1, generator=gen)
    noise = torch.randn(n, D, generator=gen) / math.sqrt(D) * level
    size = 0.7 + 0.8 * torch.rand(n, 1, generator=gen)
    return (mu + groups[torch.arange(n) % 4] + noise) * size


def attackers(kind: str, f: int, honest: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    mu = honest.mean(dim=0)
    typical = float(honest.norm(dim=1).median())
    own = honest_updates(f, gen, mu / mu.norm())
    if kind == "sign_flip":
        return -own
    if kind == "gaussian":
        return torch.randn(f, D, generator=gen) / math.sqrt(D) * typical
    if kind == "scaling":
        return 10.0 * own
    if kind == "clones":
        poison = torch.randn(D, generator=gen)
        return (poison / poison.norm() * typical).expand(f, D).clone()
    if kind == "free_rider":
        return torch.zeros(f, D)
    if kind == "ipm":  # Xie et al. 2020, epsilon = 0.5
        return (-0.5 * mu).expand(f, D).clone()
    if kind == "alie":  # Baruch et al. 2019
        n = len(honest) + f
        z = NormalDist().inv_cdf((n - (n // 2 + 1 - f)) / n)
        return (mu - z * honest.std(dim=0)).expand(f, D).clone()
    raise ValueError(kind)


def scenario(kind: str, f: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    mu = torch.randn(D, generator=gen)
    honest = honest_updates(N_HONEST, gen, mu / mu.norm())
    if f == 0:
        return honest, honest.mean(dim=0)
    return torch.cat([honest, attackers(kind, f, honest, gen)]), honest.mean(dim=0)


def rel_error(agg: torch.Tensor, target: torch.Tensor) -> float:
    return float((agg - target).norm() / target.norm())


REMOVED = ["sign_flip", "gaussian", "scaling", "clones", "free_rider", "ipm", "alie"]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", REMOVED)
def test_default_removes_attackers_and_keeps_honest(kind: str, seed: int) -> None:
    updates, target = scenario(kind, 6, seed)
    result = default_filter(updates)
    assert not bool(result.inlier_mask[N_HONEST:].any()), result.reason
    assert result.n_inliers >= 0.9 * N_HONEST
    assert rel_error(result.aggregate, target) < 0.2
    assert rel_error(result.aggregate, target) < rel_error(fedavg(updates).aggregate, target)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_costs_little_without_attack(seed: int) -> None:
    updates, target = scenario("none", 0, seed)
    result = default_filter(updates)
    assert result.n_inliers >= 0.9 * N_HONEST
    cos = torch.nn.functional.cosine_similarity(result.aggregate, target, dim=0)
    assert float(cos) > 0.99  # clipping shortens the step a little; the direction stays


@pytest.mark.parametrize("kind", ["sign_flip", "gaussian", "scaling", "clones", "ipm", "alie"])
def test_default_degrades_gracefully_at_45_percent(kind: str) -> None:
    updates, target = scenario(kind, 16, seed=4)
    result = default_filter(updates)
    assert int(result.inlier_mask[:N_HONEST].sum()) >= 0.9 * N_HONEST
    assert rel_error(result.aggregate, target) < 0.5 * rel_error(fedavg(updates).aggregate, target)


def test_default_handles_a_mix_of_attacks() -> None:
    gen = torch.Generator().manual_seed(9)
    mu = torch.randn(D, generator=gen)
    honest = honest_updates(N_HONEST, gen, mu / mu.norm())
    kinds = ["sign_flip", "gaussian", "scaling", "clones", "free_rider"]
    bad = torch.cat([attackers(k, 2, honest, gen) for k in kinds])
    result = default_filter(torch.cat([honest, bad]))
    assert not bool(result.inlier_mask[N_HONEST:].any())
    assert result.n_inliers >= 18


def test_default_rejects_nonfinite_rows_with_a_reason() -> None:
    updates, _ = scenario("none", 0, seed=3)
    updates[4, 7] = float("nan")
    updates[9, 0] = float("inf")
    result = default_filter(updates)
    assert result.excluded == [4, 9]
    assert "NaN/inf" in result.reason[4] and math.isinf(float(result.scores[9]))
    assert bool(torch.isfinite(result.aggregate).all())


def test_default_reasons_name_each_stage() -> None:
    updates, _ = scenario("none", 0, seed=5)
    extra = torch.stack([torch.zeros(D), 10 * updates[0], updates[1], updates[1]])
    result = default_filter(torch.cat([updates, extra]))
    assert "free rider" in result.reason[20]
    assert "boosted" in result.reason[21]
    assert "near-duplicate" in result.reason[22] and "Sybil" in result.reason[23]
    assert 1 in result.reason  # the honest original of the copies is a duplicate too


def test_default_caps_self_reported_weights() -> None:
    updates, _ = scenario("none", 0, seed=6)
    weights = torch.ones(N_HONEST)
    weights[0] = 1e9
    result = default_filter(updates, weights, config=DefaultConfig(max_weight_ratio=10.0))
    assert result.weights is not None
    assert float(result.weights[0]) == pytest.approx(10.0 / 29.0)


def test_default_cross_round_check_is_optional() -> None:
    updates, target = scenario("none", 0, seed=7)
    flipped = torch.cat([updates, -0.3 * updates[:2]])
    cfg = DefaultConfig(cross_round_min_cosine=0.0)
    with_check = default_filter(flipped, config=cfg, state=DefaultState(previous_aggregate=target))
    assert not bool(with_check.inlier_mask[N_HONEST:].any())
    assert torch.equal(with_check.state.previous_aggregate, with_check.aggregate)
    chained = aggregate("default", flipped, state=with_check.state, cross_round_min_cosine=0.0)
    assert torch.equal(chained.inlier_mask, with_check.inlier_mask)
    # a bare tensor is the state rounds stored before the anchor record: still accepted
    legacy = aggregate("default", flipped, state=target, cross_round_min_cosine=0.0)
    assert torch.equal(legacy.inlier_mask, with_check.inlier_mask)


def test_default_is_invariant_to_row_order_on_the_kept_set() -> None:
    updates, _ = scenario("sign_flip", 6, seed=8)
    perm = torch.randperm(len(updates), generator=torch.Generator().manual_seed(0))
    a, b = default_filter(updates), default_filter(updates[perm])
    assert torch.equal(a.inlier_mask[perm], b.inlier_mask)
    torch.testing.assert_close(a.aggregate, b.aggregate, rtol=1e-5, atol=1e-6)


def test_default_assumptions() -> None:
    with pytest.raises(AssumptionViolated, match="n >= 3"):
        default_filter(torch.randn(2, 4))
    with pytest.raises(AssumptionViolated, match="positive median update norm"):
        default_filter(torch.cat([torch.zeros(3, 4), torch.randn(2, 4)]))
    with pytest.raises(AssumptionViolated, match="finite updates"):
        default_filter(torch.full((3, 4), float("nan")))


def test_default_config_validation_and_mapping() -> None:
    assert DefaultConfig.from_mapping({"z": 2.5}).z == 2.5
    with pytest.raises(ConfigError, match="unknown default filter parameter"):
        DefaultConfig.from_mapping({"zz": 1})
    with pytest.raises(ConfigError, match="boost_ratio"):
        DefaultConfig(boost_ratio=0.5)
    with pytest.raises(ConfigError, match="cross_round_min_cosine"):
        DefaultConfig(cross_round_min_cosine=2.0)
    for tolerance in (-0.1, 1.0, math.nan):
        with pytest.raises(ConfigError, match="anchor_dip_tolerance"):
            DefaultConfig(anchor_dip_tolerance=tolerance)


def test_registry_passes_parameters_and_refuses_unknown_ones() -> None:
    updates, _ = scenario("none", 0, seed=1)
    strict = aggregate("default", updates, z=0.5, distance_margin=0.0, cosine_margin=0.0)
    assert strict.n_inliers < aggregate("default", updates).n_inliers
    with pytest.raises(ConfigError, match="unknown aggregator 'bulyan'"):
        aggregate("bulyan", updates)
    with pytest.raises(ConfigError, match=r"has no parameter\(s\) \['beta'\]"):
        aggregate("krum", updates, f=1, beta=0.1)
    with pytest.raises(ConfigError, match="not both"):
        aggregate("default", updates, config=DefaultConfig(), z=2.0)


def _fan(outlier_angle: float) -> torch.Tensor:
    """13 unit updates fanned over +-0.1 rad in one plane, plus one at ``outlier_angle``."""
    angles = [*torch.linspace(-0.1, 0.1, 13).tolist(), outlier_angle]
    rows = torch.zeros(len(angles), 10)
    for i, angle in enumerate(angles):
        rows[i, 0], rows[i, 1] = math.cos(angle), math.sin(angle)
    return rows


def test_with_the_trust_anchor_the_distance_test_only_drops_gross_outliers() -> None:
    anchor = torch.zeros(10)
    anchor[0] = 1.0  # every row agrees with it (cosine > 0.9)
    moderate, gross = _fan(0.3), _fan(0.5)
    strict = DefaultConfig(anchored_distance_z=3.0)
    assert "3 MAD" in default_filter(moderate, config=strict, reference=anchor).reason[13]
    assert "3 MAD" in default_filter(moderate).reason[13]  # no anchor: z = 3
    assert bool(default_filter(moderate, reference=anchor).inlier_mask.all())
    loose = default_filter(gross, reference=anchor)
    assert not bool(loose.inlier_mask[13]) and "6 MAD" in loose.reason[13]
