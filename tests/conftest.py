"""Shared fixtures: an embedded chain with the market deployed, and named accounts."""

from __future__ import annotations

import pytest
from market_world import MarketWorld

from marketplace.chain.connection import connect_embedded
from marketplace.chain.deploy import deploy_all
from marketplace.chain.market import MarketClient
from marketplace.chain.tx import TxSender


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never touch the developer's ~/.ledgerlearn from tests."""
    monkeypatch.setenv("LEDGERLEARN_HOME", str(tmp_path_factory.mktemp("ledgerlearn-home")))


@pytest.fixture
def world() -> MarketWorld:
    chain = connect_embedded()
    owner, aggregator, *trainers, stranger = (chain.dev_account(i) for i in range(10))
    manifest = deploy_all(TxSender(chain, owner))
    market = MarketClient(chain, manifest.address("ContributionMarket"), owner)
    return MarketWorld(chain, owner, aggregator, trainers, stranger, market)
