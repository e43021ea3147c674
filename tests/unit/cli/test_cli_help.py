"""Every command's ``--help`` is readable in an 80-column terminal: nothing cut with an
ellipsis, no line wider than the terminal, and every option's help and every
subcommand's summary shown in full (whitespace aside: the formatter wraps them)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from marketplace.cli.main import app, first_sentence

WIDTH = 80


def _paths(command: Any, prefix: list[str]) -> Iterator[tuple[list[str], Any]]:
    yield prefix, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _paths(sub, [*prefix, name])


COMMANDS = list(_paths(typer.main.get_command(app), []))


def _squash(text: str) -> str:
    return "".join(text.split())


def test_the_walk_finds_every_command_group_and_leaf() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"", "trainer register", "zk ceremony verify", "drag query", "audit"} <= names


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=[" ".join(p) or "ledgerlearn" for p, _ in COMMANDS]
)
def test_help_fits_80_columns_and_is_whole(path: list[str], command: Any) -> None:
    done = CliRunner().invoke(app, [*path, "--help"], terminal_width=WIDTH)
    assert done.exit_code == 0, done.output
    out = done.output
    wide = [line for line in out.splitlines() if len(line) > WIDTH]
    assert wide == [], f"lines wider than {WIDTH} columns: {wide}"
    assert "…" not in out and "..." not in out.replace("[ARGS]...", ""), out
    for param in command.params:
        help_text = getattr(param, "help", None)
        if help_text:
            assert _squash(help_text) in _squash(out), f"{param.name}: help cut in\n{out}"
    for sub in getattr(command, "commands", {}).values():
        if sub.help:
            assert _squash(first_sentence(sub.help)) in _squash(out), f"{sub.name}: cut\n{out}"


def test_project_ids_are_one_positional_argument_everywhere() -> None:
    """One style of ids (issue 15): ``trainer register 1``, never ``-p 1`` or ``--project 1``."""
    options = {
        " ".join(path): opt
        for path, command in COMMANDS
        for param in command.params
        for opt in getattr(param, "opts", [])
        if opt in ("-p", "--project", "--project-id")
    }
    assert options == {}
    takes_id = {
        " ".join(path)
        for path, command in COMMANDS
        for param in command.params
        if param.param_type_name == "argument" and param.metavar == "PROJECT_ID"
    }
    assert {
        "audit",
        "aggregator run",
        "trainer register",
        "trainer run",
        "trainer status",
        "trainer withdraw",
        "project show",
        "project finalize",
        "zk verify",
    } <= takes_id


def test_a_project_id_is_given_positionally() -> None:
    done = CliRunner().invoke(app, ["trainer", "status", "--rpc-url", "embedded", "7"])
    # parsed: the embedded chain has no deployment, so the command fails past the parser
    assert done.exit_code != 2, done.output
    refused = CliRunner().invoke(app, ["trainer", "status", "-p", "7"])
    assert refused.exit_code == 2 and "No such option" in refused.output
