"""The dashboard end to end: a real project and a real registry on anvil, ``ledgerlearn ui``
as its own process, read by a real headless browser (Playwright driving Debian's chromium).

The project is a whole simulation run on anvil (real training, real CIDs, 3 committed
rounds, one sign-flipping trainer excluded by the robust rule, everyone paid); the
registry gets three sources and three feedback transactions of signed receipts. The
browser then reads what a person would see: the project listed, its round count, one
accuracy point per round equal to the round reports' accuracy, the excluded trainer with
its reason, payouts in ether, and every source's reliability after each feedback
transaction. It writes the screenshot in ``docs/dashboard.png``.

Playwright's own browser download needs the internet, so the test uses the distribution's
chromium at ``/usr/bin/chromium`` (``make test`` installs it when it can: see the Makefile's
``chromium`` target); without it the test skips and says how to install it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from cli_process import cli_env, complete_cli, spawn_cli, stop_all, wait_http
from sources_world import apply_batches, register_sources

from marketplace.chain.connection import connect
from marketplace.chain.deploy import load_manifest
from marketplace.chain.node import free_port, start_anvil, stop
from marketplace.chain.registry import SCALE, RegistryClient
from marketplace.chain.units import format_eth
from marketplace.nodes.simulate import SimulationConfig, simulate
from marketplace.storage import LocalStore
from marketplace.views.sources import beta_reliability

pytestmark = pytest.mark.e2e

CHROMIUM = Path(os.environ.get("LEDGERLEARN_CHROMIUM", "/usr/bin/chromium"))
DOCS = Path(__file__).resolve().parents[2] / "docs"
SCREENSHOT = DOCS / "dashboard.png"
ROUNDS = 3
ONE = SCALE


def _browser_or_skip() -> None:
    pytest.importorskip(
        "playwright.sync_api", reason="playwright is missing: .venv/bin/pip install -e '.[dev]'"
    )
    if not CHROMIUM.exists():
        pytest.skip(
            f"DASHBOARD BROWSER TEST SKIPPED: no chromium at {CHROMIUM}. Fix: `sudo apt-get "
            "install -y chromium` (or run `make test` as root, which installs it), or set "
            "LEDGERLEARN_CHROMIUM to a Chromium binary"
        )


def test_dashboard_shows_rounds_accuracy_exclusions_and_source_reliability(
    tmp_path: Path,
) -> None:
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    anvil, url = start_anvil()
    ui: list[subprocess.Popen] = []
    try:
        chain = connect(url)
        store_dir = tmp_path / "aggregator-store"
        config = SimulationConfig(
            trainers=4, rounds=ROUNDS, dataset="digits", attack="sign_flip:0.25", epochs=2,
            lr=0.2,
        )  # fmt: skip
        result = simulate(config, chain=chain, aggregator_store=LocalStore(store_dir))
        (attacker,) = result.attackers
        accuracies = [float(s.metrics["accuracy"]) for s in result.rounds]
        reasons = [s.excluded[attacker] for s in result.rounds]

        manifest = load_manifest(chain)
        deployer = chain.dev_account(0)
        admin = RegistryClient(chain, manifest.address("SourceRegistry"), deployer)
        evaluator = chain.dev_account(9)
        admin.grant_evaluator(evaluator.address)
        owners = [chain.dev_account(6 + i) for i in range(3)]
        ids = register_sources(admin, owners, [f"http://127.0.0.1:{9300 + i}" for i in range(3)])
        batches = [{0: ONE, 1: -ONE}, {0: ONE, 1: -ONE, 2: ONE // 2}, {0: ONE}]
        apply_batches(admin.as_account(evaluator), ids, batches)

        port = free_port()
        log = tmp_path / "ui.log"
        env = cli_env(LEDGERLEARN_RPC_URL=url)
        args = ["ui", "--port", str(port), "--store", f"local:{store_dir}", "--refresh", "0"]
        ui.append(spawn_cli(args, env, log))
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/", ui[0], log)

        # read-only: nothing but GET and HEAD, and no page for a foreign Host (rebinding)
        assert httpx.post(base + "/", timeout=5).status_code in (405, 413)
        assert httpx.request("DELETE", base + "/sources", timeout=5).status_code == 405
        evil = httpx.get(base + "/", headers={"Host": "attacker.example"}, timeout=5)
        assert evil.status_code == 400

        # a second dashboard on the same port: one line naming the problem and the fix
        clash = complete_cli(["ui", "--port", str(port)], env, 60)
        assert clash.returncode == 1
        assert f"port {port}" in clash.stderr and "--port" in clash.stderr
        assert len(clash.stderr.strip().splitlines()) == 1, clash.stderr

        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
            )
            page = browser.new_page(viewport={"width": 1240, "height": 900})
            external: list[str] = []
            page.on(
                "request",
                lambda r: None if r.url.startswith(base) else external.append(r.url),
            )

            page.goto(base + "/")
            row = page.locator("#projects tbody tr", has_text=f"project {result.project_id}")
            assert row.count() == 1
            assert f"{ROUNDS} / {ROUNDS}" in row.inner_text()
            assert "finalized" in row.inner_text()
            assert "1 ETH" in row.inner_text()  # the reward, in ether

            row.get_by_role("link").click()
            page.wait_for_url(f"{base}/projects/{result.project_id}")
            rounds = page.locator("#rounds tbody tr")
            assert rounds.count() == ROUNDS
            # simulate's projects are attested: the honest aggregator's root is confirmed
            for i in range(ROUNDS):
                assert "confirmed: the aggregator's root confirmed by" in rounds.nth(i).inner_text()
            assert page.locator("#attestations tbody tr").count() >= ROUNDS
            points = page.locator("svg.chart circle.point")
            assert points.count() == ROUNDS
            shown = [
                (float(points.nth(i).get_attribute("data-x") or "nan"),
                 float(points.nth(i).get_attribute("data-y") or "nan"))
                for i in range(ROUNDS)
            ]  # fmt: skip
            assert shown == [
                (float(r), pytest.approx(a, abs=1e-5)) for r, a in enumerate(accuracies, 1)
            ]
            exclusions = page.locator("#exclusions tbody tr")
            assert exclusions.count() == ROUNDS  # the attacker, every round
            text = exclusions.first.inner_text()
            attacker_address = result.payouts[attacker].address
            assert f"#{attacker}" in text and attacker_address in text
            assert reasons[0] in text
            contributions = page.locator("#contributions tbody tr")
            assert contributions.count() == config.trainers
            paid = contributions.nth(attacker).inner_text()
            assert "0 ETH" in paid and "withdrawn" in paid
            honest = next(p for p in result.payouts if not p.attacker)
            honest_row = contributions.nth(honest.index).inner_text()
            assert format_eth(honest.reward) in honest_row  # every wei, in ether

            page.screenshot(path=str(tmp_path / "project.png"), full_page=True)

            page.goto(base + "/sources")
            sources = page.locator("#sources tbody tr")
            assert sources.count() == 3
            views = {s.source_id: s for s in admin.all_scores()}
            for i, sid in enumerate(ids):
                shown_rel = sources.nth(i).locator("td").nth(4).inner_text()
                expected = beta_reliability(views[sid].alpha, views[sid].beta)
                assert float(shown_rel) == pytest.approx(expected, abs=1e-3)
            curve = page.locator("svg.chart circle.point[data-series='source 1']")
            # the prior, then one point per feedback transaction touching source 1
            assert [float(curve.nth(i).get_attribute("data-y") or "nan")
                    for i in range(curve.count())] == pytest.approx(
                [0.5, 2 / 3, 3 / 4, 4 / 5], abs=1e-5)  # fmt: skip
            assert page.locator("svg.chart circle.point[data-series='source 2']").count() == 3
            assert external == []  # everything came from the dashboard itself
            page.screenshot(path=str(DOCS / "dashboard-sources.png"), full_page=True)

            # the screenshot for docs/: the project page, the most telling one
            page.goto(f"{base}/projects/{result.project_id}")
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            browser.close()
        assert SCREENSHOT.stat().st_size > 10_000
    finally:
        stop_all(ui)
        stop(anvil)
        shutil.rmtree(tmp_path / "aggregator-store", ignore_errors=True)
