"""What a trainer publishes under the project's privacy settings, and what a reader admits.

Trainer side (:func:`private_train_config`, :func:`update_metadata`, :func:`encode_update`):
the batch order and the DP noise are seeded by the trainer's private secret (never by
public values, so nobody can replay its training on a guessed dataset and confirm the
guess bit for bit); the shard must hold the project's ``min_samples``; the declared number
of local steps and DP-SGD are applied; the sample count is bucketed or dropped; the epsilon
spent so far is reported and a round that would pass the budget is refused; the blob is
sealed to the project's readers.

Reader side (:func:`open_blob`, :func:`privacy_problem`): the aggregator (or an auditor
with a reader key) opens a sealed blob, checks that its public header says what the inner
blob says, and that the reported epsilon is present, equals the accountant's and is within
the budget the spec declares. Failures raise or name an ``update rejected (kind)`` reason
that :mod:`marketplace.rounds.validate` turns into a rejection.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from marketplace.errors import ConfigError, UpdateRejected
from marketplace.learning.models import ModelSpec
from marketplace.learning.privacy_spec import PrivacySettings, published_sample_count
from marketplace.learning.train import TrainConfig
from marketplace.privacy.accountant import spent_epsilon
from marketplace.privacy.envelope import is_sealed, open_envelope, seal
from marketplace.privacy.keys import ReaderKey, secret_seed

META_EPSILON = "dp_epsilon"
META_DELTA = "dp_delta"
META_SAMPLES = "num_samples"
#: Reported epsilons are rounded up to this many decimals.
_EPS_DECIMALS = 6


class PrivacyBudgetExceeded(ConfigError):
    """Publishing this update would spend more epsilon than the project's budget."""


def private_train_config(
    spec: ModelSpec,
    base: TrainConfig,
    secret: bytes,
    project_id: int,
    round_: int,
    index: int,
    num_samples: int,
) -> TrainConfig:
    """The training config of one update: seeded by ``secret``; with the spec's declared
    local steps and DP-SGD. Refuses a shard under the project's ``min_samples``."""
    seed = secret_seed(secret, project_id, round_, index, base.seed)
    settings = spec.privacy
    if settings is None:
        return base.model_copy(update={"seed": seed})
    if num_samples < settings.min_samples:
        raise ConfigError(
            f"this trainer holds {num_samples} samples, the project requires at least "
            f"{settings.min_samples} (small shards leak the most): add data"
        )
    update: dict[str, object] = {"seed": seed, "steps": settings.local_steps}
    if settings.dp is not None:
        update |= {
            "dp_noise": settings.dp.noise_multiplier,
            "dp_clip": settings.dp.clip_norm,
            "sample_rate": settings.dp.sample_rate,
        }
    return base.model_copy(update=update)


def reported_epsilon(settings: PrivacySettings, round_: int) -> str:
    """The epsilon after ``round_`` rounds as published (rounded up, fixed decimals)."""
    eps = spent_epsilon(settings, round_)
    scale = 10**_EPS_DECIMALS
    return f"{math.ceil(eps * scale) / scale:.{_EPS_DECIMALS}f}"


def update_metadata(
    spec: ModelSpec, base: Mapping[str, str], round_: int, num_samples: int
) -> dict[str, str]:
    """``base`` plus the sample count as the settings allow and, under DP, the epsilon and
    delta spent after ``round_``; :class:`PrivacyBudgetExceeded` past the budget."""
    meta = dict(base)
    count = published_sample_count(spec.privacy, num_samples)
    if count is not None:
        meta[META_SAMPLES] = str(count)
    settings = spec.privacy
    if settings is not None and settings.dp is not None:
        epsilon = reported_epsilon(settings, round_)
        if float(epsilon) > settings.dp.epsilon_budget:
            raise PrivacyBudgetExceeded(
                f"round {round_} would spend epsilon {epsilon}, over the project's budget "
                f"{settings.dp.epsilon_budget}: the update is not published"
            )
        meta[META_EPSILON] = epsilon
        meta[META_DELTA] = repr(settings.dp.delta)
    return meta


def encode_update(
    spec: ModelSpec,
    inner: bytes,
    metadata: Mapping[str, str],
    secret: bytes,
    replayers: Sequence[str] = (),
) -> bytes:
    """The bytes a trainer stores: ``inner`` (the safetensors update) sealed to the spec's
    readers and to ``replayers`` (hex keys of the co-trainers that replay and attest an
    attested project's rounds: all of them, never a prefix, or the ones cut off could not
    attest) with ``metadata`` as its public header, or ``inner`` itself when updates are
    public (or the spec predates privacy settings)."""
    settings = spec.privacy
    if settings is None or not settings.sealed:
        return inner
    readers = list(dict.fromkeys([*settings.readers, *replayers]))
    return seal(inner, metadata, readers, secret)


def open_blob(
    spec: ModelSpec, data: bytes, reader: ReaderKey | None
) -> tuple[bytes, dict[str, str] | None]:
    """The inner blob of fetched bytes and the envelope's public metadata (None for a
    plain blob). A plain blob where the spec requires sealing is refused (``privacy``)."""
    if is_sealed(data):
        return open_envelope(data, reader)
    settings = spec.privacy
    if settings is not None and settings.sealed:
        raise UpdateRejected.because(
            "privacy", "published in clear, but the project requires updates sealed to its readers"
        )
    return data, None


def privacy_problem(
    spec: ModelSpec, metadata: Mapping[str, str], public: Mapping[str, str] | None, round_: int
) -> tuple[str, str] | None:
    """``(kind, detail)`` when an opened update breaks the project's privacy rules."""
    if public is not None and dict(public) != dict(metadata):
        return "sealed", "the envelope's public metadata differs from the sealed update's"
    settings = spec.privacy
    if settings is None or settings.dp is None:
        return None
    text = metadata.get(META_EPSILON)
    if text is None:
        return "privacy", "no dp_epsilon reported; the project requires differential privacy"
    try:
        claimed = float(text)
    except ValueError:
        return "privacy", f"dp_epsilon {text[:40]!r} is not a number"
    if not math.isfinite(claimed) or claimed > settings.dp.epsilon_budget:
        return "privacy", (
            f"reported epsilon {text[:40]} exceeds the project's budget "
            f"{settings.dp.epsilon_budget}"
        )
    expected = reported_epsilon(settings, round_)
    if text != expected:
        return "privacy", f"reported epsilon {text[:40]} is not the accountant's {expected}"
    if float(expected) > settings.dp.epsilon_budget:
        return "privacy", f"round {round_} passes the budget {settings.dp.epsilon_budget}"
    return None
