"""What a user reads when the chain refuses: one line in ether, never an RPC dict.

``--reward 100000`` from a dev account holding 10,000 ETH used to end in
``createProject reverted: {'code': -32003, 'message': 'Insufficient funds ...'}``."""

from __future__ import annotations

import pytest
from market_world import MarketWorld
from web3.exceptions import Web3RPCError

from marketplace.chain.tx import TxSender, _revert_error, rpc_message
from marketplace.chain.units import format_eth
from marketplace.errors import ChainError, InsufficientFunds, TransactionReverted

ETH = 10**18


def test_a_reward_above_the_balance_names_both_amounts_in_ether(world: MarketWorld) -> None:
    balance = world.chain.w3.eth.get_balance(world.owner.address)
    with pytest.raises(InsufficientFunds) as caught:
        world.market.create_project(
            reward=balance + ETH,
            aggregator=world.aggregator.address,
            rounds=1,
            round_duration=60,
            min_stake=ETH // 10,
        )
    message = str(caught.value)
    assert message.startswith("insufficient funds: account ")
    assert f"has {format_eth(balance)}, needs {format_eth(balance + ETH)} plus gas" in message
    assert "{" not in message and "\n" not in message


def test_a_transfer_from_an_empty_account_says_so_in_ether(world: MarketWorld) -> None:
    from eth_account import Account

    empty = Account.from_key("0x" + "11" * 32)
    with pytest.raises(InsufficientFunds, match=r"has 0 ETH, needs 1\.0\d+ ETH with gas: fund it"):
        TxSender(world.chain, empty).transfer(world.owner.address, ETH)


def test_a_node_refusal_without_revert_data_is_one_line_with_the_nodes_message() -> None:
    exc = Web3RPCError("{'code': -32000, 'message': 'nonce too low: next nonce 5, tx nonce 3'}")
    assert rpc_message(exc) == "nonce too low: next nonce 5, tx nonce 3"
    error = _revert_error(exc, "register")
    assert type(error) is ChainError
    assert str(error) == "register refused by the node: nonce too low: next nonce 5, tx nonce 3"
    reverted = _revert_error(Web3RPCError("execution reverted"), "register")
    assert isinstance(reverted, TransactionReverted)


def test_a_read_the_node_refuses_is_one_line_not_a_made_up_revert(world: MarketWorld) -> None:
    class Refusing:
        def call(self, transaction: object = None) -> None:
            raise Web3RPCError("{'code': -32005, 'message': 'query returned too many results'}")

    with pytest.raises(ChainError) as caught:
        world.market._call(Refusing(), "project 1")
    assert type(caught.value) is ChainError
    assert str(caught.value) == ("project 1 refused by the node: query returned too many results")
