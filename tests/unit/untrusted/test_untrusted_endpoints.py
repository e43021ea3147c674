"""Announced endpoints: what a node may fetch, and the aggregator's resolver refusing the
rest (the trainer's update is rejected with the reason; the URL is never requested)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hostile import RawServer, respond

from marketplace.errors import EndpointRefused
from marketplace.learning import ModelSpec
from marketplace.nodes.aggregator import GatewayResolver
from marketplace.rounds.validate import fetch_update
from marketplace.storage import cid_for
from marketplace.untrusted.endpoints import check_endpoint, private_allowed

PUBLIC = ["http://1.2.3.4:8080", "https://example.org", "https://example.org/ipfs-gw/v1/"]
TRICKS = [
    "ftp://1.2.3.4",
    "file:///etc/passwd",
    "http://user:pass@1.2.3.4",
    "http://1.2.3.4/../admin",
    "http://1.2.3.4/a/./b",
    "http://1.2.3.4//double",
    "http://1.2.3.4/%2e%2e/x",
    "http://1.2.3.4/?q=1",
    "http://1.2.3.4/#frag",
    "http://1.2.3.4\\@evil.org",
    "http://1.2.3.4:0",
    "http://1.2.3.4:99999",
    "http://exa mple.org",
    "http://ëxample.org",
    "http://2130706433/",
    "",
    "http://" + "a" * 3000 + ".org",
]
PRIVATE = [
    "http://127.0.0.1:8080",
    "http://localhost:5001",
    "http://app.localhost",
    "http://10.1.2.3",
    "http://192.168.0.1",
    "http://172.16.0.9",
    "http://169.254.169.254/latest",
    "http://[::1]:80",
    "http://[::ffff:127.0.0.1]",
    "http://[fd00::1]",
    "http://0.0.0.0",
    "http://0x7f000001/",
    "http://224.0.0.1",
]


@pytest.mark.parametrize("url", PUBLIC)
def test_public_endpoints_are_fetched(url: str) -> None:
    assert check_endpoint(url, allow_private=False) == url.rstrip("/")


@pytest.mark.parametrize("url", TRICKS)
def test_path_tricks_userinfo_and_bad_schemes_are_always_refused(url: str) -> None:
    with pytest.raises(EndpointRefused, match="refused"):
        check_endpoint(url, allow_private=True)


@pytest.mark.parametrize("url", PRIVATE)
def test_private_and_loopback_addresses_are_refused_on_a_public_chain(url: str) -> None:
    with pytest.raises(EndpointRefused, match="development chain"):
        check_endpoint(url, allow_private=False)


def test_private_addresses_only_on_dev_chains_or_with_the_flag() -> None:
    assert private_allowed(31337) and private_allowed(1337) and private_allowed(5, embedded=True)
    assert private_allowed(1, flag=True)
    assert not private_allowed(1) and not private_allowed(11155111)
    assert check_endpoint("http://127.0.0.1:8080/", allow_private=True) == "http://127.0.0.1:8080"


@dataclass
class _Chain:
    development: bool


@dataclass
class _Market:
    """The two things the resolver reads from a MarketClient (a unit-test fake)."""

    announced: dict[str, str]
    chain: _Chain = field(default_factory=lambda: _Chain(False))

    def endpoints(self, project_id: int) -> dict[str, str]:
        return dict(self.announced)


def test_the_aggregator_never_fetches_a_loopback_endpoint_on_a_public_chain() -> None:
    spec = ModelSpec.for_data("logreg", (4,), 2)
    with RawServer(respond("200 OK", b"x", "application/vnd.ipld.raw")) as internal:
        market = _Market({"0xT": f"{internal.url}/"})
        resolver = GatewayResolver(market, 1)  # type: ignore[arg-type]
        checked = fetch_update(resolver("0xT"), 0, cid_for(b"u"), spec, 1, 1)
        assert internal.connections == 0
    assert checked.kind == "endpoint" and "development chain" in (checked.reason or "")


def test_a_development_chain_or_the_operator_flag_allows_loopback() -> None:
    market = _Market({"0xT": "http://127.0.0.1:9"}, _Chain(True))
    assert "GatewayReader" in repr(GatewayResolver(market, 1)("0xT"))  # type: ignore[arg-type]
    market = _Market({"0xT": "http://127.0.0.1:9"}, _Chain(False))
    resolver = GatewayResolver(market, 1, allow_private=True)  # type: ignore[arg-type]
    assert "GatewayReader" in repr(resolver("0xT"))
