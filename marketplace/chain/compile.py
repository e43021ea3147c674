"""Compile the Solidity sources with the pinned solc-js and write committed artifacts.

Native solc cannot be downloaded offline, so py-solc-x drives solc-js (npm ``solc``,
the same compiler as WebAssembly) through ``contracts/tools/solcjs-entry.cjs``, a
``solc``-compatible entry point. Artifacts are written deterministically (sorted keys,
fixed settings, no absolute paths) so a rebuild is byte-identical to what is committed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import solcx

from marketplace.errors import ConfigError
from marketplace.paths import CONTRACT_BUILD, CONTRACT_SOURCES, CONTRACTS_DIR, NODE_MODULES

log = logging.getLogger(__name__)

SOLC_ENTRY = CONTRACTS_DIR / "tools" / "solcjs-entry.cjs"
EVM_VERSION = "cancun"
OPTIMIZER_RUNS = 200


def compiler_settings() -> dict[str, Any]:
    """The exact solc settings every build uses (part of the artifact hash)."""
    return {
        "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
        "viaIR": True,
        "evmVersion": EVM_VERSION,
        "metadata": {"bytecodeHash": "none", "appendCBOR": False},
        "outputSelection": {
            "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}
        },
    }


def _check_toolchain() -> None:
    if shutil.which("node") is None:
        raise ConfigError("node is not installed: install Node.js 20+, then run `make setup`")
    if not (NODE_MODULES / "solc").is_dir():
        raise ConfigError("solc-js is missing from node_modules: run `make setup` (npm ci)")


def source_files(src_dir: Path = CONTRACT_SOURCES) -> dict[str, str]:
    """All Solidity sources keyed by their path relative to ``contracts/``."""
    return {
        f"src/{p.relative_to(src_dir).as_posix()}": p.read_text()
        for p in sorted(src_dir.rglob("*.sol"))
    }


def compile_sources(sources: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Compile ``sources`` and return ``{contract name: {abi, bytecode, ...}}``.

    Only contracts that have bytecode and live in our own sources are returned
    (interfaces and OpenZeppelin internals are left out).
    """
    _check_toolchain()
    settings = compiler_settings()
    standard_input = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": settings,
    }
    try:
        output = solcx.compile_standard(
            standard_input,
            solc_binary=SOLC_ENTRY,
            base_path=str(CONTRACTS_DIR),
            allow_paths=[str(NODE_MODULES)],
        )
    except solcx.exceptions.SolcError as exc:  # compile errors: show solc's own message
        raise ConfigError(f"Solidity compilation failed: {exc}") from exc
    artifacts: dict[str, dict[str, Any]] = {}
    for source_name, contracts in output.get("contracts", {}).items():
        if source_name not in sources:
            continue
        for name, data in contracts.items():
            bytecode = data["evm"]["bytecode"]["object"]
            if not bytecode:
                artifacts[name] = {
                    "contractName": name,
                    "sourceName": source_name,
                    "abi": data["abi"],
                    "bytecode": "0x",
                    "deployedBytecode": "0x",
                }
                continue
            artifacts[name] = {
                "contractName": name,
                "sourceName": source_name,
                "abi": data["abi"],
                "bytecode": "0x" + bytecode,
                "deployedBytecode": "0x" + data["evm"]["deployedBytecode"]["object"],
            }
    source_digest = hashlib.sha256(
        json.dumps(sources, sort_keys=True).encode() + json.dumps(settings, sort_keys=True).encode()
    ).hexdigest()
    for art in artifacts.values():
        art["compiler"] = {"solc": _solc_version(), "settings": settings}
        art["sourcesSha256"] = source_digest
    return artifacts


def _solc_version() -> str:
    package = json.loads((NODE_MODULES / "solc" / "package.json").read_text())
    return str(package["version"])


def render_artifact(artifact: dict[str, Any]) -> str:
    """Deterministic JSON text of an artifact (what is committed)."""
    return json.dumps(artifact, indent=2, sort_keys=True) + "\n"


def build(out_dir: Path = CONTRACT_BUILD, src_dir: Path = CONTRACT_SOURCES) -> list[Path]:
    """Compile all sources and (re)write ``out_dir/<Contract>.json``; returns written paths.

    Stale artifacts of contracts that no longer exist are removed.
    """
    artifacts = compile_sources(source_files(src_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, art in sorted(artifacts.items()):
        path = out_dir / f"{name}.json"
        path.write_text(render_artifact(art))
        written.append(path)
    for old in out_dir.glob("*.json"):
        if old not in written:
            old.unlink()
    log.info("wrote %d artifacts to %s", len(written), out_dir)
    return written
