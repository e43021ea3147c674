"""Server hyper-parameter updates: bold-driver step size and median-norm clip bound."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from marketplace.rounds import HyperConfig, ServerHyper, next_hyper

CFG = HyperConfig(initial_lr=0.5, min_lr=0.1, max_lr=1.0, grow=1.5, shrink=0.5)


def test_step_grows_when_loss_falls_and_is_capped() -> None:
    h = ServerHyper.initial(CFG)
    h = next_hyper(h, CFG, inlier_median_norm=2.0, loss_before=1.0, loss_after=0.8)
    assert h.server_lr == pytest.approx(0.75)
    h = next_hyper(h, CFG, inlier_median_norm=2.0, loss_before=0.8, loss_after=0.7)
    assert h.server_lr == 1.0


def test_step_shrinks_when_loss_rises_and_is_floored() -> None:
    h = ServerHyper(server_lr=0.15, clip_bound=None)
    h = next_hyper(h, CFG, inlier_median_norm=None, loss_before=1.0, loss_after=1.1)
    assert h.server_lr == 0.1


def test_clip_bound_is_the_inlier_median_norm_and_kept_without_inliers() -> None:
    h = next_hyper(
        ServerHyper.initial(CFG), CFG, inlier_median_norm=3.5, loss_before=None, loss_after=None
    )
    assert h.clip_bound == 3.5 and h.server_lr == CFG.initial_lr
    kept = next_hyper(h, CFG, inlier_median_norm=None, loss_before=None, loss_after=None)
    assert kept.clip_bound == 3.5
    assert kept.update_clip_limit(CFG) == pytest.approx(CFG.clip_factor * 3.5)
    assert ServerHyper.initial(CFG).update_clip_limit(CFG) is None


def test_non_finite_losses_leave_the_step_alone() -> None:
    h = ServerHyper(server_lr=0.5)
    out = next_hyper(h, CFG, inlier_median_norm=1.0, loss_before=float("inf"), loss_after=1.0)
    assert out.server_lr == 0.5


def test_inconsistent_config_is_refused() -> None:
    with pytest.raises(ValidationError):
        HyperConfig(initial_lr=2.0, max_lr=1.0)
