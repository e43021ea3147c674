"""Node consoles print one line per event: the aggregator what it waits for (counts,
awaited addresses, seconds to the deadline), the trainer its score or why it was left
out, and the global accuracy, for every round."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from cli_world import deployed_fixture  # noqa: F401  (the `deployed` fixture)
from federation import open_federation
from typer.testing import CliRunner

from marketplace.cli.main import app
from marketplace.cli.status_cmds import RoundFeedback, WaitPrinter
from marketplace.learning import ModelSpec, load_dataset
from marketplace.learning.rule_pin import PinnedRule
from marketplace.rounds.codec import spec_cid
from marketplace.storage import digest_of

pytestmark = pytest.mark.integration


def test_aggregator_says_what_it_waits_for_and_trainers_hear_their_result(
    world: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    train, validation = load_dataset("synthetic", 1, num_samples=600)
    spec = ModelSpec.for_data("logreg", train.input_shape, train.num_classes, seed=0)
    fed = open_federation(world, train, validation, spec, trainers=4, rounds=2, flippers=(3,))
    pid = fed.project_id
    node = fed.aggregator(world, validation)
    addresses = [t.address for t in world.trainers[:4]]
    for t in fed.trainers[:2]:
        t.step()

    stop = threading.Event()
    printer = WaitPrinter(world.market, pid)
    calls = 0

    def on_wait() -> None:
        nonlocal calls
        calls += 1
        printer()
        if calls == 3:
            stop.set()

    node.run(poll_s=0.01, stop=stop, on_wait=on_wait)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1  # one line per change, not one per poll
    assert lines[0].startswith("round 1: waiting for commitments: 2 of 4 committed, 2 awaited")
    assert ", ".join(addresses[2:]) in lines[0]
    assert re.search(r"commit window closes in \d+ s$", lines[0])

    for t in fed.trainers[2:]:
        t.step()
    fed.trainers[0].step()
    printer()
    line = capsys.readouterr().out.strip()
    assert line.startswith("round 1: waiting for reveals: 1 of 4 revealed, 3 awaited")
    assert addresses[0] not in line and addresses[3] in line
    printer()  # nothing changed: nothing printed
    assert capsys.readouterr().out == ""

    for t in fed.trainers[1:]:
        t.step()
    node.commit(node.prepare(1))
    for t in fed.trainers:
        t.step()
    for t in fed.trainers:
        t.step()
    node.commit(node.prepare(2))

    honest, flipper = (RoundFeedback(world.market, fed.store, pid, i) for i in (0, 3))
    honest(2)
    flipper(1)
    flipper(1)  # already told
    flipper(2)
    said = capsys.readouterr().out.splitlines()
    assert len(said) == 4
    assert re.fullmatch(
        r"round 1: kept, score \d+ \(\d+\.\d% of the round\); global accuracy \d+\.\d%", said[0]
    )
    # round 2 converged: an honest update may fall outside the rule's tight radius too
    assert re.fullmatch(r"round 2: (kept, score \d+ .*|excluded: .+); global accuracy .*", said[1])
    assert said[2].startswith("round 1: excluded: ") and "global accuracy" in said[2]
    assert said[3].startswith("round 2: excluded: ")


def test_too_few_trainers_for_the_rule_is_said_at_create_and_at_round_open(
    deployed: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default rule keeps nobody with fewer than 3 updates: ``project create`` with
    the spec that pins it says so, and so does the aggregator's console when a round's
    roster is fixed at 2 trainers (once per round)."""
    train, validation = load_dataset("synthetic", 1, num_samples=300)
    spec = ModelSpec.for_data("logreg", train.input_shape, train.num_classes, seed=0)
    pinned = spec.model_copy(update={"aggregation": PinnedRule(rule="default")})
    spec_file = tmp_path / "spec.json"
    spec_file.write_bytes(pinned.to_json_bytes())
    created = CliRunner().invoke(
        app,
        ["project", "create", "--reward", "1", "--aggregator", deployed.aggregator.address,
         "--model-spec", str(spec_file), "--account", "0", "--rpc-url", "embedded", "--json"],
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "note: rule default keeps nobody in a round with fewer than 3 trainers" in (
        created.stderr
    )
    pid = json.loads(created.stdout)["project_id"]
    info = deployed.market.project(pid)
    assert info.model_spec_cid == digest_of(spec_cid(pinned))

    fedavg = spec.model_copy(update={"aggregation": PinnedRule(rule="fedavg")})
    spec_file.write_bytes(fedavg.to_json_bytes())
    quiet = CliRunner().invoke(
        app,
        ["project", "create", "--reward", "1", "--aggregator", deployed.aggregator.address,
         "--model-spec", str(spec_file), "--account", "0", "--rpc-url", "embedded"],
    )  # fmt: skip
    assert quiet.exit_code == 0 and "note:" not in quiet.stderr

    fed = open_federation(deployed, train, validation, pinned, trainers=2, rounds=1)
    printer = WaitPrinter(deployed.market, fed.project_id, ("default", {}))
    printer()  # nobody committed: the roster can still grow, nothing to say yet
    assert "keeps nobody" not in capsys.readouterr().out
    fed.trainers[0].step()
    printer()
    fed.trainers[1].step()
    printer()
    said = capsys.readouterr().out
    assert said.count("keeps nobody") == 1
    assert (
        "round 1: rule default keeps nobody in a round with fewer than 3 trainers (2 here): "
        "register at least 3 trainers" in said
    )
