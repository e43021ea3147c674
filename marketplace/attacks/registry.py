"""The attack registry: parse ``name:fraction[:key=value,...]`` and apply it to a round.

Simulations and benchmarks describe an adversary as a string (``sign_flip:0.2``,
``alie:0.3:z=1.0``, ``sybil_clones:0.4:noise_std=1e-4``). :func:`choose_attackers` picks
which clients are malicious from a seed, :func:`apply_attack` rewrites their rows of the
``[n, d]`` update matrix, and data attacks (``label_flip``) are applied to the attackers'
datasets before training instead (:func:`is_data_attack`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from marketplace.attacks.alie import alie, alie_z
from marketplace.attacks.copy import copy_updates, pick_victims
from marketplace.attacks.free_rider import free_rider
from marketplace.attacks.gaussian_noise import gaussian_noise
from marketplace.attacks.ipm import ipm
from marketplace.attacks.scaling import scaling
from marketplace.attacks.sign_flip import sign_flip
from marketplace.attacks.sybil_clones import sybil_clones
from marketplace.errors import ConfigError

AttackKind = Literal["data", "update"]


class AttackSpec(BaseModel):
    """An attack, the fraction of clients running it, and its parameters (defaults filled)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    fraction: float = Field(ge=0.0, le=1.0)
    params: dict[str, float] = Field(default_factory=dict)

    def __str__(self) -> str:
        extra = ",".join(f"{k}={v:g}" for k, v in sorted(self.params.items()))
        return f"{self.name}:{self.fraction:g}" + (f":{extra}" if extra else "")


# (honest [n, d], attacker mask [n], params, generator) -> attacker rows [m, d]
UpdateRule = Callable[[Tensor, Tensor, Mapping[str, float], torch.Generator], Tensor]


@dataclass(frozen=True)
class AttackInfo:
    """Registry entry: what the attack alters, its default parameters, how to apply it.

    ``reads_previous``: the rule gets the previous round's published updates instead of
    the current honest ones (``None`` in round 1): all a copier can read before it must
    commit. ``commits_last``: the attackers commit after the honest trainers (they must
    see what they copy first)."""

    name: str
    kind: AttackKind
    defaults: Mapping[str, float] = field(default_factory=dict)
    rule: UpdateRule | None = None
    reads_previous: bool = False
    commits_last: bool = False


def _visible(honest: Tensor, mask: Tensor, params: Mapping[str, float]) -> Tensor:
    """Updates the attackers see: the benign ones (``omniscient=1``) or their own honest ones."""
    if params.get("omniscient", 1.0) and bool((~mask).any()):
        return honest[~mask]
    return honest[mask]


def _sign_flip(h: Tensor, m: Tensor, p: Mapping[str, float], g: torch.Generator) -> Tensor:
    return sign_flip(h[m], p["scale"])


def _gaussian(h: Tensor, m: Tensor, p: Mapping[str, float], g: torch.Generator) -> Tensor:
    return gaussian_noise(h[m], p["sigma"], g)


def _scaling(h: Tensor, m: Tensor, p: Mapping[str, float], g: torch.Generator) -> Tensor:
    return scaling(h[m], p["factor"])


def _alie(h: Tensor, m: Tensor, p: Mapping[str, float], g: torch.Generator) -> Tensor:
    count = int(m.sum())
    z = p["z"] if p["z"] > 0 else alie_z(len(m), count)
    return alie(_visible(h, m, p), z).reshape(1, -1).repeat(count, 1)


def _ipm(h: Tensor, m: Tensor, p: Mapping[str, float], g: torch.Generator) -> Tensor:
    return ipm(_visible(h, m, p), p["eps"]).reshape(1, -1).repeat(int(m.sum()), 1)


def _sybil(h: Tensor, m: Tensor, p: Mapping[str, float], g: torch.Generator) -> Tensor:
    poisoned = sign_flip(h[m].mean(dim=0), p["scale"])
    return sybil_clones(poisoned, int(m.sum()), p["noise_std"], g)


def _free_rider(h: Tensor, m: Tensor, p: Mapping[str, float], g: torch.Generator) -> Tensor:
    return free_rider(h[m], p["noise_std"], g)


def _copy(h: Tensor, m: Tensor, p: Mapping[str, float], g: torch.Generator) -> Tensor:
    return copy_updates(h, pick_victims(~m, int(m.sum()), g), p["noise_std"], g)


def _copycat(h: Tensor, m: Tensor, p: Mapping[str, float], g: torch.Generator) -> Tensor:
    return h[pick_victims(~m, int(m.sum()), g)].clone()


ATTACKS: dict[str, AttackInfo] = {
    info.name: info
    for info in (
        AttackInfo("label_flip", "data"),
        AttackInfo("sign_flip", "update", {"scale": 1.0}, _sign_flip),
        AttackInfo("gaussian_noise", "update", {"sigma": 1.0}, _gaussian),
        AttackInfo("scaling", "update", {"factor": 10.0}, _scaling),
        # z <= 0 means: use the paper's z_max for this round's n and m.
        AttackInfo("alie", "update", {"z": 0.0, "omniscient": 1.0}, _alie),
        AttackInfo("ipm", "update", {"eps": 0.5, "omniscient": 1.0}, _ipm),
        AttackInfo("sybil_clones", "update", {"scale": 1.0, "noise_std": 0.0}, _sybil),
        AttackInfo("free_rider", "update", {"noise_std": 0.0}, _free_rider),
        AttackInfo("noise_free_rider", "update", {"noise_std": 0.01}, _free_rider),
        AttackInfo("copy", "update", {"noise_std": 0.01}, _copy, reads_previous=True),
        AttackInfo("copycat", "update", {}, _copycat, commits_last=True),
    )
}


def _parse_params(text: str, info: AttackInfo, whole: str) -> dict[str, float]:
    params = dict(info.defaults)
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in info.defaults:
            allowed = ", ".join(info.defaults) or "none"
            raise ConfigError(
                f"attack {whole!r}: bad parameter {item!r}; {info.name} takes {allowed}"
            )
        try:
            params[key] = float(value)
        except ValueError:
            raise ConfigError(f"attack {whole!r}: {key} must be a number, got {value!r}") from None
    return params


def parse_attack(text: str) -> AttackSpec:
    """Parse ``name:fraction`` or ``name:fraction:key=value,...`` into an :class:`AttackSpec`."""
    parts = text.strip().split(":", 2)
    name = parts[0].strip().lower()
    if name not in ATTACKS:
        raise ConfigError(f"unknown attack {name!r}; choose one of {', '.join(ATTACKS)}")
    if len(parts) < 2:
        raise ConfigError(f"attack {text!r} lacks a fraction; write e.g. '{name}:0.2'")
    try:
        fraction = float(parts[1])
    except ValueError:
        raise ConfigError(f"attack {text!r}: fraction {parts[1]!r} is not a number") from None
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"attack {text!r}: fraction must lie in [0, 1]")
    params = _parse_params(parts[2] if len(parts) == 3 else "", ATTACKS[name], text)
    return AttackSpec(name=name, fraction=fraction, params=params)


def is_data_attack(spec: AttackSpec | str) -> bool:
    """True when the attack poisons training data (apply it before training)."""
    name = spec.name if isinstance(spec, AttackSpec) else spec
    if name not in ATTACKS:
        raise ConfigError(f"unknown attack {name!r}; choose one of {', '.join(ATTACKS)}")
    return ATTACKS[name].kind == "data"


def choose_attackers(num_clients: int, fraction: float, seed: int) -> Tensor:
    """Boolean mask of ``round(fraction * num_clients)`` attackers drawn from ``seed``."""
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"attacker fraction {fraction} must lie in [0, 1]")
    count = round(fraction * num_clients)
    gen = torch.Generator().manual_seed(seed)
    mask = torch.zeros(num_clients, dtype=torch.bool)
    mask[torch.randperm(num_clients, generator=gen)[:count]] = True
    return mask


def apply_attack(
    spec: AttackSpec,
    honest_updates: Tensor,
    attacker_mask: Tensor,
    seed: int,
    previous: Tensor | None = None,
) -> Tensor:
    """Updates the aggregator receives: attackers' rows rewritten, benign rows untouched.

    ``honest_updates`` is ``[n, d]``, row ``i`` the update client ``i`` would send if
    honest (attackers included: ALIE/IPM with ``omniscient=0`` and the sybil base use
    them). ``previous`` is ``[n, d]``, the updates published in the previous round (None
    in round 1), which is what an attack with ``reads_previous`` sees instead. Returns a
    new tensor; a data attack returns an unchanged copy because its harm is already in
    the attackers' training.
    """
    if honest_updates.dim() != 2:
        raise ConfigError(f"honest_updates must be [n, d], got {tuple(honest_updates.shape)}")
    mask = torch.as_tensor(attacker_mask, dtype=torch.bool).reshape(-1)
    if mask.shape[0] != honest_updates.shape[0]:
        raise ConfigError(
            f"attacker_mask has {mask.shape[0]} entries for {honest_updates.shape[0]} updates"
        )
    info = ATTACKS.get(spec.name)
    if info is None:
        raise ConfigError(f"unknown attack {spec.name!r}; choose one of {', '.join(ATTACKS)}")
    out = honest_updates.clone()
    if info.rule is None or not bool(mask.any()):
        return out
    params = {**info.defaults, **spec.params}
    gen = torch.Generator().manual_seed(seed)
    seen = honest_updates
    if info.reads_previous:
        seen = previous if previous is not None else torch.zeros_like(honest_updates)
    out[mask] = info.rule(seen, mask, params, gen).to(out.dtype)
    return out
