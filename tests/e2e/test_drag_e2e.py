"""dRAG end to end through the real CLI: anvil, three `ledgerlearn source serve` processes
(one of them polluted), registration, an evaluator, queries with ground truth, feedback
flushed on-chain, and a query that still gets an answer after a source process dies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from drag.corpus import generate_facts, split_over_sources
from marketplace.chain.node import free_port, start_anvil, stop
from marketplace.chain.registry import STAKE_LOCK

pytestmark = pytest.mark.e2e

CLI = [sys.executable, "-m", "marketplace.cli.main"]
EVALUATOR = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"  # anvil dev account 4
POLLUTION = [0.0, 0.0, 1.0]  # sources on dev accounts 1, 2, 3; the third lies


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "LEDGERLEARN_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env.pop("LEDGERLEARN_KEY", None)
    return env


def ll(home: Path, *args: str) -> str:
    result = subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=_env(home), timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"source exited early:\n{log.read_text()}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"source at {url} never became healthy:\n{log.read_text()}")


@pytest.fixture(scope="module")
def anvil_url() -> Iterator[str]:
    process, url = start_anvil()
    yield url
    stop(process)


def test_sources_feedback_and_failover(anvil_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    rpc = f"--rpc-url={anvil_url}"
    ll(home, "deploy", rpc)

    facts = generate_facts(8, seed=5)
    corpora = split_over_sources(facts, POLLUTION, seed=5)
    ports = [free_port() for _ in POLLUTION]
    registering = [
        subprocess.Popen(
            [
                *CLI,
                "source",
                "register",
                f"--endpoint=http://127.0.0.1:{port}",
                f"--account={i + 1}",
                rpc,
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(home),
        )  # fmt: skip
        for i, port in enumerate(ports)
    ]
    ids = []
    for p in registering:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        ids.append(json.loads(out)["source_id"])
    assert sorted(ids) == [1, 2, 3]

    servers: list[subprocess.Popen] = []
    try:
        for i, (corpus, port) in enumerate(zip(corpora, ports, strict=True)):
            corpus.write(tmp_path / f"docs{i}")
            log = tmp_path / f"source{i}.log"
            servers.append(
                subprocess.Popen(
                    [
                        *CLI,
                        "source",
                        "serve",
                        f"--docs={tmp_path / f'docs{i}'}",
                        f"--port={port}",
                        f"--index-dir={tmp_path / f'idx{i}'}",
                        f"--account={i + 1}",
                        rpc,
                    ],
                    stdout=log.open("w"),
                    stderr=subprocess.STDOUT,
                    env=_env(home),
                )  # fmt: skip
            )
        ll(home, "registry", "grant-evaluator", EVALUATOR, "--account=0", rpc)
        for i, (server, port) in enumerate(zip(servers, ports, strict=True)):
            _wait_healthy(f"http://127.0.0.1:{port}", server, tmp_path / f"source{i}.log")

        # a second server of source 1, from another index folder (its own nonce ledger),
        # would sign a second receipt for some nonce: refused in one line, before indexing
        second = subprocess.run(
            [*CLI, "source", "serve", f"--docs={tmp_path / 'docs0'}", f"--port={free_port()}",
             f"--index-dir={tmp_path / 'idx-second'}", "--account=1", rpc],
            capture_output=True, text=True, env=_env(home), timeout=120,
        )  # fmt: skip
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert second.returncode == 1 and "Traceback" not in second.stderr, second.stderr
        assert len(lines) == 1 and "already served by another process" in lines[0], lines
        assert not (tmp_path / "idx-second").exists()

        fact = facts[0]
        asked = json.loads(
            ll(
                home,
                "drag",
                "query",
                fact.question,
                "--sources=3",
                "--k=2",
                "--top-n=6",
                f"--truth={fact.answer}",
                "--seed=1",
                "--account=4",
                rpc,
                "--json",
            )  # fmt: skip
        )
        assert len({p["source_id"] for p in asked["passages"]}) == 3
        assert asked["feedback"]["queued"] == 3 and asked["feedback"]["flushed"] == 0
        flushed = json.loads(ll(home, "drag", "flush", "--account=4", rpc, "--json"))
        assert flushed["sent"] == 3 and flushed["dropped"] == 0 and flushed["tx"]

        scores = {
            s["source_id"]: s
            for s in json.loads(ll(home, "source", "list", rpc, "--json"))["sources"]
        }
        polluted = ids[2]
        clean = [ids[0], ids[1]]
        assert all(scores[c]["alpha"] > 0 and scores[c]["reliability"] > 0.5 for c in clean)
        assert scores[polluted]["beta"] > 0 and scores[polluted]["reliability"] < 0.5
        assert all(s["last_nonce"] == 1 for s in scores.values())

        again = json.loads(ll(home, "drag", "flush", "--account=4", rpc, "--json"))
        assert again["pending"] == 0 and again["sent"] == 0  # nothing left, nothing resent

        # many questions in one process: one model load, one JSON line per question
        batch = tmp_path / "batch.jsonl"
        batch.write_text(
            "".join(
                json.dumps({"id": f.fact_id, "question": f.question, "answer": f.answer.upper()})
                + "\n"
                for f in facts[1:3]
            ),
            encoding="utf-8",
        )
        lines = ll(home, "drag", "query", f"--batch={batch}", "--k=2", "--account=4", rpc)
        answered = [json.loads(line) for line in lines.splitlines() if line.startswith("{")]
        assert [a["id"] for a in answered] == [facts[1].fact_id, facts[2].fact_id]
        assert all(a["feedback"]["queued"] > 0 and "correct" in a for a in answered)

        # the long-running client: models loaded once, answers over local HTTP
        port = free_port()
        log = tmp_path / "client.log"
        client = subprocess.Popen(
            [*CLI, "drag", "serve-client", f"--port={port}", "--k=2", "--account=4", rpc],
            stdout=log.open("w"), stderr=subprocess.STDOUT, env=_env(home),
        )  # fmt: skip
        servers.append(client)
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, client, log)
        fact = facts[4]
        got = httpx.post(
            url + "/query", json={"question": fact.question, "truth": [fact.answer]}, timeout=60
        ).json()
        assert got["answer"] and got["feedback"]["queued"] > 0 and "correct" in got
        status = httpx.get(url + "/feedback", timeout=10).json()
        assert status["pending"] >= got["feedback"]["queued"] and status["may_flush"] is True
        client.terminate()
        client.wait(timeout=10)
        ll(home, "drag", "flush", "--account=4", rpc)

        servers[0].kill()
        servers[0].wait()
        fact = facts[3]
        after = json.loads(
            ll(
                home,
                "drag",
                "query",
                fact.question,
                "--sources=3",
                "--k=2",
                "--seed=9",
                rpc,
                "--json",
            )  # fmt: skip
        )
        assert [f["source_id"] for f in after["failures"]] == [ids[0]]
        assert after["answer"]  # the two live sources still answer

        # the dead source's owner leaves: deactivate, wait out the lock, pull the stake
        owner = "--account=1"
        ll(home, "source", "deactivate", str(ids[0]), owner, rpc)
        early = subprocess.run(
            [*CLI, "source", "withdraw-stake", str(ids[0]), owner, rpc],
            capture_output=True, text=True, env=_env(home), timeout=120,
        )  # fmt: skip
        assert early.returncode != 0 and "StakeLocked" in early.stderr
        for method, params in (("evm_increaseTime", [STAKE_LOCK + 1]), ("evm_mine", [])):
            rpc_call = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
            httpx.post(anvil_url, json=rpc_call, timeout=10).raise_for_status()
        assert "withdrew 0.01 ETH" in ll(home, "source", "withdraw-stake", str(ids[0]), owner, rpc)
    finally:
        for server in servers:
            if server.poll() is None:
                server.terminate()
                server.wait(timeout=10)
