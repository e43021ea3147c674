"""Entry point of the ``ledgerlearn`` command.

User errors (:class:`LedgerLearnError`) become one red line on stderr and exit code 1;
``--debug`` (anywhere on the command line) shows the traceback instead.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from marketplace.cli import (
    audit_cmds,
    chain_cmds,
    data_cmds,
    drag_cmds,
    project_cmds,
    round_cmds,
    status_cmds,
    trainer_cmds,
    ui_cmds,
    zk_cmds,
)
from marketplace.cli.common import err_console
from marketplace.errors import LedgerLearnError


def first_sentence(text: str) -> str:
    """The first sentence of a command's help: its whole summary in a command listing."""
    words = text.partition("\n\n")[0].split()
    for i, word in enumerate(words):
        if word.endswith(".") and (i == len(words) - 1 or not words[i + 1][0].islower()):
            return " ".join(words[: i + 1])
    return " ".join(words)


def _full_short_help(group: Any) -> None:
    """Give every command under ``group`` (typer's vendored click) its first sentence."""
    for command in group.commands.values():
        if command.short_help is None and command.help:
            command.short_help = first_sentence(command.help)
        if hasattr(command, "commands"):
            _full_short_help(command)


class LedgerLearnGroup(TyperGroup):
    """The root command group. Click cuts each command's summary in a listing to what
    fits beside its name and ends it with '...'; an explicit ``short_help`` is wrapped
    instead, so every command of the tree gets its first sentence as one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _full_short_help(self)


app = typer.Typer(
    name="ledgerlearn",
    cls=LedgerLearnGroup,
    help="Collaborative machine learning that nobody has to trust.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # click's plain help wraps every line at the terminal's width; typer's rich panels
    # cut long option names and defaults with "…" at 80 columns
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    """``--version``: the installed distribution's version (no chain, no torch)."""
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version("ledgerlearn")
    except PackageNotFoundError:  # a source checkout on PYTHONPATH, never installed
        from marketplace import __version__ as number
    typer.echo(f"ledgerlearn {number}")
    raise typer.Exit()


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


chain_cmds.register(app)
app.add_typer(project_cmds.app, name="project")
status_cmds.register(app, project_cmds.app)
app.add_typer(trainer_cmds.app, name="trainer")
app.add_typer(data_cmds.app, name="data")
round_cmds.register(app)
drag_cmds.register(app)
zk_cmds.register(app)
audit_cmds.register(app)
ui_cmds.register(app)


#: Libraries whose exceptions are a node's answer, not a bug of ours: the chain layer
#: turns the ones it expects into LedgerLearnError; any other still prints one line.
CHAIN_LIBRARIES = ("web3", "eth_tester", "eth_utils", "eth_abi", "eth")


def _from_chain_library(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in CHAIN_LIBRARIES


def _invalid_setting(exc: BaseException) -> str | None:
    """One line for a pydantic validation error of our settings models (an option the
    command line allowed but the setting refuses, e.g. ``--lr 0``), else None."""
    if type(exc).__name__ != "ValidationError" or not type(exc).__module__.startswith("pydantic"):
        return None
    first = exc.errors()[0]  # type: ignore[attr-defined]
    where = ".".join(str(part) for part in first.get("loc", ())) or "a setting"
    return f"invalid {where}: {first.get('msg', 'refused')}; change that option's value"


def run() -> None:
    debug = "--debug" in sys.argv
    try:
        app()
    except LedgerLearnError as exc:
        if debug:
            raise
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except Exception as exc:
        invalid = None if debug else _invalid_setting(exc)
        if invalid is not None:
            err_console.print(f"[bold red]error:[/] {invalid}", highlight=False, soft_wrap=True)
            sys.exit(1)
        if debug or not _from_chain_library(exc):
            raise
        from marketplace.chain.tx import rpc_message

        err_console.print(
            f"[bold red]error:[/] the chain node refused: {rpc_message(exc)} (--debug shows where)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    run()
