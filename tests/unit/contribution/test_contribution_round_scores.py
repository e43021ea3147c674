"""The round's score function (rounds/scoring.py) on a real model: seeded, replayable,
outliers get nothing, and the methods are selectable."""

from __future__ import annotations

import pytest
import torch

from marketplace.errors import ConfigError
from marketplace.learning import ModelSpec, TrainConfig, init_params, load_dataset, local_train
from marketplace.rounds import ContributionConfig, RoundConfig, RoundState, run_round
from marketplace.rounds.scoring import EQUAL_SHARE


def _round(method: str = "gtg", seed: int = 4):
    train, validation = load_dataset("synthetic", 0, num_samples=500)
    spec = ModelSpec.for_data("logreg", train.input_shape, train.num_classes, seed=0)
    g = init_params(spec)
    updates = []
    for i in range(5):
        part = train.subset(torch.arange(i * 60, (i + 1) * 60 - 10 * i))
        updates.append(local_train(spec, g, part, TrainConfig(lr=0.1, seed=i)))
    updates.append(-3.0 * updates[0])  # a sign-flipping outlier
    config = RoundConfig(contribution=ContributionConfig(method=method))  # type: ignore[arg-type]
    weights = [60.0 - 10 * i for i in range(5)] + [60.0]
    state = RoundState.initial(config.hyper)
    return run_round(
        g, updates, weights, config, state, spec=spec, validation=validation, seed=seed
    )


def test_scores_are_seeded_replayable_and_zero_for_outliers() -> None:
    a, b = _round(), _round()
    assert a.scores == b.scores
    assert 5 not in a.inliers and len(a.scores) == len(a.inliers)
    assert len(set(a.scores)) > 1 and sum(a.scores) > 0
    assert a.metrics["seed"] == 4


@pytest.mark.parametrize("method", ["exact", "tmc", "loo"])
def test_other_estimators_agree_on_the_least_useful_trainer(method: str) -> None:
    exact = _round("exact")
    other = _round(method)
    assert other.inliers == exact.inliers
    assert other.scores.index(min(other.scores)) == exact.scores.index(min(exact.scores))


def test_equal_method_gives_equal_shares() -> None:
    out = _round("equal")
    assert out.scores == [EQUAL_SHARE] * len(out.inliers)


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError):
        ContributionConfig(method="banzhaf")  # type: ignore[arg-type]
    assert issubclass(ConfigError, Exception)


@pytest.mark.parametrize("rule", ["fedavg", "median", "trimmed_mean", "norm_clip"])
def test_boosting_an_update_does_not_buy_a_larger_share(rule: str) -> None:
    """A trainer that multiplies its honest update by 3 was scored on the boosted vector:
    below the loss-optimal step a longer step gains more, so it took about 3 shares under
    every rule that keeps it whole (red team: 17-37% of the reward for one booster of 10).
    Scored updates are bounded by the inliers' median norm, so boosting buys nothing."""
    train, validation = load_dataset("synthetic", 0, num_samples=500)
    spec = ModelSpec.for_data("logreg", train.input_shape, train.num_classes, seed=0)
    g = init_params(spec)
    honest = [
        local_train(
            spec, g, train.subset(torch.arange(i * 60, (i + 1) * 60)), TrainConfig(lr=0.05, seed=i)
        )
        for i in range(5)
    ]
    config = RoundConfig(rule=rule, contribution=ContributionConfig(method="exact"))

    def share_of_4(updates: list[torch.Tensor]) -> float:
        out = run_round(
            g, updates, [60.0] * 5, config, RoundState.initial(config.hyper),
            spec=spec, validation=validation, seed=1,
        )  # fmt: skip
        assert 4 in out.inliers
        return out.scores[out.inliers.index(4)] / sum(out.scores)

    plain = share_of_4(honest)
    boosted = share_of_4([*honest[:4], 3.0 * honest[4]])
    assert boosted <= plain + 0.05, (plain, boosted)
