"""The sketch a trainer commits next to its update, and how the aggregator opens it.

docs/architecture.md, round step 3: a trainer commits, next to its update's CID, to
``Poseidon(salt, packed sketch)`` (:func:`zk.sketch.sketch_commitment`), where the sketch is
a public, seeded random projection of the update to ``dim`` fixed-point coordinates
(:func:`zk.sketch.sketch_update`). The filter proof is about these committed sketches.

Where the sketch parameters come from (every party derives the same ones, nothing is
configured by hand):

* ``dim`` and ``value_bits``: the shape of the project's round verifier, read from the chain
  (``FilterRoundVerifier.dim()`` / ``valueBits()``); a project without a verifier uses
  :data:`DEFAULT_SKETCH_DIM` x 32 bits, so its commitments are real but nothing proves them;
* ``frac_bits``: :data:`FRAC_BITS` (a resolution of ``2^-16``; coordinates up to ``|x| < 2^15``
  for 32-bit values, saturating beyond);
* ``seed``: :func:`sketch_seed` of the project id, so the projection is public and fixed per
  project, and a trainer cannot choose a projection that hides its update.

How the opening travels: the sketch and the salt are two entries of the update blob's
safetensors metadata (:data:`META_SKETCH`, :data:`META_SALT`). They are therefore covered by
the update's CID, whose digest is on-chain: the aggregator and any auditor who fetch the
update get the opening with it, with no second blob to lose or swap. The salt is public to
whoever fetches the update, but so is the update itself: the commitment's job here is
binding (the proof can only use the sketch the trainer committed), not hiding.

The aggregator accepts an opening only when it opens the on-chain commitment *and* equals
the sketch it recomputes from the fetched update (:func:`check_opening`); otherwise the
trainer is rejected with a ``sketch:`` reason and left out of the proof.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from marketplace.errors import LedgerLearnError, MalformedInput, UpdateRejected
from marketplace.learning.train import single_thread
from marketplace.rounds.seeds import derive_seed
from marketplace.untrusted.parse import parse_int
from zk.field import FIELD_MODULUS
from zk.sketch import SketchSpec, sketch_commitment, sketch_update

#: Sketch dimensions of a project without a round verifier (the smallest standard shape's).
DEFAULT_SKETCH_DIM = 16
#: Fixed-point fraction bits of every sketch coordinate.
FRAC_BITS = 16
#: Metadata keys of the update blob that carry the opening.
META_SKETCH = "sketch"
META_SALT = "sketch_salt"
#: The most characters a metadata sketch may have (128 dims of 21 characters each).
MAX_SKETCH_CHARS = 128 * 21


def sketch_seed(project_id: int) -> int:
    """The public projection seed of a project: a function of its id only."""
    return derive_seed("sketch", project_id)


def project_sketch_spec(
    project_id: int, dim: int = DEFAULT_SKETCH_DIM, value_bits: int = 32
) -> SketchSpec:
    """The sketch every party of ``project_id`` computes (see the module docstring)."""
    return SketchSpec(
        dim=dim, frac_bits=FRAC_BITS, value_bits=value_bits, seed=sketch_seed(project_id)
    )


def sketch_of(update: Tensor, spec: SketchSpec) -> list[int]:
    """The sketch of ``update`` as published (float32, flattened), computed on one thread so
    that trainer, aggregator and auditor sum in the same order."""
    flat = update.detach().reshape(-1).to(torch.float32)
    with single_thread():
        return sketch_update(flat, spec)


@dataclass(frozen=True)
class SketchOpening:
    """A committed sketch and the salt that opens its commitment."""

    sketch: tuple[int, ...]
    salt: int

    def commitment(self, value_bits: int = 32) -> int:
        return sketch_commitment(self.sketch, self.salt, value_bits)

    def commitment_bytes(self, value_bits: int = 32) -> bytes:
        """The ``sketchCommitment`` argument of ``commitUpdate``."""
        return self.commitment(value_bits).to_bytes(32, "big")

    def metadata(self) -> dict[str, str]:
        """The update-blob metadata entries that publish this opening."""
        return {META_SKETCH: ",".join(str(v) for v in self.sketch), META_SALT: str(self.salt)}


def make_opening(update: Tensor, spec: SketchSpec, salt: int) -> SketchOpening:
    """The opening a trainer publishes for ``update``."""
    return SketchOpening(tuple(sketch_of(update, spec)), salt % FIELD_MODULUS)


def decode_opening(metadata: Mapping[str, str]) -> SketchOpening:
    """Parse the opening from update-blob metadata; :class:`UpdateRejected` when absent or
    malformed."""
    text, salt = metadata.get(META_SKETCH), metadata.get(META_SALT)
    if text is None or salt is None:
        raise UpdateRejected("the update carries no sketch opening (sketch, sketch_salt metadata)")
    if len(text) > MAX_SKETCH_CHARS:
        raise UpdateRejected("the update's sketch opening is malformed (sketch too long)")
    try:
        salt_value = parse_int(salt, "the sketch salt", 0, FIELD_MODULUS - 1)
        values = tuple(_parse_coordinate(v) for v in text.split(","))
    except MalformedInput as exc:
        raise UpdateRejected(f"the update's sketch opening is malformed: {exc}") from None
    return SketchOpening(values, salt_value)


def _parse_coordinate(text: str) -> int:
    """One signed sketch coordinate in ASCII digits (``-`` allowed, as ``str(int)`` writes)."""
    return (
        -parse_int(text[1:], "a sketch value")
        if text.startswith("-")
        else parse_int(text, "a sketch value")
    )


def check_opening(
    vector: Tensor, metadata: Mapping[str, str], onchain: bytes, spec: SketchSpec
) -> SketchOpening | str:
    """The opening of an accepted update, or why it fails (the detail of a ``sketch``
    rejection).

    It must parse, have ``spec.dim`` in-range values, open ``onchain`` (the trainer's
    ``sketchCommitment``) and equal the sketch recomputed from ``vector``.
    """
    try:
        opening = decode_opening(metadata)
        if len(opening.sketch) != spec.dim:
            return f"{len(opening.sketch)} values, the project's sketch has {spec.dim}"
        if opening.salt >= FIELD_MODULUS:
            return "the salt is not a BN254 field element"
        if opening.commitment_bytes(spec.value_bits) != bytes(onchain):
            return "the published sketch and salt do not open the on-chain commitment"
    except LedgerLearnError as exc:
        return str(exc)
    if list(opening.sketch) != sketch_of(vector, spec):
        return "the published sketch is not the sketch of the published update"
    return opening
