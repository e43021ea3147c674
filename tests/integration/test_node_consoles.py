"""Node consoles print one line per event: the aggregator what it waits for (counts,
awaited addresses, seconds to the deadline), the trainer its score or why it was left
out, and the global accuracy, for every round."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
from federation import open_federation

from marketplace.cli.status_cmds import RoundFeedback, WaitPrinter
from marketplace.learning import ModelSpec, load_dataset
from marketplace.nodes.aggregator import AggregatorNode
from marketplace.rounds import RoundConfig

pytestmark = pytest.mark.integration


def test_aggregator_says_what_it_waits_for_and_trainers_hear_their_result(
    world: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    train, validation = load_dataset("synthetic", 1, num_samples=600)
    spec = ModelSpec.for_data("logreg", train.input_shape, train.num_classes, seed=0)
    fed = open_federation(world, train, validation, spec, trainers=4, rounds=2, flippers=(3,))
    pid = fed.project_id
    node = AggregatorNode(
        world.as_(world.aggregator), pid, fed.store, validation, RoundConfig(),
        resolver=fed.stores.get,
    )  # fmt: skip
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
