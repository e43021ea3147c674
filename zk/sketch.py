"""Fixed-point sketch of a model update and its Poseidon commitment.

A trainer commits, next to the CID of its update, to a short sketch of it: a public, seeded
random projection to ``dim`` (16..64) coordinates (Johnson-Lindenstrauss: a Rademacher
matrix scaled by ``1/sqrt(dim)`` preserves distances in expectation, Achlioptas, "Database-
friendly random projections", PODS 2001), scaled by ``2^frac_bits`` and rounded to signed
integers of ``value_bits`` bits. The filter circuit works on these integers.

Encoding and bounds (``B = value_bits``, ``F = frac_bits``):

* ``v = clamp(round(x * 2^F), -2^(B-1), 2^(B-1) - 1)``. With the defaults ``B = 32``,
  ``F = 16`` a coordinate covers ``|x| < 32768`` at a resolution of ``2^-16``. Clamping is
  saturating, never wrapping: an oversized (e.g. boosted) update stays extreme and is still
  far from the median, which is what the filter needs.
* The circuit sees ``u = v + 2^(B-1)`` in ``[0, 2^B)``; the commitment packs
  ``w = v + 3 * 2^(B-1)`` (``= u + 2^B``) in lanes of ``B + 2`` bits, ``252 // (B + 2)``
  lanes per field element (7 for B = 32), and hashes ``Poseidon(salt, packed...)``. Packing
  cuts hashing cost several-fold (docs/architecture.md); why ``w`` and not ``u`` is explained at
  the top of ``circuits/filter.circom``.

The projection is generated in chunks of ``PROJECTION_CHUNK`` columns from a generator
seeded by ``(seed, chunk index)``, so a 100k-dimensional update never needs the full
``dim x D`` matrix, and the matrix depends only on the seed (not on the chunking of a call).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from marketplace.errors import UpdateRejected, ZkError
from zk.field import FIELD_MODULUS, pack_lanes
from zk.poseidon import poseidon
from zk.shape import CircuitShape

#: Columns of the projection generated at a time (part of the projection's definition).
PROJECTION_CHUNK = 65536


@dataclass(frozen=True)
class SketchSpec:
    """The public sketch parameters of a project (every trainer uses the same)."""

    dim: int = 32
    frac_bits: int = 16
    value_bits: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.dim <= 128:
            raise ZkError(f"sketch dim={self.dim} is not in 1..128; use 16..64")
        if not 0 <= self.frac_bits < self.value_bits:
            raise ZkError(f"frac_bits={self.frac_bits} must be in 0..value_bits-1")


def _chunk_generator(seed: int, chunk: int) -> torch.Generator:
    digest = hashlib.sha256(f"ledgerlearn-sketch:{seed}:{chunk}".encode()).digest()
    gen = torch.Generator()
    gen.manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
    return gen


def project(update: torch.Tensor, dim: int, seed: int) -> torch.Tensor:
    """``R @ update`` for the seeded Rademacher matrix ``R`` (entries ``+-1/sqrt(dim)``).

    Float64 throughout so that a replay on another machine rounds to the same integers
    except in the (measure-zero in practice) case of a value exactly between two steps.
    """
    flat = update.detach().reshape(-1).to(torch.float64)
    if not bool(torch.isfinite(flat).all()):
        raise UpdateRejected("update contains NaN or inf; the trainer must resend a finite one")
    out = torch.zeros(dim, dtype=torch.float64)
    for chunk, start in enumerate(range(0, flat.numel(), PROJECTION_CHUNK)):
        part = flat[start : start + PROJECTION_CHUNK]
        signs = torch.randint(
            0, 2, (dim, PROJECTION_CHUNK), generator=_chunk_generator(seed, chunk)
        )[:, : part.numel()]
        out += (signs.to(torch.float64) * 2.0 - 1.0) @ part
    return out / math.sqrt(dim)


def quantize(values: torch.Tensor, frac_bits: int, value_bits: int) -> list[int]:
    """Round ``values * 2^frac_bits`` to signed ``value_bits``-bit integers (saturating)."""
    lo, hi = -(1 << (value_bits - 1)), (1 << (value_bits - 1)) - 1
    scaled = torch.round(values.to(torch.float64) * float(1 << frac_bits))
    return [int(v) for v in scaled.clamp(lo, hi).tolist()]


def sketch_update(update: torch.Tensor, spec: SketchSpec) -> list[int]:
    """The fixed-point sketch (signed ints) of a model update (any shape, flattened)."""
    return quantize(project(update, spec.dim, spec.seed), spec.frac_bits, spec.value_bits)


def dequantize(sketch: Sequence[int], frac_bits: int) -> torch.Tensor:
    """Back to floats (``v / 2^frac_bits``), for display and tests."""
    return torch.tensor(list(sketch), dtype=torch.float64) / float(1 << frac_bits)


def check_sketch(sketch: Sequence[int], value_bits: int) -> None:
    """Raise if a sketch has a value outside the signed ``value_bits`` range."""
    lo, hi = -(1 << (value_bits - 1)), (1 << (value_bits - 1)) - 1
    for j, v in enumerate(sketch):
        if not lo <= v <= hi:
            raise UpdateRejected(
                f"sketch value {j} = {v} is outside [{lo}, {hi}]; recompute it with sketch_update"
            )


def commitment_lanes(sketch: Sequence[int], value_bits: int = 32) -> list[int]:
    """The packed field elements a commitment hashes (lanes ``w = v + 3 * 2^(B-1)``)."""
    check_sketch(sketch, value_bits)
    offset = 3 << (value_bits - 1)
    return pack_lanes([v + offset for v in sketch], value_bits + 2)


def sketch_commitment(sketch: Sequence[int], salt: int = 0, value_bits: int = 32) -> int:
    """``Poseidon(salt, packed lanes)``: the value a trainer commits on-chain for a round.

    The salt (a private field element known to the trainer and the aggregator) hides the
    sketch from everyone else; with ``salt = 0`` the commitment is only binding.
    """
    if not 0 <= salt < FIELD_MODULUS:
        raise ZkError("salt is not a BN254 field element; use 0 <= salt < p (see make_salt)")
    lanes = commitment_lanes(sketch, value_bits)
    CircuitShape(1, len(sketch), value_bits)  # validates the Poseidon width
    return poseidon([salt, *lanes])


def make_salt(seed: int, trainer: str, round_index: int) -> int:
    """A deterministic salt from a trainer's secret seed, its address and the round."""
    digest = hashlib.sha256(f"ledgerlearn-salt:{seed}:{trainer}:{round_index}".encode()).digest()
    return int.from_bytes(digest, "big") % FIELD_MODULUS
