"""The privacy accountant: epsilon spent by a trainer after r rounds of DP-SGD.

Renyi DP of the Poisson-subsampled Gaussian mechanism (Mironov 2017, "Renyi Differential
Privacy"; Mironov, Talwar and Zhang 2019 for subsampling), composed over every local step
of every round and converted to (epsilon, delta), by Google's ``dp-accounting`` (pinned).
Every input is a public value of the project's spec (sample rate, noise multiplier, local
steps) and the round number, so the trainer, the aggregator and any auditor compute the
same epsilon.
"""

from __future__ import annotations

import logging
import math
from functools import lru_cache

from marketplace.errors import ConfigError
from marketplace.learning.privacy_spec import PrivacySettings

#: Integer Renyi orders (fractional orders make dp-accounting's series warn and skip).
_ORDERS = tuple(range(2, 64)) + (80, 96, 128, 192, 256, 512, 1024)


@lru_cache(maxsize=256)
def dp_epsilon(sample_rate: float, noise_multiplier: float, steps: int, delta: float) -> float:
    """(epsilon, ``delta``)-DP epsilon of ``steps`` Poisson-subsampled Gaussian steps."""
    import dp_accounting
    from dp_accounting.rdp import rdp_privacy_accountant

    logging.getLogger("absl").setLevel(logging.ERROR)
    if steps <= 0:
        return 0.0
    accountant = rdp_privacy_accountant.RdpAccountant(list(_ORDERS))
    event = dp_accounting.PoissonSampledDpEvent(
        sample_rate, dp_accounting.GaussianDpEvent(noise_multiplier)
    )
    accountant.compose(event, steps)
    return float(accountant.get_epsilon(delta))


def spent_epsilon(settings: PrivacySettings, rounds: int) -> float:
    """Epsilon a trainer has spent after taking part in ``rounds`` rounds."""
    dp = settings.dp
    if dp is None or settings.local_steps is None:
        raise ConfigError("the project declares no differential privacy")
    return dp_epsilon(dp.sample_rate, dp.noise_multiplier, rounds * settings.local_steps, dp.delta)


def rounds_within_budget(settings: PrivacySettings, max_rounds: int = 10_000) -> int:
    """How many rounds a trainer can take part in before its epsilon passes the budget."""
    assert settings.dp is not None
    budget = settings.dp.epsilon_budget
    low, high = 0, max_rounds
    while low < high:
        mid = (low + high + 1) // 2
        if spent_epsilon(settings, mid) <= budget:
            low = mid
        else:
            high = mid - 1
    return low


def noise_for_budget(
    sample_rate: float, steps: int, epsilon: float, delta: float, tolerance: float = 1e-3
) -> float:
    """The smallest noise multiplier whose ``steps`` steps stay within ``epsilon``
    (bisection; what ``aggregator spec --dp-epsilon`` declares)."""
    low, high = 0.3, 50.0
    if dp_epsilon(sample_rate, high, steps, delta) > epsilon:
        raise ConfigError(f"no noise multiplier up to {high} reaches epsilon {epsilon}")
    while high - low > tolerance:
        mid = round((low + high) / 2, 6)
        if dp_epsilon(sample_rate, mid, steps, delta) <= epsilon:
            high = mid
        else:
            low = mid
    return math.ceil(high * 10_000) / 10_000
