"""open_store: configuration strings to stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from marketplace.errors import ConfigError
from marketplace.storage import GatewayReader, KuboStore, LocalStore, MemoryStore, open_store


def test_local_spec(tmp_path: Path) -> None:
    store = open_store(f"local:{tmp_path / 'blocks'}")
    assert isinstance(store, LocalStore)
    cid = store.put(b"x")
    assert open_store(f"local:{tmp_path / 'blocks'}").get(cid) == b"x"


def test_memory_spec() -> None:
    assert isinstance(open_store("memory:"), MemoryStore)


def test_gateway_spec() -> None:
    with open_store("http://127.0.0.1:8080/") as store:
        assert isinstance(store, GatewayReader)
        assert store.base_url == "http://127.0.0.1:8080"


def test_kubo_spec() -> None:
    with open_store("kubo:http://127.0.0.1:5001", timeout=3.0) as store:
        assert isinstance(store, KuboStore)
        assert store.api_url == "http://127.0.0.1:5001"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("local:", "needs a directory"),
        ("kubo:127.0.0.1:5001", "kubo API URL"),
        ("ipfs://bafkrei", "unknown store spec"),
        ("./store", "local:PATH"),
    ],
)
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_store(spec)
