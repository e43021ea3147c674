"""The embedded-chain world most integration tests play in (the ``world`` fixture's type).

A module of its own, not ``conftest``: with several conftest files under ``tests/``,
``from conftest import ...`` resolves to whichever one was imported first.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from marketplace.chain.connection import Chain
from marketplace.chain.market import MarketClient


@dataclass
class MarketWorld:
    chain: Chain
    owner: LocalAccount
    aggregator: LocalAccount
    trainers: list[LocalAccount]
    stranger: LocalAccount
    market: MarketClient  # as the owner

    def as_(self, account: LocalAccount) -> MarketClient:
        return self.market.as_account(account)
