"""Attack strings, attacker selection, and apply_attack on an update matrix."""

from __future__ import annotations

import pytest
import torch

from marketplace.attacks import (
    ATTACKS,
    AttackSpec,
    apply_attack,
    choose_attackers,
    is_data_attack,
    parse_attack,
)
from marketplace.errors import ConfigError

N, D = 10, 64


def _honest() -> torch.Tensor:
    return 0.2 + torch.randn(N, D, generator=torch.Generator().manual_seed(0))


def _mask() -> torch.Tensor:
    mask = torch.zeros(N, dtype=torch.bool)
    mask[[1, 4, 7]] = True
    return mask


def test_parse_fills_defaults_and_overrides() -> None:
    spec = parse_attack("sign_flip:0.2")
    assert spec == AttackSpec(name="sign_flip", fraction=0.2, params={"scale": 1.0})
    spec = parse_attack("ALIE:0.3:z=1.5")
    assert spec.name == "alie" and spec.params == {"z": 1.5, "omniscient": 1.0}
    assert parse_attack(str(spec)) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("poison:0.1", "unknown attack 'poison'"),
        ("sign_flip", "lacks a fraction"),
        ("sign_flip:x", "is not a number"),
        ("sign_flip:1.5", r"fraction must lie in \[0, 1\]"),
        ("scaling:0.1:gain=3", "scaling takes factor"),
        ("scaling:0.1:factor=big", "factor must be a number"),
    ],
)
def test_parse_errors_are_clear(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_attack(text)


def test_data_versus_update_attacks() -> None:
    assert is_data_attack("label_flip")
    assert not any(is_data_attack(name) for name in ATTACKS if name != "label_flip")
    honest = _honest()
    out = apply_attack(parse_attack("label_flip:0.3"), honest, _mask(), seed=0)
    assert torch.equal(out, honest) and out is not honest


def test_choose_attackers_is_seeded_and_sized() -> None:
    a = choose_attackers(20, 0.25, seed=3)
    assert a.dtype == torch.bool and int(a.sum()) == 5
    assert torch.equal(a, choose_attackers(20, 0.25, seed=3))
    assert not torch.equal(a, choose_attackers(20, 0.25, seed=4))


@pytest.mark.parametrize("name", [n for n in ATTACKS if n != "label_flip"])
def test_benign_rows_untouched_and_deterministic(name: str) -> None:
    honest, mask = _honest(), _mask()
    spec = parse_attack(f"{name}:0.3")
    out = apply_attack(spec, honest, mask, seed=5)
    assert torch.equal(out[~mask], honest[~mask])
    assert not torch.equal(out[mask], honest[mask])
    assert torch.equal(out, apply_attack(spec, honest, mask, seed=5))
    assert torch.equal(honest, _honest()), "input must stay untouched"


def test_apply_properties_per_attack() -> None:
    honest, mask = _honest(), _mask()
    benign_mean = honest[~mask].mean(0)
    flip = apply_attack(parse_attack("sign_flip:0.3:scale=2"), honest, mask, 0)
    assert torch.allclose(flip[mask], -2 * honest[mask])
    scaled = apply_attack(parse_attack("scaling:0.3"), honest, mask, 0)
    assert torch.allclose(scaled[mask], 10 * honest[mask])
    ipm_out = apply_attack(parse_attack("ipm:0.3"), honest, mask, 0)
    assert torch.allclose(ipm_out[mask], (-0.5 * benign_mean).expand(3, D))
    alie_out = apply_attack(parse_attack("alie:0.3"), honest, mask, 0)
    assert torch.equal(alie_out[1], alie_out[4]) and torch.equal(alie_out[4], alie_out[7])
    std = honest[~mask].std(0)
    z = (benign_mean - alie_out[1]) / std
    assert torch.allclose(z, z[0].expand(D)) and 0 < float(z[0]) < 1
    sybil = apply_attack(parse_attack("sybil_clones:0.3"), honest, mask, 0)
    assert torch.equal(sybil[1], sybil[7])
    assert torch.allclose(sybil[1], -honest[mask].mean(0))
    free = apply_attack(parse_attack("free_rider:0.3"), honest, mask, 0)
    assert not bool(free[mask].any())
    noise = apply_attack(parse_attack("gaussian_noise:0.3:sigma=0.01"), honest, mask, 0)
    assert float(noise[mask].abs().max()) < 0.1


def test_no_attackers_or_bad_shapes() -> None:
    honest = _honest()
    none = torch.zeros(N, dtype=torch.bool)
    assert torch.equal(apply_attack(parse_attack("scaling:0"), honest, none, 0), honest)
    with pytest.raises(ConfigError, match="attacker_mask has 3 entries"):
        apply_attack(parse_attack("scaling:0.1"), honest, torch.ones(3, dtype=torch.bool), 0)


def test_copy_reads_only_the_previous_round_and_copies_an_honest_trainer() -> None:
    honest, mask = _honest(), _mask()
    previous = honest * 3.0
    out = apply_attack(parse_attack("copy:0.3"), honest, mask, seed=1, previous=previous)
    for i in mask.nonzero().flatten().tolist():
        distance = (out[i] - previous[~mask]).norm(dim=1)
        assert float(distance.min()) == pytest.approx(0.01 * D**0.5, rel=0.5)
        assert float((out[i] - honest[~mask]).norm(dim=1).min()) > 1.0
    first = apply_attack(parse_attack("copy:0.3"), honest, mask, seed=1, previous=None)
    assert float(first[mask].norm(dim=1).max()) < 0.2  # round 1: jitter alone
    assert torch.equal(out[~mask], honest[~mask])


def test_copycat_sends_an_honest_trainers_exact_update_and_commits_last() -> None:
    honest, mask = _honest(), _mask()
    out = apply_attack(parse_attack("copycat:0.3"), honest, mask, seed=2)
    for i in mask.nonzero().flatten().tolist():
        assert any(torch.equal(out[i], honest[j]) for j in (~mask).nonzero().flatten().tolist())
    assert ATTACKS["copycat"].commits_last and ATTACKS["copy"].reads_previous


def test_noise_free_rider_sends_small_noise() -> None:
    honest, mask = _honest(), _mask()
    out = apply_attack(parse_attack("noise_free_rider:0.3"), honest, mask, seed=3)
    assert float(out[mask].std()) == pytest.approx(0.01, rel=0.2)
