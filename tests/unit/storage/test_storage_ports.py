"""A gateway on a port in use is a one-line ConfigError (it was an OSError traceback)."""

from __future__ import annotations

import socket

import pytest
from fastapi import FastAPI

from marketplace.errors import ConfigError
from marketplace.storage import BackgroundServer
from marketplace.storage.gateway import check_port_free


def test_a_taken_port_is_a_config_error_naming_it() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = int(s.getsockname()[1])
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}.*--port"):
            BackgroundServer(FastAPI(), "127.0.0.1", port)
        with pytest.raises(ConfigError, match="another --port"):
            check_port_free("127.0.0.1", port)
    check_port_free("127.0.0.1", 0)
