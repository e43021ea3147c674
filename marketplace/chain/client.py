"""Base of the typed contract clients: one contract, one chain, an optional signer.

Reads decode reverts into :class:`TransactionReverted` with the custom error's name;
writes go through :class:`TxSender`. ``MarketClient`` and ``RegistryClient`` add the
typed calls of their contract.
"""

from __future__ import annotations

from typing import Any, Self

from eth_account.signers.local import LocalAccount
from web3.types import TxReceipt

from marketplace.chain.artifacts import load_artifact
from marketplace.chain.connection import Chain
from marketplace.chain.revert import decode_revert
from marketplace.chain.tx import REVERT_ERRORS, TxSender, node_refusal, revert_data
from marketplace.errors import TransactionReverted


class ContractClient:
    """Calls the contract named ``CONTRACT`` at ``address`` on ``chain`` as ``account``."""

    CONTRACT: str = ""

    def __init__(self, chain: Chain, address: str, account: LocalAccount | None = None) -> None:
        self.chain = chain
        self.address = chain.w3.to_checksum_address(address)
        self.contract = chain.w3.eth.contract(
            address=self.address, abi=load_artifact(self.CONTRACT).abi
        )
        self.sender = TxSender(chain, account) if account is not None else None

    def as_account(self, account: LocalAccount) -> Self:
        """The same contract seen by another signer."""
        return type(self)(self.chain, self.address, account)

    def _call(self, fn: Any, action: str) -> Any:
        # the signer as the caller: without one, web3's eth-tester middleware asks the
        # embedded chain for its accounts on every call (15 s of an 80 s simulation)
        call = {"from": self.sender.account.address} if self.sender is not None else {}
        try:
            return fn.call(call)
        except REVERT_ERRORS as exc:
            refused = node_refusal(exc, action)
            if refused is not None:
                raise refused from exc
            name, args, message = decode_revert(revert_data(exc))
            raise TransactionReverted(f"{action}: {message}", name, args) from exc

    def _tx(
        self,
        fn: Any,
        value: int = 0,
        action: str | None = None,
        gas: int | None = None,
        gas_floor: int = 0,
    ) -> TxReceipt:
        if self.sender is None:
            raise TransactionReverted("no signing account: pass --key or --account")
        return self.sender.transact(fn, value=value, action=action, gas=gas, gas_floor=gas_floor)
