"""The round pipeline threads the default rule's trust anchor (FLTrust server update on the
owner's validation data): replayable, decisive against sign flippers, and named in a
warning when validation data are missing."""

from __future__ import annotations

import logging

import pytest
import torch

from marketplace.learning import (
    ModelSpec,
    TrainConfig,
    TrainingRecipe,
    init_params,
    load_dataset,
    local_train,
)
from marketplace.learning import partition as split
from marketplace.robust.anchor import AnchorRecipe, server_update
from marketplace.rounds import HyperConfig, RoundConfig, RoundState, equal_scores, run_round
from marketplace.rounds.seeds import derive_seed

N, FLIPPED = 8, (5, 6, 7)


@pytest.fixture(scope="module")
def round_inputs() -> tuple[ModelSpec, torch.Tensor, list[torch.Tensor], object]:
    train, validation = load_dataset("synthetic", 2, num_samples=800)
    spec = ModelSpec.for_data("mlp", train.input_shape, train.num_classes, seed=0)
    start = init_params(spec)
    cfg = TrainConfig(epochs=1, lr=0.1, momentum=0.9, seed=3)
    shards = split(train.y, N, "dirichlet:0.5", 0)
    updates = [local_train(spec, start, train.subset(s), cfg) for s in shards]
    updates = [-u if i in FLIPPED else u for i, u in enumerate(updates)]
    return spec, start, updates, validation


def _run(inputs: tuple, validation: object, **rule_params: object) -> object:
    spec, start, updates, _ = inputs
    return run_round(
        start,
        updates,
        None,
        RoundConfig(rule_params=rule_params),
        RoundState.initial(HyperConfig()),
        spec=spec,
        validation=validation,  # type: ignore[arg-type]
        score_fn=equal_scores,
        seed=11,
    )


def test_anchor_excludes_sign_flippers_and_replays_bit_for_bit(round_inputs: tuple) -> None:
    a = _run(round_inputs, round_inputs[3])
    b = _run(round_inputs, round_inputs[3])
    assert [i for i in FLIPPED if a.inlier_mask[i]] == []  # type: ignore[attr-defined]
    assert all("server update" in a.exclusions[i] for i in FLIPPED)  # type: ignore[attr-defined]
    assert a.inlier_mask == b.inlier_mask  # type: ignore[attr-defined]
    assert torch.equal(a.new_global_params, b.new_global_params)  # type: ignore[attr-defined]


def test_anchor_is_the_seeded_server_update(round_inputs: tuple) -> None:
    spec, start, _, validation = round_inputs
    recipe = AnchorRecipe(epochs=2, lr=0.05, momentum=0.0)
    one = server_update(spec, start, validation, recipe, derive_seed("anchor", 11))
    again = server_update(spec, start, validation, recipe, derive_seed("anchor", 11))
    other = server_update(spec, start, validation, recipe, derive_seed("anchor", 12))
    assert torch.equal(one, again)
    assert not torch.equal(one, other)


def test_without_validation_the_stage_is_skipped_with_a_warning(
    round_inputs: tuple, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="marketplace.rounds.pipeline"):
        outcome = _run(round_inputs, None)
    assert "without its trust anchor" in caplog.text and "clean" in caplog.text
    assert not any("server update" in r for r in outcome.exclusions.values())  # type: ignore[attr-defined]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="marketplace.rounds.pipeline"):
        off = _run(round_inputs, round_inputs[3], anchor_min_cosine=None)
    assert "trust anchor" not in caplog.text
    assert not any("server update" in r for r in off.exclusions.values())  # type: ignore[attr-defined]


def test_the_anchor_trains_with_the_recipe_the_spec_declares(round_inputs: tuple) -> None:
    spec, start, updates, validation = round_inputs
    declared = TrainingRecipe(epochs=2, lr=0.05, momentum=0.5, batch_size=16)
    with_recipe = spec.model_copy(update={"training": declared})
    seed = derive_seed("anchor", 11)

    def anchor_of(model_spec: ModelSpec, **rule_params: object) -> torch.Tensor:
        outcome = _run((model_spec, start, updates, validation), validation, **rule_params)
        assert outcome.anchor is not None  # type: ignore[attr-defined]
        return outcome.anchor  # type: ignore[attr-defined]

    expected = server_update(spec, start, validation, AnchorRecipe.declared(declared), seed)
    assert torch.equal(anchor_of(with_recipe), expected)
    default = server_update(spec, start, validation, AnchorRecipe(), seed)
    assert torch.equal(anchor_of(spec), default) and not torch.equal(expected, default)
    # the rule's own anchor_* parameters still win over the declaration
    assert torch.equal(anchor_of(with_recipe, anchor_lr=0.2), default)
