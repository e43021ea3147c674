"""Plain values of the chain layer that need no web3: the CLI's option defaults read
them at start-up, and importing them must not load web3 or eth_account (which take
a second; see ``scripts/bench_cli.py``)."""

from __future__ import annotations

#: ``--rpc-url`` value that runs a throwaway in-process chain (eth-tester + py-evm).
EMBEDDED = "embedded"
#: Where ``ledgerlearn node`` (anvil) listens by default.
DEFAULT_RPC_URL = "http://127.0.0.1:8545"
#: Chain id of every anvil node (and so of every local deployment).
ANVIL_CHAIN_ID = 31337
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
ZERO32 = b"\x00" * 32
