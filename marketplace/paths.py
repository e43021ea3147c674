"""Where LedgerLearn finds its own files and keeps the user's.

The repository layout is the installation layout (the project installs in editable mode),
so contract sources, committed artifacts and the JS toolchain are found relative to this
file. User state (deployment manifests, caches, keys) lives under ``$LEDGERLEARN_HOME``,
default ``~/.ledgerlearn``.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = REPO_ROOT / "contracts"
CONTRACT_SOURCES = CONTRACTS_DIR / "src"
CONTRACT_BUILD = CONTRACTS_DIR / "build"
NODE_MODULES = REPO_ROOT / "node_modules"


def ledgerlearn_home() -> Path:
    """The user's state directory (created on first use)."""
    home = Path(os.environ.get("LEDGERLEARN_HOME", Path.home() / ".ledgerlearn")).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def node_dir(role: str, address: str, project: int, data_dir: Path | None = None) -> Path:
    """A node's own folder (its content store, what it must keep across restarts):
    ``data_dir`` when given, else one per role, account and project under the home."""
    if data_dir is not None:
        return data_dir
    return ledgerlearn_home() / role / f"{address.lower()}-p{project}"
