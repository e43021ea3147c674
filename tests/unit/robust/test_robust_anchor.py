"""The default filter's trust-anchor stage (FLTrust server update) on non-IID updates.

Synthetic non-IID round: 14 honest updates ``(0.25 mu + g_k + 2 noise) * s_i`` whose
shared direction ``mu`` is small next to their client-group component ``g_k`` and noise
(pairwise cosine ~0.05, as measured on MNIST-1D Dirichlet 0.5), plus 6 sign flippers
submitting their own honest update reversed. Without an anchor the statistics over the
updates cannot tell the flippers from honest clients; a reference near ``mu`` (what a
server update on clean validation data points to) can.
"""

from __future__ import annotations

import math

import pytest
import torch

from marketplace.errors import AssumptionViolated, ConfigError
from marketplace.robust import DefaultConfig, aggregate, default_filter
from marketplace.robust.anchor import AnchorRecipe
from marketplace.robust.registry import anchor_recipe

D = 500
N_HONEST = 14
F = 6


def _honest(k: int, gen: torch.Generator, mu: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    noise = 2.0 * torch.randn(k, D, generator=gen) / math.sqrt(D)
    group = groups[torch.randint(0, len(groups), (k,), generator=gen)]
    size = 0.7 + 0.6 * torch.rand(k, 1, generator=gen)
    return (0.25 * mu + 0.8 * group + noise) * size


def _setting(seed: int) -> tuple[torch.Generator, torch.Tensor, torch.Tensor]:
    """(generator, unit shared direction mu [D], five unit client-group directions [5, D])."""
    gen = torch.Generator().manual_seed(seed)
    mu = torch.randn(D, generator=gen)
    mu = mu / mu.norm()
    groups = torch.randn(5, D, generator=gen)
    return gen, mu, groups / groups.norm(dim=1, keepdim=True)


def _reference(gen: torch.Generator, mu: torch.Tensor) -> torch.Tensor:
    return mu + 0.5 * torch.randn(D, generator=gen) / math.sqrt(D)


def sign_flip_round(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(updates [20, D] with the flippers last, reference [D], honest mean [D])."""
    gen, mu, groups = _setting(seed)
    honest = _honest(N_HONEST, gen, mu, groups)
    flipped = -_honest(F, gen, mu, groups)
    reference = _reference(gen, mu)
    return torch.cat([honest, flipped]), reference, honest.mean(dim=0)


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


@pytest.mark.parametrize("seed", range(5))
def test_anchor_removes_sign_flippers_on_non_iid_updates(seed: int) -> None:
    updates, reference, honest_mean = sign_flip_round(seed)
    on = default_filter(updates, reference=reference)
    assert not bool(on.inlier_mask[N_HONEST:].any()), on.reason
    assert int(on.inlier_mask[:N_HONEST].sum()) >= 10
    assert all("server update" in on.reason[i] for i in range(N_HONEST, N_HONEST + F))
    assert _cos(on.aggregate, honest_mean) > 0.85


@pytest.mark.parametrize("seed", range(5))
def test_without_the_anchor_sign_flippers_get_through(seed: int) -> None:
    updates, reference, honest_mean = sign_flip_round(seed)
    no_reference = default_filter(updates)
    stage_off = default_filter(
        updates, config=DefaultConfig(anchor_min_cosine=None), reference=reference
    )
    assert torch.equal(no_reference.inlier_mask, stage_off.inlier_mask)
    assert int(no_reference.inlier_mask[N_HONEST:].sum()) >= 4
    on = default_filter(updates, reference=reference)
    assert _cos(no_reference.aggregate, honest_mean) < _cos(on.aggregate, honest_mean)


def _median_cosine_drops(reason: dict[int, str]) -> int:
    return sum("cosine" in r and "coordinate-wise median" in r for r in reason.values())


def test_with_the_anchor_the_median_cosine_test_spares_honest_non_iid_updates() -> None:
    """Honest non-IID updates sit near cosine 0 with the coordinate-wise median, where
    stage 6's cosine test drops some; with an anchor that test is off and all are kept."""
    dropped_without_anchor = 0
    for seed in range(6):
        gen, mu, groups = _setting(seed)
        honest = _honest(N_HONEST + F, gen, mu, groups)
        reference = _reference(gen, mu)
        off, on = default_filter(honest), default_filter(honest, reference=reference)
        dropped_without_anchor += _median_cosine_drops(off.reason)
        assert _median_cosine_drops(on.reason) == 0, on.reason
        assert on.n_inliers >= off.n_inliers
    assert dropped_without_anchor >= 2  # the case the change is about does occur here


@pytest.mark.parametrize("seed", range(3))
def test_the_anchor_takes_over_the_median_cosine_test_against_ipm(seed: int) -> None:
    """IPM (Xie et al. 2020): small updates against the honest mean, which the distance
    test misses; without the cosine test the anchor stage must catch them."""
    gen, mu, groups = _setting(seed)
    honest = _honest(N_HONEST, gen, mu, groups)
    reference = _reference(gen, mu)
    ipm = (-0.5 * honest.mean(dim=0)).expand(F, D)
    result = default_filter(torch.cat([honest, ipm]), reference=reference)
    assert not bool(result.inlier_mask[N_HONEST:].any()), result.reason
    assert all("server update" in result.reason[i] for i in range(N_HONEST, N_HONEST + F))


def test_registry_passes_the_reference_to_the_default_only() -> None:
    updates, reference, _ = sign_flip_round(0)
    via_registry = aggregate("default", updates, anchor=reference)
    assert torch.equal(
        via_registry.inlier_mask, default_filter(updates, reference=reference).inlier_mask
    )
    fedavg = aggregate("fedavg", updates, anchor=reference)  # ignored by rules without one
    assert bool(fedavg.inlier_mask.all())
    with pytest.raises(ConfigError, match="no parameter"):
        aggregate("default", updates, reference=reference)  # data, not a rule parameter


def test_anchor_recipe_follows_the_rule_parameters() -> None:
    assert anchor_recipe("default", {}) == AnchorRecipe()
    assert anchor_recipe("default", {"anchor_epochs": 2, "anchor_lr": 0.3}) == AnchorRecipe(
        epochs=2, lr=0.3
    )
    assert anchor_recipe("default", {"anchor_min_cosine": None}) is None
    assert anchor_recipe("default", {"config": DefaultConfig(anchor_momentum=0.9)}) == (
        AnchorRecipe(momentum=0.9)
    )
    assert anchor_recipe("median", {"f": 2}) is None
    with pytest.raises(ConfigError, match="anchor recipe"):
        DefaultConfig(anchor_epochs=0)
    with pytest.raises(ConfigError, match="anchor recipe"):
        AnchorRecipe(epochs=1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="anchor_min_cosine"):
        DefaultConfig(anchor_min_cosine=1.0)


@pytest.mark.parametrize(
    "bad",
    [torch.zeros(D), torch.ones(D + 1), torch.full((D,), math.nan)],
    ids=["zero", "shape", "nan"],
)
def test_unusable_reference_is_refused_with_its_fix(bad: torch.Tensor) -> None:
    updates, _, _ = sign_flip_round(0)
    with pytest.raises(AssumptionViolated, match="reference of shape"):
        default_filter(updates, reference=bad)


def test_the_default_anchor_recipe_is_the_default_training_recipe() -> None:
    """FLTrust's assumption holds out of the box: with no declared recipe and no anchor_*
    parameters the anchor trains as `ledgerlearn trainer run` does by default."""
    from marketplace.learning import ModelSpec, TrainingRecipe
    from marketplace.nodes.trainer import local_recipe

    spec = ModelSpec(kind="mlp", input_shape=(4,), num_classes=2)
    assert AnchorRecipe() == AnchorRecipe.declared(TrainingRecipe())
    assert local_recipe(spec) == TrainingRecipe()
    assert anchor_recipe("default", {}, None) == AnchorRecipe()


def test_a_declared_recipe_is_followed_unless_the_parameters_set_one() -> None:
    from marketplace.learning import TrainingRecipe

    declared = TrainingRecipe(epochs=3, lr=0.05, momentum=0.5, batch_size=16)
    assert anchor_recipe("default", {}, declared) == AnchorRecipe(3, 0.05, 0.5, 16)
    assert anchor_recipe("default", {"z": 2.0}, declared) == AnchorRecipe(3, 0.05, 0.5, 16)
    assert anchor_recipe("default", {"anchor_lr": 0.3}, declared) == AnchorRecipe(lr=0.3)
    config = DefaultConfig(anchor_epochs=2)
    assert anchor_recipe("default", {"config": config}, declared) == AnchorRecipe(epochs=2)
    assert anchor_recipe("default", {"anchor_min_cosine": None}, declared) is None
    assert anchor_recipe("median", {"f": 1}, declared) is None


def test_trainer_options_override_the_declared_recipe_one_value_at_a_time() -> None:
    from marketplace.learning import ModelSpec, TrainingRecipe
    from marketplace.nodes.trainer import local_recipe

    declared = TrainingRecipe(epochs=3, lr=0.05, momentum=0.5, batch_size=16)
    spec = ModelSpec(kind="mlp", input_shape=(4,), num_classes=2, training=declared)
    assert local_recipe(spec) == declared
    assert local_recipe(spec, lr=0.3) == TrainingRecipe(
        epochs=3, lr=0.3, momentum=0.5, batch_size=16
    )
    with pytest.raises(ConfigError, match="training recipe: momentum"):
        local_recipe(spec, momentum=1.5)


def test_an_anchor_that_rejects_every_update_is_a_named_refusal_not_a_crash() -> None:
    """Every row points away from the anchor: stage 4b keeps nobody, and the filter must
    say so (AssumptionViolated naming the anchor) instead of taking the median of an
    empty set (seen with DP-SGD at a too-large learning rate)."""
    updates = torch.randn(6, 40, generator=torch.Generator().manual_seed(3)).abs()
    reference = -torch.ones(40)
    with pytest.raises(AssumptionViolated, match="excluded every update"):
        default_filter(updates, reference=reference)
