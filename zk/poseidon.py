"""Poseidon over BN254, bit-identical to circomlib 2.0.5's ``Poseidon(nInputs)`` circuit.

Poseidon (Grassi et al., "Poseidon: A New Hash Function for Zero-Knowledge Proof Systems",
USENIX Security 2021, https://eprint.iacr.org/2019/458) with circomlib's parameters: x^5
S-box, 8 full rounds, ``N_ROUNDS_P[t-2]`` partial rounds, width ``t = nInputs + 1``,
capacity element 0. circomlib evaluates the *optimized* form of the permutation (sparse
partial-round matrices ``S`` and the pre-matrix ``P``, with transformed round constants
``C``); this module mirrors ``PoseidonEx`` in ``circuits/poseidon.circom`` step by step, with
the constants parsed from the very ``poseidon_constants.circom`` the circuits compile, so
the two cannot drift apart. The test suite checks the output against the circuit's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

from marketplace.errors import ZkError
from zk.circomlib import circomlib_source_dir
from zk.field import FIELD_MODULUS

#: circomlib's partial-round counts for t = 2..17 (from poseidon.circom).
N_ROUNDS_P = (56, 57, 56, 60, 60, 63, 64, 63, 60, 66, 60, 65, 70, 60, 64, 68)
N_ROUNDS_F = 8
MAX_INPUTS = 16

_HEX = re.compile(r"0x[0-9a-fA-F]+")


@dataclass(frozen=True)
class PoseidonParams:
    """circomlib's optimized Poseidon constants for one width ``t``."""

    t: int
    c: tuple[int, ...]
    s: tuple[int, ...]
    m: tuple[tuple[int, ...], ...]
    p: tuple[tuple[int, ...], ...]


@lru_cache(maxsize=1)
def _constants_text() -> str:
    return (circomlib_source_dir() / "poseidon_constants.circom").read_text()


def _branch(text: str, function: str, t: int) -> list[int]:
    """Hex constants of ``function``'s ``if (t==T)`` branch in poseidon_constants.circom."""
    start = text.index(f"function {function}(t)")
    end = text.find("function ", start + 10)
    body = text[start : end if end > 0 else len(text)]
    head = re.search(rf"\(t\s*==\s*{t}\)", body)
    if head is None:
        raise ZkError(f"circomlib has no Poseidon constants for t={t}; use 1..16 inputs")
    nxt = re.search(r"\}\s*else", body[head.end() :])
    stop = head.end() + nxt.start() if nxt else len(body)
    return [int(h, 16) for h in _HEX.findall(body[head.end() : stop])]


@cache
def params(t: int) -> PoseidonParams:
    """Parse (once per width) circomlib's constants for width ``t`` (2..17)."""
    if not 2 <= t <= MAX_INPUTS + 1:
        raise ZkError(f"Poseidon width t={t} is not supported; circomlib has t = 2..17")
    text = _constants_text()
    n_p = N_ROUNDS_P[t - 2]
    c = _branch(text, "POSEIDON_C", t)
    s = _branch(text, "POSEIDON_S", t)
    m = _branch(text, "POSEIDON_M", t)
    p = _branch(text, "POSEIDON_P", t)
    expected = (t * N_ROUNDS_F + n_p, n_p * (2 * t - 1), t * t, t * t)
    if (len(c), len(s), len(m), len(p)) != expected:
        raise ZkError("poseidon_constants.circom has an unexpected layout; reinstall circomlib")
    rows = lambda flat: tuple(tuple(flat[i * t : (i + 1) * t]) for i in range(t))  # noqa: E731
    return PoseidonParams(t, tuple(c), tuple(s), rows(m), rows(p))


def _sigma(x: int) -> int:
    return pow(x, 5, FIELD_MODULUS)


def _mix(state: list[int], mat: tuple[tuple[int, ...], ...]) -> list[int]:
    # circomlib's Mix: out[i] = sum_j M[j][i] * in[j]
    t = len(state)
    return [sum(mat[j][i] * state[j] for j in range(t)) % FIELD_MODULUS for i in range(t)]


def poseidon(inputs: Sequence[int], initial_state: int = 0) -> int:
    """circomlib ``Poseidon(len(inputs))`` of field elements (1 to 16 inputs)."""
    n = len(inputs)
    if not 1 <= n <= MAX_INPUTS:
        raise ZkError(f"Poseidon takes 1..{MAX_INPUTS} inputs, got {n}; fold longer lists")
    for v in inputs:
        if not 0 <= v < FIELD_MODULUS:
            raise ZkError(f"Poseidon input {v} is not a field element; reduce it mod p")
    t = n + 1
    prm = params(t)
    q = FIELD_MODULUS
    c, half, n_p = prm.c, N_ROUNDS_F // 2, N_ROUNDS_P[t - 2]
    state = [(v + c[i]) % q for i, v in enumerate([initial_state, *inputs])]
    for r in range(half - 1):
        state = [(_sigma(x) + c[(r + 1) * t + i]) % q for i, x in enumerate(state)]
        state = _mix(state, prm.m)
    state = [(_sigma(x) + c[half * t + i]) % q for i, x in enumerate(state)]
    state = _mix(state, prm.p)
    for r in range(n_p):
        state[0] = (_sigma(state[0]) + c[(half + 1) * t + r]) % q
        base = (2 * t - 1) * r
        s0 = sum(prm.s[base + i] * state[i] for i in range(t)) % q
        state = [s0] + [(state[i] + state[0] * prm.s[base + t + i - 1]) % q for i in range(1, t)]
    for r in range(half - 1):
        offset = (half + 1) * t + n_p + r * t
        state = [(_sigma(x) + c[offset + i]) % q for i, x in enumerate(state)]
        state = _mix(state, prm.m)
    state = [_sigma(x) for x in state]
    return sum(prm.m[j][0] * state[j] for j in range(t)) % q
