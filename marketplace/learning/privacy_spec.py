"""A project's privacy settings: who may read an update, with how much noise, and what
its metadata may say. They are part of the model spec, so they are committed on-chain by
the spec's CID when the project is created, and every party reads the same ones.

The default (``ledgerlearn aggregator spec``) seals every update to the project's readers
(:mod:`marketplace.privacy.envelope`): an outside observer who fetches a CID gets
ciphertext. ``public_updates`` is the only way to publish updates in clear, and it
requires differential privacy (:class:`DPSettings`), because a plain update of a small
model hands out training images (first-layer rows divided by bias deltas: Phong et al.
2017, "Privacy-Preserving Deep Learning via Additively Homomorphic Encryption"; Fowl et
al. 2022, "Robbing the Fed").
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_HEX32 = re.compile(r"^[0-9a-f]{64}$")
#: Most readers a project may name (each adds ~100 bytes to every sealed update).
MAX_READERS = 16


class DPSettings(BaseModel):
    """Trainer-side DP-SGD (Abadi et al. 2016, "Deep Learning with Differential Privacy").

    Every local step samples each example with probability ``sample_rate`` (Poisson
    sampling), clips each example's gradient to ``clip_norm``, adds Gaussian noise of
    standard deviation ``noise_multiplier * clip_norm`` to the sum and divides by the
    expected batch size. Because the rate, the noise and the number of steps are all
    declared here, every trainer's (epsilon, delta) after round r is the same public number
    (:func:`marketplace.privacy.accountant.spent_epsilon`): reporting it reveals nothing
    about the trainer's shard, and the aggregator recomputes it to check the claim.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    noise_multiplier: float = Field(gt=0, le=100, allow_inf_nan=False)
    clip_norm: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    sample_rate: float = Field(default=0.1, gt=0, le=1, allow_inf_nan=False)
    epsilon_budget: float = Field(gt=0, le=1000, allow_inf_nan=False)
    delta: float = Field(default=1e-5, gt=0, lt=1, allow_inf_nan=False)


class PrivacySettings(BaseModel):
    """Who may read an individual update, and what else a trainer publishes.

    ``readers``: X25519 public keys (64 hex characters) every update is sealed to; the
    aggregator's is always one (``aggregator spec`` adds it). ``public_updates``: publish
    updates in clear instead (an explicit opt-in that requires ``dp``). ``min_samples``: a
    trainer with a smaller shard refuses to train (small shards leak the most).
    ``local_steps``: every update is exactly this many local SGD steps, whatever the shard
    size (None: the recipe's epochs over the shard; required with ``dp``).
    ``sample_count``: the count a trainer publishes as its aggregation weight, ``bucket``
    (rounded down to a power of two) or ``drop`` (not published: equal weights).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    readers: tuple[str, ...] = Field(default=(), max_length=MAX_READERS)
    public_updates: bool = False
    dp: DPSettings | None = None
    min_samples: int = Field(default=32, ge=1)
    local_steps: int | None = Field(default=None, ge=1, le=100_000)
    sample_count: Literal["bucket", "drop"] = "bucket"

    @field_validator("readers")
    @classmethod
    def _hex_keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for key in value:
            if not _HEX32.match(key):
                raise ValueError(f"reader key {key!r} is not 64 lowercase hex characters")
        if len(set(value)) != len(value):
            raise ValueError("a reader key is listed twice")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PrivacySettings:
        if self.public_updates and self.dp is None:
            raise ValueError("public_updates requires dp: updates in clear must be noised")
        if not self.public_updates and not self.readers:
            raise ValueError(
                "name at least one reader (the aggregator), or opt in to public_updates with dp"
            )
        if self.dp is not None and self.local_steps is None:
            raise ValueError("dp requires local_steps: the budget counts declared steps")
        return self

    @property
    def sealed(self) -> bool:
        """Whether updates are encrypted to the readers."""
        return not self.public_updates


def published_sample_count(settings: PrivacySettings | None, num_samples: int) -> int | None:
    """The sample count a trainer publishes: exact without settings (a legacy spec), else
    rounded down to a power of two (``bucket``) or nothing (``drop``)."""
    if settings is None:
        return num_samples
    if settings.sample_count == "drop" or num_samples < 1:
        return None
    return 2 ** int(math.floor(math.log2(num_samples)))
