"""The one place that knows the contract ABIs: loads committed build artifacts.

Running the product needs no compiler: ABIs and bytecode come from ``contracts/build``,
which a test keeps byte-identical to a fresh compile of ``contracts/src``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from eth_utils import function_signature_to_4byte_selector

from marketplace.errors import ConfigError
from marketplace.paths import CONTRACT_BUILD


@dataclass(frozen=True)
class Artifact:
    """ABI and bytecode of one contract, plus the hash a manifest records."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    sha256: str


@functools.cache
def load_artifact(name: str) -> Artifact:
    """Load ``contracts/build/<name>.json``."""
    path = CONTRACT_BUILD / f"{name}.json"
    if not path.exists():
        raise ConfigError(f"no artifact for {name}: run `ledgerlearn contracts build`")
    raw = path.read_bytes()
    data = json.loads(raw)
    return Artifact(
        name=name,
        abi=data["abi"],
        bytecode=data["bytecode"],
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def _abi_type(entry: dict[str, Any]) -> str:
    """Canonical ABI type of an input (tuples expanded), for selectors."""
    if entry["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in entry["components"])
        return f"({inner}){entry['type'][len('tuple') :]}"
    return str(entry["type"])


@functools.cache
def error_selectors() -> dict[bytes, tuple[str, list[str], list[str]]]:
    """4-byte selector -> (error name, arg types, arg names) for every custom error in
    every artifact, so a revert from any of our contracts decodes by name."""
    selectors: dict[bytes, tuple[str, list[str], list[str]]] = {}
    for path in sorted(CONTRACT_BUILD.glob("*.json")):
        for entry in json.loads(path.read_text())["abi"]:
            if entry.get("type") != "error":
                continue
            types = [_abi_type(i) for i in entry["inputs"]]
            signature = f"{entry['name']}({','.join(types)})"
            selectors[function_signature_to_4byte_selector(signature)] = (
                entry["name"],
                types,
                [i["name"] for i in entry["inputs"]],
            )
    return selectors
