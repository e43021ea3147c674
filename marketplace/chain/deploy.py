"""Deploy the contracts and record where they are: deployment manifests.

A manifest (chain id, genesis hash, addresses, deployment block, artifact hashes) is
written to ``$LEDGERLEARN_HOME/deployments/<chain id>-<genesis hash>.json`` for a
persistent chain, so later commands find the contracts without being told.

Every local chain has id 31337, so the id alone does not name a chain: the genesis
block's hash does (anvil restarted without ``--state`` starts a new genesis; with it,
the same one). Hence:

- a manifest is only ever used on the chain whose genesis it records; a manifest of
  another chain with the same id (a restarted node) is never used silently: the user
  is told to deploy again;
- a second ``deploy`` on a chain that already has a live deployment is refused, naming
  ``--force``; with ``--force`` the new deployment becomes the active one and the old
  manifest is kept beside it (``...replaced-<unix time>.json``), never overwritten;
- loading checks that code still exists at each address, so a chain that lost its
  contracts sends the user to ``deploy`` rather than into confusing reverts.
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
from marketplace.errors import ConfigError, DeploymentNotFound
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
    genesis_hash: str = ""

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


def genesis_hash(chain: Chain) -> str:
    """0x-hex hash of ``chain``'s block 0: what tells two chains with one id apart."""
    return "0x" + bytes(chain.w3.eth.get_block(0)["hash"]).hex()


def manifests_dir() -> Path:
    return ledgerlearn_home() / "deployments"


def manifest_path(chain: Chain) -> Path:
    """Where ``chain``'s active deployment manifest lives (chain id and genesis)."""
    return manifests_dir() / f"{chain.chain_id}-{genesis_hash(chain)[2:18]}.json"


def _live(chain: Chain, manifest: Manifest) -> str | None:
    """None when code exists at every address of ``manifest``; else what is missing."""
    for name, deployed in manifest.contracts.items():
        if not chain.w3.eth.get_code(deployed.address):  # type: ignore[arg-type]
            return f"{name} is no longer at {deployed.address}"
    return None


def _check_replace(chain: Chain, path: Path, force: bool) -> None:
    """Refuse to replace a live deployment unless ``force``; keep the old manifest."""
    if not path.exists():
        return
    old = Manifest.from_json(path.read_text())
    if _live(chain, old) is not None:
        return  # its contracts are gone: nothing to protect
    if not force:
        raise ConfigError(
            f"chain {chain.chain_id} (genesis {genesis_hash(chain)[:10]}...) already has a "
            f"deployment (ContributionMarket at {old.address('ContributionMarket')}, {path}): "
            "pass --force to deploy a new one and make it the active one"
        )
    path.replace(path.with_name(f"{path.stem}.replaced-{old.deployed_at}.json"))


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
    sender: TxSender,
    save: bool | None = None,
    source_stake: int = DEFAULT_SOURCE_STAKE,
    force: bool = False,
) -> Manifest:
    """Deploy every product contract; save the manifest unless the chain is embedded.

    ``source_stake`` is the wei each dRAG source registers with (``SourceRegistry``).
    A chain with a live deployment is refused before any gas is spent, unless ``force``
    (the old manifest is then kept beside the new one).
    """
    chain = sender.chain
    save = save if save is not None else not chain.embedded
    path = manifest_path(chain) if save else None
    if path is not None:
        _check_replace(chain, path, force)
    manifest = Manifest(
        chain_id=chain.chain_id,
        rpc_url=chain.url,
        deployer=sender.address,
        deployed_at=int(time.time()),
        genesis_hash=genesis_hash(chain),
    )
    args: dict[str, tuple[object, ...]] = {"SourceRegistry": (source_stake,)}
    for name in DEPLOYED_CONTRACTS:
        manifest.contracts[name] = deploy_contract(sender, name, *args.get(name, ()))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(manifest.to_json())
        os.replace(tmp, path)
    return manifest


def load_manifest(chain: Chain) -> Manifest:
    """The manifest of ``chain`` (its id and genesis), checked against the code deployed."""
    path = manifest_path(chain)
    if not path.exists():
        others = sorted(manifests_dir().glob(f"{chain.chain_id}*.json"))
        hint = (
            f" (the manifests of chain id {chain.chain_id} in {manifests_dir()} are of "
            "another chain with that id: a restarted node?)"
            if others
            else ""
        )
        raise DeploymentNotFound(
            f"no deployment on the chain at {chain.url} (id {chain.chain_id}, genesis "
            f"{genesis_hash(chain)[:10]}...){hint}: run `ledgerlearn deploy`"
        )
    manifest = Manifest.from_json(path.read_text())
    missing = _live(chain, manifest)
    if missing is not None:
        raise DeploymentNotFound(f"{missing} on chain {chain.chain_id}: run `ledgerlearn deploy`")
    return manifest
