"""A market whose deployment manifest is saved, so in-process CLI commands reach it with
``--rpc-url embedded`` (pytest puts tests/ on the path; import the fixture by name)."""

from __future__ import annotations

import pytest
from market_world import MarketWorld

from marketplace.chain import connection
from marketplace.chain.connection import connect_embedded
from marketplace.chain.deploy import deploy_all
from marketplace.chain.market import MarketClient
from marketplace.chain.tx import TxSender


@pytest.fixture(name="deployed")
def deployed_fixture(monkeypatch: pytest.MonkeyPatch) -> MarketWorld:
    """The ``world`` of conftest, deployed with its manifest saved (under the test's
    LEDGERLEARN_HOME); every ``embedded`` connection gets this chain."""
    chain = connect_embedded()
    owner, aggregator, *trainers, stranger = (chain.dev_account(i) for i in range(10))
    manifest = deploy_all(TxSender(chain, owner), save=True)
    market = MarketClient(chain, manifest.address("ContributionMarket"), owner)
    monkeypatch.setattr(connection, "connect_embedded", lambda *a, **k: chain)
    return MarketWorld(chain, owner, aggregator, trainers, stranger, market)
