"""Build a project's :class:`PrivacySettings` from what an owner decides: the readers, and
optionally an epsilon budget for the whole project, from which the noise multiplier is
derived (the smallest noise that keeps ``rounds`` rounds of ``local_steps`` steps within the
budget). ``aggregator spec`` and the simulator both declare privacy through here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import ValidationError

from marketplace.errors import ConfigError
from marketplace.learning.privacy_spec import DPSettings, PrivacySettings
from marketplace.privacy.accountant import noise_for_budget

#: Local steps per update when DP is on and none are given (16 steps of rate 0.1 are
#: ~1.6 epochs of a shard).
DEFAULT_DP_STEPS = 16


def project_privacy(
    readers: Sequence[str],
    *,
    public_updates: bool = False,
    dp_epsilon: float | None = None,
    rounds: int | None = None,
    local_steps: int | None = None,
    sample_rate: float = 0.1,
    clip_norm: float = 1.0,
    delta: float = 1e-5,
    noise_multiplier: float | None = None,
    min_samples: int = 32,
    sample_count: Literal["bucket", "drop"] = "bucket",
) -> PrivacySettings:
    """The settings an owner declares (see the module docstring); :class:`ConfigError` on
    an inconsistent choice."""
    dp = None
    if dp_epsilon is not None:
        if rounds is None:
            raise ConfigError("a DP budget needs the project's number of rounds (--rounds)")
        local_steps = local_steps or DEFAULT_DP_STEPS
        if noise_multiplier is None:
            steps = rounds * local_steps
            noise_multiplier = noise_for_budget(sample_rate, steps, dp_epsilon, delta)
        try:
            dp = DPSettings(
                noise_multiplier=noise_multiplier,
                clip_norm=clip_norm,
                sample_rate=sample_rate,
                epsilon_budget=dp_epsilon,
                delta=delta,
            )
        except ValidationError as exc:
            raise ConfigError(f"invalid DP settings: {exc.errors()[0]['msg']}") from None
    try:
        return PrivacySettings(
            readers=tuple(readers),
            public_updates=public_updates,
            dp=dp,
            min_samples=min_samples,
            local_steps=local_steps,
            sample_count=sample_count,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "privacy"
        raise ConfigError(f"invalid privacy settings: {where}: {first['msg']}") from None
