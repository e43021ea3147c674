"""dRAG end to end through the real CLI: anvil, three `ledgerlearn source serve` processes
(one of them polluted), registration, an evaluator, queries with ground truth, feedback
flushed on-chain, and a query that still gets an answer after a source process dies."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
from cli_process import (
    anvil_fixture,  # noqa: F401  (the `anvil_url` fixture)
    cli_env,
    complete_cli,
    run_cli,
    spawn_cli,
    stop_all,
    wait_all,
    wait_http,
)

from drag.corpus import generate_facts, split_over_sources
from marketplace.chain.node import free_port
from marketplace.chain.registry import STAKE_LOCK

pytestmark = pytest.mark.e2e

EVALUATOR = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"  # anvil dev account 4
POLLUTION = [0.0, 0.0, 1.0]  # sources on dev accounts 1, 2, 3; the third lies


def test_sources_feedback_and_failover(anvil_url: str, tmp_path: Path) -> None:
    env = cli_env(tmp_path / "home")
    rpc = f"--rpc-url={anvil_url}"
    run_cli(["deploy", rpc], env, 120)

    facts = generate_facts(8, seed=5)
    corpora = split_over_sources(facts, POLLUTION, seed=5)
    ports = [free_port() for _ in POLLUTION]
    registering = [
        spawn_cli(["source", "register", f"--endpoint=http://127.0.0.1:{port}",
                   f"--account={i + 1}", rpc, "--json"], env, tmp_path / f"register{i}.log")
        for i, port in enumerate(ports)
    ]  # fmt: skip
    registered = wait_all(registering, sorted(tmp_path.glob("register*.log")), timeout=120)
    ids = [json.loads(registered[f"register{i}.log"])["source_id"] for i in range(len(ports))]
    assert sorted(ids) == [1, 2, 3]

    servers: list[subprocess.Popen] = []
    try:
        for i, (corpus, port) in enumerate(zip(corpora, ports, strict=True)):
            corpus.write(tmp_path / f"docs{i}")
            log = tmp_path / f"source{i}.log"
            servers.append(
                spawn_cli(["source", "serve", f"--docs={tmp_path / f'docs{i}'}",
                           f"--port={port}", f"--index-dir={tmp_path / f'idx{i}'}",
                           f"--account={i + 1}", rpc], env, log)
            )  # fmt: skip
        run_cli(["registry", "grant-evaluator", EVALUATOR, "--account=0", rpc], env, 120)
        for i, (server, port) in enumerate(zip(servers, ports, strict=True)):
            url = f"http://127.0.0.1:{port}/health"
            wait_http(url, server, tmp_path / f"source{i}.log", timeout=90)

        # a second server of source 1, from another index folder (its own nonce ledger),
        # would sign a second receipt for some nonce: refused in one line, before indexing
        second = complete_cli(
            ["source", "serve", f"--docs={tmp_path / 'docs0'}", f"--port={free_port()}",
             f"--index-dir={tmp_path / 'idx-second'}", "--account=1", rpc],
            env, 120,
        )  # fmt: skip
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert second.returncode == 1 and "Traceback" not in second.stderr, second.stderr
        assert len(lines) == 1 and "already served by another process" in lines[0], lines
        assert not (tmp_path / "idx-second").exists()

        fact = facts[0]
        asked = json.loads(
            run_cli(
                ["drag", "query", fact.question, "--sources=3", "--k=2"]
                + ["--top-n=6", f"--truth={fact.answer}", "--seed=1"]
                + ["--account=4", rpc, "--json"],
                env,
                120,
            )  # fmt: skip
        )
        assert len({p["source_id"] for p in asked["passages"]}) == 3
        assert asked["feedback"]["queued"] == 3 and asked["feedback"]["flushed"] == 0
        flushed = json.loads(run_cli(["drag", "flush", "--account=4", rpc, "--json"], env, 120))
        assert flushed["sent"] == 3 and flushed["dropped"] == 0 and flushed["tx"]

        scores = {
            s["source_id"]: s
            for s in json.loads(run_cli(["source", "list", rpc, "--json"], env, 120))["sources"]
        }
        polluted = ids[2]
        clean = [ids[0], ids[1]]
        assert all(scores[c]["alpha"] > 0 and scores[c]["reliability"] > 0.5 for c in clean)
        assert scores[polluted]["beta"] > 0 and scores[polluted]["reliability"] < 0.5
        assert all(s["last_nonce"] == 1 for s in scores.values())

        again = json.loads(run_cli(["drag", "flush", "--account=4", rpc, "--json"], env, 120))
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
        lines = run_cli(
            ["drag", "query", f"--batch={batch}", "--k=2", "--account=4", rpc], env, 120
        )
        answered = [json.loads(line) for line in lines.splitlines() if line.startswith("{")]
        assert [a["id"] for a in answered] == [facts[1].fact_id, facts[2].fact_id]
        assert all(a["feedback"]["queued"] > 0 and "correct" in a for a in answered)

        # the long-running client: models loaded once, answers over local HTTP
        port = free_port()
        log = tmp_path / "client.log"
        client = spawn_cli(
            ["drag", "serve-client", f"--port={port}", "--k=2", "--account=4", rpc], env, log
        )
        servers.append(client)
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health", client, log, timeout=90)
        fact = facts[4]
        got = httpx.post(
            url + "/query", json={"question": fact.question, "truth": [fact.answer]}, timeout=60
        ).json()
        assert got["answer"] and got["feedback"]["queued"] > 0 and "correct" in got
        status = httpx.get(url + "/feedback", timeout=10).json()
        assert status["pending"] >= got["feedback"]["queued"] and status["may_flush"] is True
        client.terminate()
        client.wait(timeout=10)
        run_cli(["drag", "flush", "--account=4", rpc], env, 120)

        servers[0].kill()
        servers[0].wait()
        fact = facts[3]
        after = json.loads(
            run_cli(
                ["drag", "query", fact.question, "--sources=3", "--k=2", "--seed=9", rpc, "--json"],
                env,
                120,
            )  # fmt: skip
        )
        assert [f["source_id"] for f in after["failures"]] == [ids[0]]
        assert after["answer"]  # the two live sources still answer

        # the dead source's owner leaves: deactivate, wait out the lock, pull the stake
        owner = "--account=1"
        run_cli(["source", "deactivate", str(ids[0]), owner, rpc], env, 120)
        early = complete_cli(["source", "withdraw-stake", str(ids[0]), owner, rpc], env, 120)
        assert early.returncode != 0 and "StakeLocked" in early.stderr
        for method, params in (("evm_increaseTime", [STAKE_LOCK + 1]), ("evm_mine", [])):
            rpc_call = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
            httpx.post(anvil_url, json=rpc_call, timeout=10).raise_for_status()
        assert "withdrew 0.01 ETH" in run_cli(
            ["source", "withdraw-stake", str(ids[0]), owner, rpc], env, 120
        )
    finally:
        stop_all(servers)
