"""``ledgerlearn ui``'s refusals: each one line naming the problem and the fix, before
anything is served or created."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from marketplace.cli.main import app
from marketplace.errors import ConfigError
from marketplace.ui.app import bind


def test_a_port_in_use_is_one_line_naming_the_fix() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port {port} on 127.0.0.1 is in use: pass --port"):
            bind(port)
    bind(port).close()  # free again: served


def test_a_missing_store_directory_is_refused_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = CliRunner().invoke(app, ["ui", "--store", f"local:{missing}"])
    assert isinstance(result.exception, ConfigError)
    assert "no such content-store directory" in str(result.exception)
    assert not missing.exists()
