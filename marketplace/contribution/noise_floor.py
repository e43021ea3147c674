"""The noise floor: a round score counts only when the update beats a random one.

Why: a Shapley value measures how much an update moves the validation utility, and a
random update moves it too. With a smooth utility the marginal gain of a random vector
``r`` is to first order ``grad . r``: zero on average but, per round, as likely positive
as negative, and per-round scores are clipped at 0 (``payable.py``). A trainer that sends
``N(0, sigma^2)`` noise instead of training therefore earned about half the time
(measured before this test: 11-18% of the reward on MNIST-1D, Dirichlet 0.5, 10 trainers,
2 noise senders; issue 13). So each inlier's update is tested against the gains of
``samples`` random updates of the *same norm* in the same place of the game, and its
round score is paid only when its gain is above ``mean + z * std`` of theirs. The test is
scale-free (the baseline has the update's norm, so neither a smaller nor a larger noise
helps) and needs no tuning per dataset: a random direction in ``d`` dimensions has a
cosine of about ``1/sqrt(d)`` with the gradient, while a trained update's is orders of
magnitude larger (measured on digits, MNIST-1D and synthetic, IID and Dirichlet 0.3,
rounds 1-6: honest gains sat 3-90 standard deviations above the noise baseline unless
the update did not help on the validation data at all, noise updates within +-3).

Where in the game: the gain of a vector ``x`` for player ``i`` is the mean of its
marginals at the two ends of the game, alone (``U(g + x) - U(g)``) and last
(``U(N-i + x) - U(N-i)``), the coalitions that bracket every marginal the Shapley value
averages.

The novelty test: an update must also carry information that was not public when its
trainer committed. With commit-then-reveal, the only updates a trainer can read before
committing are the previous round's revealed ones (``public``); a copier that resubmits
one of them, with or without noise, would pass the first test, since a stale update still
helps. So the part of the update not explained by the most similar public update of
another trainer (least-squares residual ``u - beta p``) must pass the same test. For a
copy plus noise that residual is the noise; for an honest update it is the fresh part of
its trainer's gradient. Limits: a copier that mixes several public updates is only
caught when the residual after the best single one is still noise-like, and an honest
update whose fresh part is too small to beat noise (a converged IID round) is not paid
for that round (its trainer's earlier rounds still count).

Deterministic given the seed: the random directions come from a torch generator seeded
from the round's seed, so an auditor's replay computes the same verdicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from marketplace.contribution.utility import SubsetUtility, full_mask


class NoiseFloorConfig(BaseModel):
    """How strict the noise floor is (part of the project's contribution config).

    ``samples`` random updates per test estimate the baseline's mean and spread;
    ``z`` is how many standard deviations above that mean a gain must be.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    samples: int = Field(default=24, ge=4, le=1024)
    z: float = Field(default=4.0, gt=0, allow_inf_nan=False)


@dataclass(frozen=True)
class FloorVerdict:
    """One player's test: z-scores of its gain and of its novel part (None: not run)."""

    signal_z: float
    novelty_z: float | None
    passed: bool
    reason: str | None = None


def _unit_directions(count: int, d: int, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    r = torch.randn(count, d, generator=gen, dtype=torch.float64)
    return r / torch.linalg.vector_norm(r, dim=1, keepdim=True)


def _novel_part(update: Tensor, public: Tensor) -> Tensor:
    """``update`` minus its least-squares fit by the public row most similar to it."""
    u = update.to(torch.float64)
    p = public.to(torch.float64)
    norms = torch.linalg.vector_norm(p, dim=1)
    usable = norms > 0
    if not bool(usable.any()):
        return u
    cos = (p @ u) / (norms.clamp_min(1e-300) * torch.linalg.vector_norm(u).clamp_min(1e-300))
    cos = torch.where(usable, cos.abs(), torch.full_like(cos, -1.0))
    best = p[int(cos.argmax())]
    return u - (u @ best) / (best @ best) * best


def noise_floor(
    utility: SubsetUtility,
    config: NoiseFloorConfig,
    seed: int,
    public: Mapping[int, Tensor] | None = None,
) -> list[FloorVerdict]:
    """Test every player of ``utility`` against random updates (module docstring).

    ``public[i]`` holds the rows (``[k, d]``, in the utility's update space) that player
    ``i`` could have read before committing, its own excluded; a player absent from it
    gets only the first test. Needs ``step="share"`` (a player's step is ``w_i / W``
    times its update). Returns one verdict per player, in player order.
    """
    n = utility.n
    g = utility.global_params.to(torch.float64)
    shares = utility.shares()
    everyone = full_mask(n)
    base = utility.values([0] + [everyone & ~(1 << i) for i in range(n)])
    u_empty = base[0]
    k = config.samples
    directions = _unit_directions(k, g.numel(), seed)
    rows: list[Tensor] = []
    plan: list[tuple[int, str]] = []  # (player, test) per block of 2 + 2k rows
    for i in range(n):
        step_i = shares[i] * utility.updates[i].to(torch.float64)
        rest = utility.params_of([everyone & ~(1 << i)])[0].to(torch.float64)
        tests = [("signal", step_i)]
        if public is not None and i in public and public[i].shape[0] > 0:
            tests.append(("novelty", shares[i] * _novel_part(utility.updates[i], public[i])))
        for name, x in tests:
            noise = directions * torch.linalg.vector_norm(x)
            rows += [(g + x).unsqueeze(0), (rest + x).unsqueeze(0), g + noise, rest + noise]
            plan.append((i, name))
    values = utility.evaluate_params(torch.cat(rows).to(utility.updates.dtype)) if rows else None
    scores: dict[tuple[int, str], float] = {}
    for b, (i, name) in enumerate(plan):
        assert values is not None
        block = values[b * (2 + 2 * k) : (b + 1) * (2 + 2 * k)]
        u_rest = base[1 + i]
        gain = 0.5 * ((float(block[0]) - u_empty) + (float(block[1]) - u_rest))
        noise_gains = 0.5 * ((block[2 : 2 + k] - u_empty) + (block[2 + k :] - u_rest))
        mean = float(noise_gains.mean())
        spread = max(float(noise_gains.std()), 1e-12 * max(1.0, abs(mean)))
        scores[(i, name)] = (gain - mean) / spread
    verdicts: list[FloorVerdict] = []
    for i in range(n):
        signal = scores[(i, "signal")]
        novelty = scores.get((i, "novelty"))
        reason = None
        if signal <= config.z:
            reason = (
                f"noise floor: its gain is {signal:.1f} sd above random updates of the same "
                f"norm (needs > {config.z:g}): not better than noise"
            )
        elif novelty is not None and novelty <= config.z:
            reason = (
                f"noise floor: what it adds to the closest update published last round is "
                f"{novelty:.1f} sd above random (needs > {config.z:g}): a copy of public work"
            )
        verdicts.append(FloorVerdict(signal, novelty, reason is None, reason))
    return verdicts
