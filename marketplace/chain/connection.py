"""One way to connect: the embedded chain (eth-tester + py-evm) or any JSON-RPC URL.

``EMBEDDED`` runs a fresh in-process chain: nothing to start, ideal for the demo,
simulations and tests, gone when the process ends. Any ``http(s)://`` URL connects to a
real node (anvil from ``ledgerlearn node``, or any EVM node).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import EthereumTesterProvider, HTTPProvider, Web3

from marketplace.chain.constants import ANVIL_CHAIN_ID, DEFAULT_RPC_URL, EMBEDDED
from marketplace.chain.outage import DEFAULT_MAX_OUTAGE_S, RetryingHTTPProvider
from marketplace.errors import ChainUnreachable, ConfigError
from marketplace.untrusted.endpoints import private_allowed

log = logging.getLogger(__name__)

NODE_HINT = "start a local node with `ledgerlearn node` or pass --rpc-url"


@dataclass
class Chain:
    """A connected chain: the web3 handle plus what the embedded chain needs."""

    w3: Web3
    url: str
    chain_id: int
    dev_keys: list[str] = field(default_factory=list)
    tester: Any = None  # eth_tester.EthereumTester for the embedded chain
    # Next nonce per sending address, shared by every TxSender on this chain so two
    # senders for one account never reuse a nonce.
    nonces: dict[str, int] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        return self.tester is not None

    @property
    def development(self) -> bool:
        """A local development chain (embedded, anvil 31337, 1337): everything on one
        machine, so private and loopback endpoints are fetched."""
        return private_allowed(self.chain_id, self.embedded)

    def dev_account(self, index: int) -> LocalAccount:
        """Funded development account ``index`` of this chain (embedded chain or anvil)."""
        if not self.dev_keys:
            raise ConfigError(
                f"{self.url} has no known dev accounts: pass --key or set LEDGERLEARN_KEY"
            )
        if not 0 <= index < len(self.dev_keys):
            raise ConfigError(
                f"dev account index {index} is out of range 0..{len(self.dev_keys) - 1}"
            )
        return Account.from_key(self.dev_keys[index])

    def now(self) -> int:
        """Timestamp of the latest block."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def snapshot(self) -> Any:
        """Snapshot the embedded chain (tests and simulations rewind to it)."""
        if self.tester is None:
            raise ConfigError("snapshots are only available on the embedded chain")
        return self.tester.take_snapshot()

    def revert(self, snapshot: Any) -> None:
        """Rewind the embedded chain to ``snapshot``; cached nonces are dropped with it."""
        if self.tester is None:
            raise ConfigError("snapshots are only available on the embedded chain")
        self.tester.revert_to_snapshot(snapshot)
        self.nonces.clear()

    def advance_time(self, seconds: int) -> None:
        """Move chain time forward and mine a block (local chains only; used by tests
        and simulations to reach deadlines)."""
        if self.tester is not None:
            pending = int(self.tester.get_block_by_number("pending")["timestamp"])
            self.tester.time_travel(max(pending, self.now()) + seconds)
            self.tester.mine_blocks(1)
            return
        self.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


# anvil's well-known development mnemonic: its first accounts are funded on every start.
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
ANVIL_DEV_ACCOUNTS = 10
ANVIL_HD_PATH = "m/44'/60'/0'/0"


def _anvil_dev_keys(count: int = ANVIL_DEV_ACCOUNTS) -> list[str]:
    Account.enable_unaudited_hdwallet_features()
    return [
        Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"{ANVIL_HD_PATH}/{i}").key.to_0x_hex()
        for i in range(count)
    ]


def connect_embedded(accounts: int = ANVIL_DEV_ACCOUNTS) -> Chain:
    """A fresh in-process py-evm chain whose funded dev accounts are anvil's, so
    ``--account N`` names the same address on the embedded chain and on a local node."""
    from eth_tester import EthereumTester, PyEVMBackend

    state = PyEVMBackend.generate_genesis_state(
        num_accounts=accounts, mnemonic=ANVIL_MNEMONIC, hd_path=ANVIL_HD_PATH
    )
    backend = PyEVMBackend(genesis_state=state, mnemonic=ANVIL_MNEMONIC, hd_path=ANVIL_HD_PATH)
    tester = EthereumTester(backend)
    w3 = Web3(EthereumTesterProvider(tester))
    keys = [k.to_hex() for k in backend.account_keys]
    return Chain(w3=w3, url=EMBEDDED, chain_id=int(w3.eth.chain_id), dev_keys=keys, tester=tester)


def connect(
    url: str = DEFAULT_RPC_URL, timeout: float = 10.0, max_outage_s: float = DEFAULT_MAX_OUTAGE_S
) -> Chain:
    """Connect to ``url`` (``embedded`` or a JSON-RPC URL), failing with one clear line.

    The first request fails at once if no node answers (a wrong URL should not hang);
    once connected, requests ride out an outage of up to ``max_outage_s`` seconds
    (:class:`~marketplace.chain.outage.RetryingHTTPProvider`).
    """
    if url == EMBEDDED:
        return connect_embedded()
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"invalid RPC URL {url!r}: use http(s)://host:port or 'embedded'")
    try:
        chain_id = int(Web3(HTTPProvider(url, request_kwargs={"timeout": timeout})).eth.chain_id)
    except Exception as exc:  # requests/aiohttp errors differ by transport
        raise ChainUnreachable(f"no Ethereum node answers at {url}: {NODE_HINT}") from exc
    provider = RetryingHTTPProvider(url, {"timeout": timeout}, max_outage_s=max_outage_s)
    w3 = Web3(provider)
    keys = _anvil_dev_keys() if chain_id == ANVIL_CHAIN_ID else []
    return Chain(w3=w3, url=url, chain_id=chain_id, dev_keys=keys)
