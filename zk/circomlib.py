"""Where the circomlib circuits come from, and our own copy of them for circom2.

circom2 (WASM) cannot read circomlib through a symlink or a ``node_modules`` include path
(docs/architecture.md, zero-knowledge facts), so the build copies ``circomlib/circuits`` into a
folder of ours and passes ``-l`` to it. The npm copy (``node_modules/circomlib``, pinned in
package-lock.json) is preferred; groth16py vendors the identical circomlib 2.0.5 circuits,
which serve when Node packages are not installed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from marketplace.errors import ZkError
from marketplace.paths import NODE_MODULES


def circomlib_source_dir() -> Path:
    """The circomlib ``circuits`` folder to read from (npm copy first, then groth16py's)."""
    npm = NODE_MODULES / "circomlib" / "circuits"
    if (npm / "poseidon.circom").is_file():
        return npm
    try:
        import groth16py

        vendored = Path(groth16py.circomlib_path(2))
    except (ImportError, AttributeError) as exc:  # pragma: no cover - both are dependencies
        raise ZkError("circomlib not found; run `make setup` (npm ci installs it)") from exc
    if not (vendored / "poseidon.circom").is_file():  # pragma: no cover
        raise ZkError("circomlib not found; run `make setup` (npm ci installs it)")
    return vendored


def copy_circomlib(dest: Path) -> Path:
    """Copy circomlib's circuits into ``dest/circomlib`` (once) and return that folder."""
    target = dest / "circomlib"
    if not (target / "poseidon.circom").is_file():
        tmp = dest / "circomlib.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(circomlib_source_dir(), tmp)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    return target
