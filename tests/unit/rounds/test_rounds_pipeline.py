"""The round pipeline: deterministic, robust to attackers, safe on degenerate rounds, and
the contribution-score seam."""

from __future__ import annotations

import pytest
import torch

from marketplace.errors import ConfigError
from marketplace.learning import ModelSpec, load_dataset, num_params
from marketplace.rounds import (
    EQUAL_SHARE,
    HyperConfig,
    RoundConfig,
    RoundContext,
    RoundState,
    ServerHyper,
    run_round,
)
from marketplace.rounds.codec import encode_params

SPEC = ModelSpec.for_data("logreg", (4,), 3, seed=1)
D = num_params(SPEC)


def _honest(n: int, seed: int = 0, d: int = D) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(d, generator=gen)
    return [base + 0.2 * torch.randn(d, generator=gen) for _ in range(n)]


def _state() -> RoundState:
    return RoundState.initial(HyperConfig())


def test_same_inputs_give_identical_bytes() -> None:
    updates = _honest(6)
    updates[2] = -5 * updates[2]
    a = run_round(torch.zeros(D), updates, [10.0] * 6, RoundConfig(), _state())
    b = run_round(torch.zeros(D), [u.clone() for u in updates], [10.0] * 6, RoundConfig(), _state())
    assert encode_params(SPEC, a.new_global_params, {}) == encode_params(
        SPEC, b.new_global_params, {}
    )
    assert a.inlier_mask == b.inlier_mask and a.scores == b.scores
    assert a.next_state.hyper == b.next_state.hyper


def test_sign_flipped_update_is_excluded_with_a_reason() -> None:
    updates = _honest(6, d=500)
    updates[4] = -updates[4]
    outcome = run_round(torch.zeros(500), updates, None, RoundConfig(), _state())
    assert outcome.inlier_mask == [True, True, True, True, False, True]
    assert 4 in outcome.exclusions and outcome.exclusions[4]
    assert outcome.scores == [EQUAL_SHARE] * 5
    mean = torch.stack(updates[:4] + updates[5:]).mean(0)
    assert torch.nn.functional.cosine_similarity(outcome.aggregate, mean, dim=0) > 0.95


def test_uncommitted_trainers_are_neither_inliers_nor_rejected() -> None:
    updates: list = _honest(4) + [None, None]
    outcome = run_round(torch.zeros(D), updates, None, RoundConfig(), _state())
    assert outcome.inlier_mask[4:] == [False, False]
    assert outcome.rejected_mask == [False] * 6
    assert outcome.metrics["committed"] == 4


def test_no_usable_update_leaves_the_model_unchanged() -> None:
    start = torch.arange(D, dtype=torch.float32)
    outcome = run_round(start, ["malformed: x", None, None], None, RoundConfig(), _state())
    assert not any(outcome.inlier_mask) and outcome.scores == []
    assert torch.equal(outcome.new_global_params, start)
    assert outcome.rejected_mask == [True, False, False]


def test_rule_assumption_failure_keeps_nobody_instead_of_crashing() -> None:
    start = torch.zeros(D)
    outcome = run_round(start, _honest(2), None, RoundConfig(rule="default"), _state())
    assert outcome.inlier_mask == [False, False]
    assert "could not run" in outcome.exclusions[0]
    assert torch.equal(outcome.new_global_params, start)


def test_wrong_length_and_nan_tensors_are_rejected_defensively() -> None:
    nan = torch.zeros(D)
    nan[1] = float("nan")
    updates = [*_honest(3), torch.zeros(D + 1), nan]
    outcome = run_round(torch.zeros(D), updates, None, RoundConfig(rule="fedavg"), _state())
    assert outcome.rejected_mask == [False, False, False, True, True]
    assert outcome.rejections[3].startswith("shape")
    assert outcome.rejections[4].startswith("non-finite")


def test_server_step_and_clip_limit_are_applied() -> None:
    updates = [torch.ones(D), torch.full((D,), 0.5), 100 * torch.ones(D)]
    state = RoundState(hyper=ServerHyper(server_lr=0.5, clip_bound=float(D) ** 0.5))
    config = RoundConfig(rule="fedavg", hyper=HyperConfig(clip_factor=2.0))
    outcome = run_round(torch.zeros(D), updates, None, config, state)
    # the boosted update is clipped to 2 x bound (norm of a vector of twos), then averaged
    expected = 0.5 * (torch.ones(D) * (1 + 0.5 + 2) / 3)
    assert torch.allclose(outcome.new_global_params, expected, atol=1e-5)
    assert outcome.hyper_used.server_lr == 0.5


def test_score_seam_receives_the_inliers_and_its_scores_are_checked() -> None:
    seen: list[RoundContext] = []

    def scores(ctx: RoundContext) -> list[int]:
        seen.append(ctx)
        return [7 * (i + 1) for i in ctx.inlier_indices]

    updates: list = _honest(5)
    updates[1] = None
    outcome = run_round(torch.zeros(D), updates, None, RoundConfig(), _state(), score_fn=scores)
    assert seen[0].inlier_indices == outcome.inliers
    assert seen[0].inlier_updates.shape == (len(outcome.inliers), D)
    assert outcome.scores == [7 * (i + 1) for i in outcome.inliers]
    with pytest.raises(ConfigError, match="one per inlier"):
        run_round(torch.zeros(D), _honest(4), None, RoundConfig(), _state(), score_fn=lambda c: [])


def test_evaluation_metrics_feed_the_next_hyper_parameters() -> None:
    train, _ = load_dataset("synthetic", 0, num_samples=200)
    spec = ModelSpec.for_data("logreg", train.input_shape, train.num_classes, seed=0)
    d = num_params(spec)
    gen = torch.Generator().manual_seed(3)
    garbage = [torch.randn(d, generator=gen) * 50 for _ in range(3)]
    outcome = run_round(
        torch.zeros(d),
        garbage,
        None,
        RoundConfig(rule="fedavg"),
        _state(),
        spec=spec,
        validation=train,
    )
    metrics = outcome.metrics
    assert {"accuracy", "loss", "accuracy_before", "loss_before"} <= set(metrics)
    assert metrics["loss"] > metrics["loss_before"]
    assert outcome.next_state.hyper.server_lr == HyperConfig().shrink * HyperConfig().initial_lr
    assert outcome.next_state.hyper.clip_bound == pytest.approx(
        float(torch.stack(garbage).norm(dim=1).median()), rel=0.5
    )


def test_default_rule_keeps_its_anchor_record_by_trainer_index() -> None:
    d = 300
    gen = torch.Generator().manual_seed(4)
    anchor = torch.randn(d, generator=gen)
    honest = [0.5 * anchor + torch.randn(d, generator=gen) for _ in range(6)]
    updates: list = [*honest, -honest[0]]
    first = run_round(torch.zeros(d), updates, None, RoundConfig(), _state(), anchor=anchor)
    assert first.inlier_mask[6] is False
    # round 2: trainer 0 is missing, so every later row shifts up by one
    updates2: list = [None, *updates[1:]]
    second = run_round(
        torch.zeros(d), updates2, None, RoundConfig(), first.next_state, anchor=anchor
    )
    record = second.next_state.rule_state.record
    assert record.rounds == {"0": 1, **{str(i): 2 for i in range(1, 7)}}
    assert record.sums["6"] < 0 < record.sums["1"]
