"""Truncated Monte Carlo Shapley (Ghorbani & Zou 2019, "Data Shapley", Algorithm 1).

Sample uniformly random permutations, scan each one adding players in order, and credit
each player its marginal contribution; once the prefix is within the performance
tolerance of U(all), truncate (remaining marginals are 0). The estimate is the mean over
permutations; sampling stops when the running estimates of the last ``window``
permutations agree within ``convergence_tol`` (the paper's 5% over 100 iterations).

Here the tolerance is relative to the round's gain ``|U(all) - U(empty)|`` so that one
setting fits accuracy and loss utilities alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from marketplace.contribution.result import ContributionResult
from marketplace.contribution.sampling import (
    permutation_marginals,
    running_means,
    window_disagreement,
)
from marketplace.contribution.utility import Utility, full_mask
from marketplace.errors import ConfigError


@dataclass(frozen=True)
class TMCConfig:
    """Settings of :func:`tmc_shapley`.

    Attributes:
        tolerance: truncate a permutation once ``|U(all) - U(prefix)|`` is at most
            ``tolerance * |U(all) - U(empty)|``; None disables truncation.
        min_permutations: never stop before this many permutations.
        max_permutations: hard cap on permutations.
        window: how many latest running estimates must agree.
        convergence_tol: relative L1 agreement required across the window.
        block: permutations walked together (one evaluator call per step per block).
    """

    tolerance: float | None = 0.01
    min_permutations: int = 100
    max_permutations: int = 1000
    window: int = 100
    convergence_tol: float = 0.05
    block: int = 20

    def __post_init__(self) -> None:
        if self.min_permutations < 1 or self.max_permutations < self.min_permutations:
            raise ConfigError("TMC needs 1 <= min_permutations <= max_permutations")
        if self.block < 1 or self.window < 1:
            raise ConfigError("TMC block and window must be positive")


def tmc_shapley(
    utility: Utility, config: TMCConfig | None = None, *, seed: int = 0
) -> ContributionResult:
    """TMC-Shapley estimate of every player's value; deterministic given ``seed``."""
    cfg = config or TMCConfig()
    n = utility.n
    start = utility.evaluations
    v_empty, v_all = utility.values([0, full_mask(n)])
    threshold = None if cfg.tolerance is None else cfg.tolerance * abs(v_all - v_empty)
    rng = np.random.default_rng(seed)
    blocks: list[np.ndarray] = []
    done = 0
    reason = "max_permutations"
    while done < cfg.max_permutations:
        count = min(cfg.block, cfg.max_permutations - done)
        perms = np.stack([rng.permutation(n) for _ in range(count)])
        marginals, _ = permutation_marginals(utility, perms, v_empty, v_all, threshold)
        blocks.append(marginals)
        done += count
        if done >= cfg.min_permutations:
            history = running_means(np.concatenate(blocks))
            if window_disagreement(history, cfg.window) <= cfg.convergence_tol:
                reason = "converged"
                break
    samples = np.concatenate(blocks)
    phi = samples.mean(axis=0)
    return ContributionResult(
        values=torch.from_numpy(phi),
        evaluations=utility.evaluations - start,
        details={
            "method": "tmc",
            "permutations": int(samples.shape[0]),
            "stop": reason,
            "v_empty": v_empty,
            "v_all": v_all,
        },
    )
