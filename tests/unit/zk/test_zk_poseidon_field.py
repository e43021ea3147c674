"""Python Poseidon against circomlib's published vectors, and the field encodings.

That the same function equals the *circuit's* Poseidon (all widths the filter uses) is
checked by test_zk_circuit.py: a witness only exists if every Python hash matches.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.errors import ZkError
from zk.field import FIELD_MODULUS, from_field, pack_bits, pack_lanes, to_field
from zk.poseidon import poseidon


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ([1], 0x29176100EAA962BDC1FE6C654D6A3C130E96A4D1168B33848B897DC502820133),
        ([1, 2], 0x115CC0F5E7D690413DF64C6B9662E9CF2A3617F2743245519E19607A4417189A),
        ([1, 2, 3, 4], 0x299C867DB6C1FDD79DCEFA40E4510B9837E60EBB1CE0663DBAA525DF65250465),
    ],
)
def test_poseidon_matches_circomlib_vectors(inputs: list[int], expected: int) -> None:
    assert poseidon(inputs) == expected


def test_poseidon_rejects_bad_arity_and_unreduced_inputs() -> None:
    with pytest.raises(ZkError):
        poseidon([])
    with pytest.raises(ZkError):
        poseidon([0] * 17)
    with pytest.raises(ZkError):
        poseidon([FIELD_MODULUS])


def test_poseidon_widths_differ() -> None:
    assert poseidon([0, 0]) != poseidon([0, 0, 0])


@given(st.integers(min_value=-(2**200), max_value=2**200))
def test_signed_field_round_trip(v: int) -> None:
    assert from_field(to_field(v)) == v
    assert 0 <= to_field(v) < FIELD_MODULUS


def test_pack_lanes_and_bits() -> None:
    assert pack_lanes([1, 2, 3], 8) == [1 | (2 << 8) | (3 << 16)]
    assert len(pack_lanes(list(range(8)), 34)) == 2  # 7 lanes of 34 bits per element
    with pytest.raises(ZkError):
        pack_lanes([256], 8)
    assert pack_bits([1, 0, 1]) == 5
    with pytest.raises(ZkError):
        pack_bits([2])
