"""The dashboard app on the embedded chain: read-only, local-only, hostile chain data shown
as text, an open project's roster with who is awaited, one-line errors."""

from __future__ import annotations

import pytest
from eth_account import Account
from market_rounds import cid_of, commit
from sources_world import apply_batches, source_key
from starlette.testclient import TestClient

from marketplace.chain.deploy import deploy_contract
from marketplace.chain.registry import SCALE, RegistryClient
from marketplace.chain.tx import TxSender
from marketplace.ui.app import DashboardReader, create_app

pytestmark = pytest.mark.integration

ETH = 10**18
EVIL = '"><script>alert(1)</script>'


@pytest.fixture
def client(world) -> TestClient:
    pid, _ = world.market.create_project(
        reward=ETH, aggregator=world.aggregator.address, rounds=2, round_duration=3600,
        min_stake=10**15,
    )  # fmt: skip
    for t in world.trainers[:2]:
        world.as_(t).register(pid, 10**15)
    commit(world, world.trainers[0], pid, 1, cid_of(0))
    deployed = deploy_contract(TxSender(world.chain, world.owner), "SourceRegistry", 10**15)
    admin = RegistryClient(world.chain, deployed.address, world.owner)
    admin.grant_evaluator(world.stranger.address)
    signer = Account.from_key(source_key(0)).address
    (sid, _) = admin.as_account(world.trainers[5]).register_source(signer, EVIL)
    apply_batches(admin.as_account(world.stranger), [sid], [{0: -SCALE}])
    reader = DashboardReader(world.market, RegistryClient(world.chain, deployed.address),
                             None, deployed.block)  # fmt: skip
    return TestClient(create_app(reader, refresh_s=0), base_url="http://127.0.0.1:8780")


def test_pages_are_read_only_local_only_and_scriptless(client: TestClient) -> None:
    home = client.get("/")
    assert home.status_code == 200 and "project 1" in home.text
    assert "script-src" not in home.headers["content-security-policy"]
    assert "default-src 'none'" in home.headers["content-security-policy"]
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert client.request(method, "/projects/1").status_code in (405, 413)
    assert client.get("/", headers={"host": "attacker.example"}).status_code == 400
    assert client.get("/", headers={"host": "localhost:8780"}).status_code == 200


def test_hostile_source_endpoint_is_shown_as_text(client: TestClient) -> None:
    page = client.get("/sources")
    assert page.status_code == 200
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text
    (source,) = client.get("/api/sources").json()
    assert source["endpoint"] == EVIL and source["reliability"] == pytest.approx(1 / 3)
    assert [p["beta"] for p in source["history"]] == [SCALE]


def test_an_open_project_shows_who_is_awaited(client: TestClient) -> None:
    page = client.get("/projects/1")
    assert page.status_code == 200
    assert 'id="roster"' in page.text and "awaited" in page.text
    assert "no data yet" in page.text  # no round committed: an empty accuracy chart
    status = client.get("/api/projects/1").json()["status"]
    assert status["phase"] == "commit" and len(status["awaited"]) == 1


def test_unknown_projects_get_a_one_line_404(client: TestClient) -> None:
    for path in ("/projects/2", "/projects/abc", "/projects/0", "/nowhere"):
        response = client.get(path)
        assert response.status_code == 404, path
    assert "no project 2 on this market (1 projects)" in client.get("/projects/2").text
