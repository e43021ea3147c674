"""Privacy settings and the DP accountant: inconsistent declarations are refused, epsilon
grows with steps and shrinks with noise, and the declared noise keeps the budget."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from marketplace.errors import ConfigError
from marketplace.privacy import DPSettings, PrivacySettings, published_sample_count
from marketplace.privacy.accountant import (
    dp_epsilon,
    noise_for_budget,
    rounds_within_budget,
    spent_epsilon,
)
from marketplace.privacy.declare import project_privacy

READER = "ab" * 32


def test_settings_refuse_clear_updates_without_dp_and_sealing_without_readers() -> None:
    with pytest.raises(ValidationError, match="requires dp"):
        PrivacySettings(public_updates=True)
    with pytest.raises(ValidationError, match="at least one reader"):
        PrivacySettings()
    with pytest.raises(ValidationError, match="local_steps"):
        PrivacySettings(readers=(READER,), dp=DPSettings(noise_multiplier=1, epsilon_budget=8))
    with pytest.raises(ValidationError, match="64 lowercase hex"):
        PrivacySettings(readers=("AB" * 32,))


def test_sample_count_is_bucketed_or_dropped() -> None:
    sealed = PrivacySettings(readers=(READER,))
    assert [published_sample_count(sealed, n) for n in (1, 31, 32, 240, 255)] == [
        1,
        16,
        32,
        128,
        128,
    ]
    assert published_sample_count(sealed.model_copy(update={"sample_count": "drop"}), 240) is None
    assert published_sample_count(None, 240) == 240  # a spec without privacy settings


def test_epsilon_is_monotone_in_steps_and_noise() -> None:
    assert dp_epsilon(0.1, 1.0, 80, 1e-5) < dp_epsilon(0.1, 1.0, 160, 1e-5)
    assert dp_epsilon(0.1, 2.0, 160, 1e-5) < dp_epsilon(0.1, 1.0, 160, 1e-5)
    assert dp_epsilon(0.05, 1.0, 160, 1e-5) < dp_epsilon(0.1, 1.0, 160, 1e-5)
    # subsampling amplifies privacy: one full-batch step is the plain Gaussian mechanism
    assert dp_epsilon(0.01, 1.0, 1, 1e-5) < dp_epsilon(1.0, 1.0, 1, 1e-5)


def test_declared_noise_keeps_every_round_within_the_budget() -> None:
    settings = project_privacy([READER], dp_epsilon=8.0, rounds=10, local_steps=16)
    assert settings.dp is not None
    assert spent_epsilon(settings, 10) <= 8.0 < spent_epsilon(settings, 11)
    assert rounds_within_budget(settings) == 10
    tighter = noise_for_budget(0.1, 160, 2.0, 1e-5)
    assert tighter > settings.dp.noise_multiplier
    with pytest.raises(ConfigError, match="number of rounds"):
        project_privacy([READER], dp_epsilon=8.0)
    with pytest.raises(ConfigError, match="requires dp"):
        project_privacy([], public_updates=True)
