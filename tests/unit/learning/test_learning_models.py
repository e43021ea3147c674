"""Model specs: JSON round trip, deterministic init, flat-parameter helpers."""

from __future__ import annotations

import json

import pytest
import torch

from marketplace.errors import ConfigError
from marketplace.learning.models import (
    ModelSpec,
    TrainingRecipe,
    build_model,
    get_flat_params,
    init_params,
    num_params,
    set_flat_params,
)

SPECS = [
    ModelSpec(kind="logreg", input_shape=(8, 8), num_classes=10),
    ModelSpec(kind="mlp", input_shape=(8, 8), num_classes=10, hidden=(32, 16)),
    ModelSpec(kind="cnn", input_shape=(8, 8), num_classes=10),
    ModelSpec(kind="cnn", input_shape=(40,), num_classes=10),
    ModelSpec(kind="cnn1d", input_shape=(2, 40), num_classes=3, hidden=(4,)),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.kind}{s.input_shape}")
def test_forward_shape_and_param_count(spec: ModelSpec) -> None:
    model = build_model(spec)
    out = model(torch.zeros(5, *spec.input_shape))
    assert out.shape == (5, spec.num_classes)
    assert get_flat_params(model).shape == (num_params(spec),)
    assert not list(model.buffers())


def test_same_seed_same_weights_other_seed_differs() -> None:
    spec = SPECS[1]
    assert torch.equal(init_params(spec), init_params(spec))
    other = spec.model_copy(update={"seed": 1})
    assert not torch.equal(init_params(spec), init_params(other))


def test_build_does_not_touch_global_rng() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_model(SPECS[2])
    assert torch.equal(torch.rand(3), expected)


def test_flat_params_round_trip() -> None:
    spec = SPECS[2]
    model = build_model(spec)
    vec = torch.arange(num_params(spec), dtype=torch.float32)
    set_flat_params(model, vec)
    assert torch.equal(get_flat_params(model), vec)
    with pytest.raises(ConfigError, match="parameter vector"):
        set_flat_params(model, vec[:-1])


def test_json_round_trip_is_canonical() -> None:
    spec = ModelSpec(kind="mlp", input_shape=(40,), num_classes=10, seed=7)
    raw = spec.to_json_bytes()
    assert raw == b'{"hidden":[64],"input_shape":[40],"kind":"mlp","num_classes":10,"seed":7}'
    back = ModelSpec.from_json(raw)
    assert back.to_json_bytes() == raw
    assert torch.equal(init_params(back), init_params(spec))


def test_invalid_specs_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="kind"):
        ModelSpec.from_json(b'{"kind":"transformer","input_shape":[4],"num_classes":2}')
    with pytest.raises(ConfigError, match="num_classes"):
        ModelSpec.for_data("mlp", (4,), 1)
    with pytest.raises(ConfigError, match="logreg"):
        build_model(ModelSpec(kind="logreg", input_shape=(4,), num_classes=2, hidden=(3,)))
    with pytest.raises(ConfigError, match="input_shape"):
        build_model(ModelSpec(kind="cnn1d", input_shape=(2, 3, 4), num_classes=2))


def test_default_hidden_is_filled_so_equal_networks_compare_equal() -> None:
    implicit = ModelSpec(kind="cnn", input_shape=(8, 8), num_classes=10)
    explicit = ModelSpec(kind="cnn", input_shape=(8, 8), num_classes=10, hidden=(16, 32))
    assert implicit == explicit and implicit.to_json_bytes() == explicit.to_json_bytes()
    assert ModelSpec(kind="logreg", input_shape=(4,), num_classes=3).hidden == ()


def test_a_declared_training_recipe_is_part_of_the_spec_but_optional() -> None:
    plain = ModelSpec.for_data("mlp", (8, 8), 10)
    # specs written before the field existed keep their bytes, hence their CIDs
    assert plain.training is None and b"training" not in plain.to_json_bytes()
    recipe = TrainingRecipe(epochs=2, lr=0.1, momentum=0.9, batch_size=16)
    declared = ModelSpec.for_data("mlp", (8, 8), 10, training=recipe)
    assert b'"training":{"batch_size":16,"epochs":2,"lr":0.1,"momentum":0.9}' in (
        declared.to_json_bytes()
    )
    assert ModelSpec.from_json(declared.to_json_bytes()) == declared != plain
    assert build_model(declared).state_dict().keys() == build_model(plain).state_dict().keys()
    for bad in ({"epochs": 0}, {"lr": float("inf")}, {"momentum": 1.0}, {"extra": 1}):
        with pytest.raises(ConfigError, match="training"):
            ModelSpec.from_json(
                plain.to_json_bytes()[:-1] + b',"training":' + json.dumps(bad).encode() + b"}"
            )
