"""``ledgerlearn trainer register|status|withdraw``: the trainer's side."""

from __future__ import annotations

from typing import Annotated

import typer

from marketplace.chain.constants import ZERO_ADDRESS
from marketplace.cli.common import (
    DEFAULT_URL,
    AccountIndex,
    JsonOut,
    Key,
    ProjectId,
    RpcUrl,
    console,
    emit_json,
    format_eth,
    open_session,
    parse_amount,
)
from marketplace.cli.project_cmds import print_trainers, project_view
from marketplace.errors import ConfigError

app = typer.Typer(help="Join projects as a trainer and collect payouts.", no_args_is_help=True)


@app.command()
def register(
    project: ProjectId,
    stake: Annotated[
        str | None, typer.Option(help="Stake to lock (default: the project's minimum).")
    ] = None,
    dev_unsafe_setup: Annotated[
        bool,
        typer.Option(
            "--dev-unsafe-setup",
            help="Development only: accept a verifier whose key is from no ceremony verified "
            "here (its maker can forge rounds).",
        ),
    ] = False,
    rpc_url: RpcUrl = DEFAULT_URL,
    key: Key = None,
    account: AccountIndex = None,
    json_out: JsonOut = False,
) -> None:
    """Register as a trainer of a project, locking a stake.

    A project with a round verifier is joined only when its code is LedgerLearn's and its
    key is from a ceremony this machine verified (`zk ceremony verify`)."""
    session = open_session(rpc_url, key, account)
    info = session.market.project(project)
    if info.verifier != ZERO_ADDRESS:
        from marketplace.chain.verifier import check_verifier_setup

        # before any stake moves
        check_verifier_setup(session.market, info.verifier, allow_dev_unsafe=dev_unsafe_setup)
    amount = parse_amount(stake, "stake") if stake is not None else info.min_stake
    if amount < info.min_stake:
        raise ConfigError(
            f"stake {format_eth(amount)} is below project {project}'s minimum "
            f"{format_eth(info.min_stake)}: pass a --stake of {format_eth(info.min_stake)} or more"
        )
    receipt = session.market.register(project, amount)
    index = session.market.trainer_index(project, session.account.address)
    if json_out:
        emit_json(
            {
                "project_id": project,
                "trainer": session.account.address,
                "index": index,
                "stake": amount,
                "gas": receipt["gasUsed"],
            }
        )
        return
    console.print(
        f"{session.account.address} registered in project {project} as trainer #{index} "
        f"with stake {format_eth(amount)} (gas {receipt['gasUsed']})"
    )


@app.command()
def status(
    project: ProjectId,
    rpc_url: RpcUrl = DEFAULT_URL,
    key: Key = None,
    account: AccountIndex = None,
    json_out: JsonOut = False,
) -> None:
    """List the project's trainers with stake, score and expected reward."""
    session = open_session(rpc_url, key, account)
    view = project_view(session.market, project)
    if json_out:
        emit_json(view)
        return
    print_trainers(view, highlight=session.account.address)


@app.command()
def withdraw(
    project: ProjectId,
    rpc_url: RpcUrl = DEFAULT_URL,
    key: Key = None,
    account: AccountIndex = None,
    json_out: JsonOut = False,
) -> None:
    """Pull your stake and reward share from a finalized project."""
    from web3.logs import DISCARD

    session = open_session(rpc_url, key, account)
    receipt = session.market.withdraw(project)
    withdrawn = session.market.contract.events.Withdrawn()  # the receipt also logs claims
    event = withdrawn.process_receipt(receipt, errors=DISCARD)[0]["args"]
    if json_out:
        emit_json({"stake": event["stake"], "reward": event["reward"], "gas": receipt["gasUsed"]})
        return
    console.print(
        f"withdrew stake {format_eth(event['stake'])} and reward {format_eth(event['reward'])}"
    )
