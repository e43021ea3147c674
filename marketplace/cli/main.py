"""Entry point of the ``ledgerlearn`` command.

User errors (:class:`LedgerLearnError`) become one red line on stderr and exit code 1;
``--debug`` (anywhere on the command line) shows the traceback instead.
"""

from __future__ import annotations

import logging
import sys

import typer

from marketplace.cli import (
    audit_cmds,
    chain_cmds,
    data_cmds,
    drag_cmds,
    project_cmds,
    round_cmds,
    status_cmds,
    trainer_cmds,
    zk_cmds,
)
from marketplace.cli.common import err_console
from marketplace.errors import LedgerLearnError

app = typer.Typer(
    name="ledgerlearn",
    help="Collaborative machine learning that nobody has to trust.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
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


def run() -> None:
    debug = "--debug" in sys.argv
    try:
        app()
    except LedgerLearnError as exc:
        if debug:
            raise
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    run()
