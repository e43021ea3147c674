"""Fill a ``SourceRegistry`` on the embedded chain with many sources at once (tests, benches).

Registering 10,000 sources one transaction at a time takes ~12 minutes of py-evm here
(74 ms per ``registerSource``). Paging and gas questions only need the sources to *exist*
in storage exactly as ``registerSource`` leaves them, so :func:`seed_sources` writes those
slots straight into the embedded chain's state and mines a block. The storage layout is
not hard-coded: the slot of ``sourceCount`` (and so of ``_sources`` right after it) is
found from one real registration, and the first seeded source is read back through
``getSource`` and compared field by field, so a layout change fails loudly, never silently.

Only for the in-process chain (``connect_embedded``): a real node's state cannot be written.
"""

from __future__ import annotations

from eth_utils import keccak, to_canonical_address

from marketplace.chain.connection import Chain
from marketplace.chain.registry import INITIAL_USEFULNESS, RegistryClient
from marketplace.errors import ConfigError

_PROBE_SLOTS = 16


def _slot_of(key: int, base: int) -> int:
    """Storage slot of ``mapping[key]`` for a mapping at slot ``base``."""
    return int.from_bytes(keccak(key.to_bytes(32, "big") + base.to_bytes(32, "big")), "big")


def _string_slots(slot: int, text: str) -> dict[int, int]:
    """Solidity's storage encoding of a string at ``slot`` (short or long form)."""
    data = text.encode()
    if len(data) < 32:
        return {slot: int.from_bytes(data.ljust(31, b"\0") + bytes([2 * len(data)]), "big")}
    out = {slot: 2 * len(data) + 1}
    start = int.from_bytes(keccak(slot.to_bytes(32, "big")), "big")
    for i in range(0, len(data), 32):
        out[start + i // 32] = int.from_bytes(data[i : i + 32].ljust(32, b"\0"), "big")
    return out


def _count_slot(registry: RegistryClient) -> int:
    count = registry.source_count()
    if count == 0:
        raise ConfigError("register one source normally first: it locates sourceCount's slot")
    w3 = registry.chain.w3
    for slot in range(_PROBE_SLOTS):
        if int.from_bytes(w3.eth.get_storage_at(registry.address, slot), "big") == count:
            return slot
    raise ConfigError("sourceCount not found in the registry's first storage slots")


def seed_sources(
    registry: RegistryClient,
    count: int,
    signer: str,
    owner: str,
    endpoint: str = "http://127.0.0.1:9000",
) -> list[int]:
    """Add ``count`` active sources with ``signer``/``owner``/``endpoint``, fresh scores and
    no stake, straight into the embedded chain's state; returns their ids."""
    chain: Chain = registry.chain
    if chain.tester is None:
        raise ConfigError("seed_sources writes py-evm state: use connect_embedded()")
    count_slot = _count_slot(registry)
    sources_slot = count_slot + 1
    first = registry.source_count() + 1
    signer_word = int.from_bytes(to_canonical_address(signer), "big") | 1 << 160  # active
    owner_word = int.from_bytes(to_canonical_address(owner), "big")
    writes: dict[int, int] = {count_slot: first + count - 1}
    for sid in range(first, first + count):
        base = _slot_of(sid, sources_slot)
        writes[base] = signer_word
        writes[base + 1] = INITIAL_USEFULNESS << 64
        writes[base + 2] = owner_word
        writes.update(_string_slots(base + 4, endpoint))
    backend = chain.tester.backend
    evm_chain = backend.chain
    state = evm_chain.get_vm().state
    address = to_canonical_address(registry.address)
    for slot, value in writes.items():
        state.set_storage(address, slot, value)
    state.persist()
    evm_chain.header = evm_chain.header.copy(state_root=state.state_root)
    backend.mine_blocks()
    got = registry.source(first)
    if (got.signer, got.owner, got.endpoint, got.active) != (signer, owner, endpoint, True):
        raise ConfigError(f"seeded source {first} reads back as {got}: storage layout changed")
    return list(range(first, first + count))
