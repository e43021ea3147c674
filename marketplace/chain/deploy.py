"""Deploy the contracts and record where they are: deployment manifests.

A manifest (chain id, addresses, deployment block, artifact hashes) is written to
``$LEDGERLEARN_HOME/deployments/<chain id>.json`` for a persistent chain, so later
commands find the contracts without being told. Loading one checks that code still
exists at each address: a restarted anvil without ``--state`` loses the contracts,
and the user is told to deploy again rather than sent into confusing reverts.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from marketplace.chain.artifacts import load_artifact
from marketplace.chain.connection import Chain
from marketplace.chain.tx import TxSender
from marketplace.errors import DeploymentNotFound
from marketplace.paths import ledgerlearn_home

DEPLOYED_CONTRACTS = ("ContributionMarket", "SourceRegistry")
DEFAULT_SOURCE_STAKE = 10**16
"""Wei a dRAG source registers with (0.01 ETH): ``SourceRegistry``'s Sybil price."""


@dataclass
class DeployedContract:
    address: str
    block: int
    artifact_sha256: str
    gas_used: int


@dataclass
class Manifest:
    chain_id: int
    rpc_url: str
    deployer: str
    contracts: dict[str, DeployedContract] = field(default_factory=dict)
    deployed_at: int = 0

    def address(self, name: str) -> str:
        if name not in self.contracts:
            raise DeploymentNotFound(f"{name} is not in the deployment: run `ledgerlearn deploy`")
        return self.contracts[name].address

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        contracts = {k: DeployedContract(**v) for k, v in raw.pop("contracts").items()}
        return cls(contracts=contracts, **raw)


def manifest_path(chain_id: int) -> Path:
    return ledgerlearn_home() / "deployments" / f"{chain_id}.json"


def deploy_contract(sender: TxSender, name: str, *args: object) -> DeployedContract:
    """Deploy one contract from its committed artifact."""
    art = load_artifact(name)
    factory = sender.chain.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    receipt = sender.transact(factory.constructor(*args), action=f"deploy {name}")
    return DeployedContract(
        address=str(receipt["contractAddress"]),
        block=int(receipt["blockNumber"]),
        artifact_sha256=art.sha256,
        gas_used=int(receipt["gasUsed"]),
    )


def deploy_all(
    sender: TxSender, save: bool | None = None, source_stake: int = DEFAULT_SOURCE_STAKE
) -> Manifest:
    """Deploy every product contract; save the manifest unless the chain is embedded.

    ``source_stake`` is the wei each dRAG source registers with (``SourceRegistry``).
    """
    chain = sender.chain
    manifest = Manifest(
        chain_id=chain.chain_id,
        rpc_url=chain.url,
        deployer=sender.address,
        deployed_at=int(time.time()),
    )
    args: dict[str, tuple[object, ...]] = {"SourceRegistry": (source_stake,)}
    for name in DEPLOYED_CONTRACTS:
        manifest.contracts[name] = deploy_contract(sender, name, *args.get(name, ()))
    if save if save is not None else not chain.embedded:
        path = manifest_path(chain.chain_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(manifest.to_json())
        os.replace(tmp, path)
    return manifest


def load_manifest(chain: Chain) -> Manifest:
    """The manifest for ``chain``, checked against the code actually deployed."""
    path = manifest_path(chain.chain_id)
    if not path.exists():
        raise DeploymentNotFound(
            f"no deployment for chain {chain.chain_id} at {chain.url}: run `ledgerlearn deploy`"
        )
    manifest = Manifest.from_json(path.read_text())
    for name, deployed in manifest.contracts.items():
        if not chain.w3.eth.get_code(deployed.address):  # type: ignore[arg-type]
            raise DeploymentNotFound(
                f"{name} is no longer at {deployed.address} on chain {chain.chain_id} "
                "(node restarted without --state?): run `ledgerlearn deploy`"
            )
    return manifest
