"""Send transactions: explicit gas and nonce, fast receipt polling, decoded reverts.

Every state-changing call goes through :class:`TxSender`. It signs locally (coincurve
makes that ~0.25 ms), estimates gas itself so a revert surfaces *before* anything is
sent (decoded into a named custom error), keeps its own nonce counter so batches of
transactions need no round trip each, and polls receipts every 20 ms.
"""

from __future__ import annotations

import ast
import logging
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed
from eth_utils.exceptions import ValidationError as EthValidationError
from web3.exceptions import ContractLogicError, TimeExhausted, Web3RPCError
from web3.types import TxReceipt

from marketplace.chain.connection import Chain
from marketplace.chain.revert import decode_revert
from marketplace.chain.units import format_eth
from marketplace.errors import ChainError, InsufficientFunds, TransactionReverted

log = logging.getLogger(__name__)

GAS_HEADROOM = 1.15
GAS_MARGIN = 5_000  # covers the 63/64 rule on calls that forward gas (e.g. to verifiers)
EMBEDDED_TX_GAS = 20_000_000
PRIORITY_FEE = 1_000_000_000  # 1 gwei
RECEIPT_POLL_S = 0.02
RECEIPT_TIMEOUT_S = 120.0
REVERT_ERRORS = (ContractLogicError, Web3RPCError, TransactionFailed)
#: What a node raises when it will not take a transaction: a revert, or a refusal such
#: as no funds (py-evm, behind the embedded chain, raises eth_utils' ValidationError).
REFUSED_ERRORS = (*REVERT_ERRORS, EthValidationError)


def revert_data(exc: BaseException) -> bytes | str | None:
    """Revert data from a web3 error, whatever the provider: JSON-RPC nodes put it in
    ``.data``; eth-tester raises ``TransactionFailed`` whose cause holds the raw bytes."""
    seen: BaseException | None = exc
    while seen is not None:
        data = getattr(seen, "data", None)
        if isinstance(data, dict):  # some providers wrap {"data": "0x..."}
            data = data.get("data")
        if data:
            return data  # type: ignore[no-any-return]
        if seen.args and isinstance(seen.args[0], bytes):
            return seen.args[0]
        if seen.args and isinstance(seen.args[0], str):
            text = seen.args[0].removeprefix("execution reverted: ")
            if text.startswith(("b'", 'b"')):  # eth-tester puts repr(bytes) in messages
                try:
                    return bytes(ast.literal_eval(text))
                except (ValueError, SyntaxError):
                    pass
        seen = seen.__cause__ or seen.__context__
    return None


def rpc_message(exc: BaseException) -> str:
    """One line from a node's error: the JSON-RPC ``message`` rather than the raw
    ``{'code': ..., 'message': ...}`` dict web3 puts in the exception."""
    arg: Any = exc.args[0] if exc.args else exc
    if isinstance(arg, str) and arg.startswith("{"):
        try:
            arg = ast.literal_eval(arg)
        except (ValueError, SyntaxError):
            pass
    if isinstance(arg, dict):
        arg = arg.get("message") or arg
    return " ".join(str(arg).split()) or type(exc).__name__


def node_refusal(exc: BaseException, action: str) -> ChainError | None:
    """A one-line :class:`ChainError` when ``exc`` is a node refusing without revert data
    (no funds, bad nonce, block range too large, ...), None when it is a revert."""
    if revert_data(exc):
        return None
    text = rpc_message(exc)
    if isinstance(exc, ContractLogicError | TransactionFailed) or "revert" in text.lower():
        return None
    return ChainError(f"{action} refused by the node: {text}")


def _revert_error(exc: Exception, action: str) -> ChainError:
    """A revert (decoded custom error) or, when the node refused without revert data,
    the node's one-line refusal (:func:`node_refusal`)."""
    refused = node_refusal(exc, action)
    if refused is not None:
        return refused
    data = revert_data(exc)
    name, args, message = decode_revert(data)
    if name is None and not data:
        message = rpc_message(exc)
    return TransactionReverted(f"{action} reverted: {message}", name, args)


class TxSender:
    """Signs and sends transactions for one account on one chain."""

    def __init__(self, chain: Chain, account: LocalAccount) -> None:
        self.chain = chain
        self.account = account

    @property
    def address(self) -> str:
        return str(self.account.address)

    def _next_nonce(self) -> int:
        nonces = self.chain.nonces
        if self.address not in nonces:
            nonces[self.address] = int(
                self.chain.w3.eth.get_transaction_count(self.account.address, "pending")
            )
        nonce = nonces[self.address]
        nonces[self.address] = nonce + 1
        return nonce

    def _forget_nonce(self) -> None:
        """Resync from the node next time (a transaction was not accepted)."""
        self.chain.nonces.pop(self.address, None)

    def _fees(self) -> dict[str, int]:
        base = int(self.chain.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
        return {"maxFeePerGas": 2 * base + PRIORITY_FEE, "maxPriorityFeePerGas": PRIORITY_FEE}

    def transact(
        self, call: Any, *, value: int = 0, gas: int | None = None, action: str | None = None
    ) -> TxReceipt:
        """Send ``call`` (a bound contract function or constructor) and wait for it.

        Raises :class:`TransactionReverted` with the decoded custom error when the call
        would revert (checked by gas estimation) or did revert once mined.
        """
        action = action or str(getattr(call, "fn_name", "deploy"))
        base_tx: dict[str, Any] = {"from": self.account.address, "value": value}
        if gas is None:
            try:
                gas = self._gas_for(call, base_tx, action)
            except ChainError:
                self.check_funds(value)  # the likelier cause, said in ether
                raise
        fees = self._fees()
        tx = call.build_transaction(
            {
                **base_tx,
                "gas": gas,
                "nonce": self._next_nonce(),
                "chainId": self.chain.chain_id,
                **fees,
            }
        )
        signed = self.account.sign_transaction(tx)
        try:
            tx_hash = self.chain.w3.eth.send_raw_transaction(signed.raw_transaction)
        except REFUSED_ERRORS as exc:
            self._forget_nonce()
            self.check_funds(value, gas * fees["maxFeePerGas"])
            raise _revert_error(exc, action) from exc
        receipt = self.wait(tx_hash)
        if receipt["status"] != 1:
            raise self._explain_failure(tx, receipt, action)
        log.debug(
            "%s mined in block %s, gas %s", action, receipt["blockNumber"], receipt["gasUsed"]
        )
        return receipt

    def check_funds(self, value: int, gas_cost: int | None = None) -> None:
        """Raise :class:`InsufficientFunds` when the account holds less than ``value``
        plus ``gas_cost`` wei (None: gas not known yet). Called only once the node has
        refused a transaction (no cost when it succeeds), so the user reads amounts in
        ether instead of the node's RPC error."""
        needed = value + (gas_cost or 0)
        balance = int(self.chain.w3.eth.get_balance(self.account.address))
        if balance < needed:
            raise InsufficientFunds(
                f"insufficient funds: account {self.address} has {format_eth(balance)}, "
                f"needs {format_eth(needed)}"
                + (" plus gas" if gas_cost is None else " with gas")
                + ": fund it or send less"
            )

    def transfer(self, to: str, value: int) -> TxReceipt:
        """Send plain ether (funding test and simulation accounts)."""
        tx: dict[str, Any] = {
            "from": self.account.address,
            "to": to,
            "value": value,
            "gas": 21_000,
            "nonce": self._next_nonce(),
            "chainId": self.chain.chain_id,
            **self._fees(),
        }
        signed = self.account.sign_transaction(tx)
        try:
            tx_hash = self.chain.w3.eth.send_raw_transaction(signed.raw_transaction)
        except REFUSED_ERRORS as exc:
            self._forget_nonce()
            self.check_funds(value, 21_000 * tx["maxFeePerGas"])
            raise _revert_error(exc, f"transfer of {format_eth(value)} to {to}") from exc
        receipt = self.wait(tx_hash)
        if receipt["status"] != 1:
            raise ChainError(f"transfer of {format_eth(value)} to {to} failed")
        return receipt

    def _gas_for(self, call: Any, base_tx: dict[str, Any], action: str) -> int:
        """Gas limit for ``call``, surfacing a revert before anything is sent.

        py-evm estimates gas by binary search (~13 executions), so on the embedded chain
        a single ``eth_call`` checks for reverts and the transaction gets a generous
        fixed limit (only used gas is charged). Real nodes estimate natively.
        """
        try:
            if self.chain.embedded and hasattr(call, "call"):
                call.call(base_tx)
                return EMBEDDED_TX_GAS
            estimate = int(call.estimate_gas(base_tx))
        except REFUSED_ERRORS as exc:
            raise _revert_error(exc, action) from exc
        return int(estimate * GAS_HEADROOM) + GAS_MARGIN

    def wait(self, tx_hash: Any, timeout: float = RECEIPT_TIMEOUT_S) -> TxReceipt:
        """Poll for a receipt every 20 ms (web3's default polls every 100 ms+)."""
        try:
            return self.chain.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=timeout, poll_latency=RECEIPT_POLL_S
            )
        except TimeExhausted as exc:
            raise ChainError(
                f"transaction 0x{bytes(tx_hash).hex()} not mined after {timeout:.0f} s: "
                "is the node mining?"
            ) from exc

    def _explain_failure(self, tx: dict[str, Any], receipt: TxReceipt, action: str) -> Exception:
        """Replay a failed transaction as a call at its block to recover the revert data."""
        call = {k: tx[k] for k in ("from", "to", "data", "value", "gas") if k in tx}
        try:
            self.chain.w3.eth.call(call, receipt["blockNumber"] - 1)  # type: ignore[arg-type]
        except REVERT_ERRORS as exc:
            return _revert_error(exc, action)
        if receipt["gasUsed"] >= tx["gas"]:
            return TransactionReverted(f"{action} ran out of gas ({tx['gas']}): raise --gas")
        return TransactionReverted(f"{action} reverted without a reason")
