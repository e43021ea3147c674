"""Which contexts did the answer depend on? Leave-one-out and Shapley over contexts.

The cooperative game: players are the k contexts given to the generator; the value of a
coalition S is ``U(S) = 1`` if the generator, given only the contexts in S (in their
original order), produces the target answer, else 0, or, for a generator that can score
an answer (:class:`drag.generate.ScoringGenerator`), its support for the target. The
target is the ground truth when known, or the answer produced from all contexts (then the
game asks which contexts made *this* answer, right or wrong). Other utilities (e.g.
token-F1) plug in as a callable.

- leave-one-out: ``phi_i = U(N) - U(N \\ {i})`` (k + 1 generator calls);
- exact Shapley (Shapley 1953): the average marginal contribution over all orderings,
  ``sum_S |S|! (k-|S|-1)! / k! * (U(S + i) - U(S))``, 2^k calls: refused above
  ``max_exact`` contexts;
- Monte Carlo Shapley over permutations (Castro et al. 2009) for larger k, seeded.

Identical contexts (one passage returned by several sources) are one player: removing a
passage removes every copy of it, and its value is split equally between its copies (so
each source that returned it gets the same share). Otherwise two copies would each look
redundant given the other, and the game would have more players than distinct passages.

Utility evaluations are memoised per coalition, so Shapley after leave-one-out costs no
repeated calls. Pure given a deterministic generator.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from drag.generate import Generator, ScoringGenerator, Weights, check_weights, normalize_answer
from marketplace.errors import AssumptionViolated, ConfigError

Coalition = frozenset[int]
Utility = Callable[[Coalition], float]


class MemoUtility:
    """Wrap a coalition utility with a cache and a call counter."""

    def __init__(self, fn: Utility) -> None:
        self._fn = fn
        self._cache: dict[Coalition, float] = {}
        self.calls = 0

    def __call__(self, coalition: Coalition) -> float:
        if coalition not in self._cache:
            self.calls += 1
            self._cache[coalition] = float(self._fn(coalition))
        return self._cache[coalition]


def leave_one_out(n: int, utility: Utility) -> np.ndarray:
    """``phi_i = U(all) - U(all without i)`` for each of ``n`` players."""
    full = frozenset(range(n))
    base = utility(full)
    return np.asarray([base - utility(full - {i}) for i in range(n)], dtype=np.float64)


def shapley_exact(n: int, utility: Utility, max_exact: int = 10) -> np.ndarray:
    """Exact Shapley values by enumerating all 2^n coalitions.

    Assumes ``n <= max_exact``: the cost is 2^n utility evaluations (each a generator
    call); above that use :func:`shapley_monte_carlo`.
    """
    if n > max_exact:
        raise AssumptionViolated(
            f"exact Shapley over {n} contexts needs 2^{n} generator calls (limit "
            f"max_exact={max_exact}); use shapley_monte_carlo or fewer contexts"
        )
    phi = np.zeros(n, dtype=np.float64)
    fact = [math.factorial(i) for i in range(n + 1)]
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            weight = fact[size] * fact[n - size - 1] / fact[n]
            for subset in itertools.combinations(others, size):
                s = frozenset(subset)
                phi[i] += weight * (utility(s | {i}) - utility(s))
    return phi


def shapley_monte_carlo(n: int, utility: Utility, permutations: int, seed: int) -> np.ndarray:
    """Shapley values estimated from ``permutations`` random orderings (Castro et al. 2009)."""
    if permutations < 1:
        raise ConfigError(f"permutations={permutations}; use at least one permutation")
    rng = np.random.default_rng(seed)
    phi = np.zeros(n, dtype=np.float64)
    for _ in range(permutations):
        order = rng.permutation(n)
        coalition: Coalition = frozenset()
        prev = utility(coalition)
        for i in order:
            coalition = coalition | {int(i)}
            value = utility(coalition)
            phi[int(i)] += value - prev
            prev = value
    return phi / permutations


def answer_utility(
    generator: Generator,
    question: str,
    contexts: Sequence[str],
    targets: Sequence[str],
    soft: bool | None = None,
    weights: Weights = None,
) -> Utility:
    """The value of a coalition of contexts for producing one of ``targets``.

    Binary (default for black-box generators): ``U(S) = 1`` if the generator answers a
    target from the contexts in S, else 0. Soft (default when the generator is a
    :class:`ScoringGenerator`): ``U(S)`` is its support score for the best target, which
    also registers passages that argue against the target without flipping the answer.
    Answers are compared after :func:`normalize_answer`. ``weights`` (one per context)
    go to the generator with the contexts of each coalition, so the game values what the
    generator actually does with them.
    """
    credibility = check_weights(contexts, weights)
    goals = {normalize_answer(t) for t in targets} - {""}
    use_soft = isinstance(generator, ScoringGenerator) if soft is None else soft
    if use_soft and not isinstance(generator, ScoringGenerator):
        raise ConfigError("soft attribution needs a generator with answer_score()")

    def utility(coalition: Coalition) -> float:
        members = sorted(coalition)
        chosen = [contexts[i] for i in members]
        given = [credibility[i] for i in members] if weights is not None else None
        if use_soft:
            scorer: ScoringGenerator = generator  # type: ignore[assignment]
            return max(
                (scorer.answer_score(question, chosen, t, given) for t in targets), default=0.0
            )
        answer = generator.generate(question, chosen, given)
        return 1.0 if normalize_answer(answer.text) in goals else 0.0

    return utility


@dataclass(frozen=True)
class Attribution:
    """Per-context attribution scores of one answer."""

    answer: str
    target: str
    scores: tuple[float, ...]
    method: str
    generator_calls: int


def attribute(
    generator: Generator,
    question: str,
    contexts: Sequence[str],
    method: Literal["loo", "shapley", "auto"] = "auto",
    target: str | Sequence[str] | None = None,
    max_exact: int = 8,
    permutations: int = 64,
    seed: int = 0,
    soft: bool | None = None,
    weights: Weights = None,
) -> Attribution:
    """Attribute over ``contexts`` the production of ``target`` (one or several accepted
    answers; by default the answer from all contexts).

    ``method="auto"`` uses exact Shapley up to ``max_exact`` contexts and Monte Carlo
    Shapley above; ``"loo"`` is the cheap k+1-call variant. ``soft`` and ``weights`` (one
    per context, what the generator was given): see :func:`answer_utility`.
    """
    answer = generator.generate(question, contexts, weights).text
    targets = [answer] if target is None else [target] if isinstance(target, str) else list(target)
    if not contexts:
        return Attribution(answer, targets[0], (), "none", 1)
    # players: distinct passages; a coalition of them stands for all their copies
    distinct = list(dict.fromkeys(contexts))
    player = [distinct.index(c) for c in contexts]
    per_context = answer_utility(generator, question, contexts, targets, soft, weights)

    def copies(coalition: Coalition) -> float:
        return per_context(frozenset(i for i, p in enumerate(player) if p in coalition))

    utility = MemoUtility(copies)
    n = len(distinct)
    if method == "loo":
        scores, used = leave_one_out(n, utility), "loo"
    elif method == "shapley" or (method == "auto" and n <= max_exact):
        scores, used = shapley_exact(n, utility, max_exact=max_exact), "shapley"
    elif method == "auto":
        scores, used = shapley_monte_carlo(n, utility, permutations, seed), "shapley_mc"
    else:
        raise ConfigError(f"unknown attribution method {method!r}; use loo, shapley or auto")
    counts = [player.count(p) for p in range(n)]
    shared = tuple(float(scores[p]) / counts[p] for p in player)
    return Attribution(answer, targets[0], shared, used, utility.calls + 1)
