"""``ledgerlearn project create|show|finalize|reclaim``: the owner's side."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from marketplace.chain.constants import ZERO32, ZERO_ADDRESS
from marketplace.cli.common import (
    DEFAULT_URL,
    AccountIndex,
    JsonOut,
    Key,
    ProjectId,
    RpcUrl,
    console,
    emit_json,
    err_console,
    format_eth,
    open_session,
    parse_amount,
)
from marketplace.errors import ConfigError

if TYPE_CHECKING:
    from marketplace.chain.market import MarketClient

app = typer.Typer(help="Create and manage marketplace projects.", no_args_is_help=True)


def parse_digest(text: str | None, what: str) -> bytes:
    """A 32-byte value given as 0x-hex, or a CIDv1 (sha2-256) whose digest is stored."""
    if not text:
        return ZERO32
    if text.startswith("0x"):
        try:
            raw = bytes.fromhex(text[2:])
        except ValueError as exc:
            raise ConfigError(f"malformed {what} {text!r}: expected 0x + 64 hex chars") from exc
        if len(raw) != 32:
            raise ConfigError(f"malformed {what} {text!r}: expected 32 bytes, got {len(raw)}")
        return raw
    from marketplace.storage.cid import digest_of

    return digest_of(text)


def _model_spec(spec_file: Path | None, spec_cid_text: str | None) -> tuple[bytes, Any]:
    """The spec digest to commit and the spec itself (None when only a CID is given)."""
    if spec_file is None:
        return parse_digest(spec_cid_text, "model-spec CID"), None
    from marketplace.learning import ModelSpec
    from marketplace.rounds.codec import spec_cid
    from marketplace.storage.cid import digest_of

    if not spec_file.is_file():
        raise ConfigError(
            f"{spec_file}: no such model spec file; write one with `ledgerlearn aggregator "
            "spec --data VALIDATION_FILE --out spec.json --account AGGREGATOR`"
        )
    spec = ModelSpec.from_json(spec_file.read_bytes())
    digest = digest_of(spec_cid(spec))
    if spec_cid_text and parse_digest(spec_cid_text, "model-spec CID") != digest:
        raise ConfigError(
            f"--model-spec-cid {spec_cid_text} is not the CID of {spec_file} "
            f"({spec_cid(spec)}): pass one of them"
        )
    from marketplace.rounds.pinning import spec_rule, too_few_trainers

    problem = too_few_trainers(*spec_rule(spec), None)  # the rule's minimum, told now
    if problem is not None:
        err_console.print(f"note: {problem}", highlight=False, soft_wrap=True)
    return digest, spec


def _validation_digest(commitment: str | None, data: Path | None, spec: Any) -> bytes:
    """The validation commitment: given, or computed over ``data`` as the aggregator and
    auditors will load it (fitted to the project's spec when there is one)."""
    if commitment and data:
        raise ConfigError("pass --validation-commitment or --validation-data, not both")
    if data is None:
        return parse_digest(commitment, "validation commitment")
    from marketplace.learning import load_local
    from marketplace.learning.datafiles import load_for_spec
    from marketplace.rounds.codec import validation_commitment

    return validation_commitment(load_local(data) if spec is None else load_for_spec(data, spec))


@app.command()
def create(
    reward: Annotated[str, typer.Option(help="Reward to escrow, e.g. 1.5 (ETH) or 10gwei.")],
    aggregator: Annotated[str, typer.Option(help="Address of the aggregator.")],
    rounds: Annotated[int, typer.Option(help="Number of training rounds.", min=1)] = 3,
    round_duration: Annotated[
        int, typer.Option(help="Seconds trainers have to commit each round.", min=1)
    ] = 3600,
    min_stake: Annotated[str, typer.Option(help="Minimum trainer stake.")] = "0.01",
    verifier: Annotated[
        str | None, typer.Option(help="Round-verifier contract (zk proofs); none by default.")
    ] = None,
    model_spec: Annotated[
        Path | None,
        typer.Option(
            help="The model spec JSON (`ledgerlearn aggregator spec` writes it): its CID is "
            "committed, its pinned rule's minimum of trainers told, and --validation-data "
            "checked against it."
        ),
    ] = None,
    model_spec_cid: Annotated[
        str | None,
        typer.Option(help="CID (or 0x digest) of the model spec, instead of --model-spec."),
    ] = None,
    validation_commitment: Annotated[
        str | None, typer.Option(help="0x commitment (or CID) of the validation set.")
    ] = None,
    validation_data: Annotated[
        Path | None,
        typer.Option(
            help="Local validation set (CSV/NPZ): commit to it (instead of "
            "--validation-commitment); the same file is given to the aggregator and to audits."
        ),
    ] = None,
    attested: Annotated[
        bool,
        typer.Option(
            "--attested/--unattested",
            help="Attested (the default): a round pays only the scores a stake-majority of its "
            "trainers attest after replaying it (trainers run with --validation). "
            "Unattested: the aggregator's scores pay as committed.",
        ),
    ] = True,
    rpc_url: RpcUrl = DEFAULT_URL,
    key: Key = None,
    account: AccountIndex = None,
    json_out: JsonOut = False,
) -> None:
    """Create a project and escrow its reward.

    A project trains the model its spec describes: pass --model-spec spec.json and
    --validation-data (your validation file, fitted to that spec and committed on-chain)."""
    from marketplace.chain.accounts import parse_address

    spec_digest, spec = _model_spec(model_spec, model_spec_cid)
    validation_digest = _validation_digest(validation_commitment, validation_data, spec)
    session = open_session(rpc_url, key, account)
    project_id, receipt = session.market.create_project(
        reward=parse_amount(reward, "reward"),
        aggregator=parse_address(aggregator, "aggregator address"),
        rounds=rounds,
        round_duration=round_duration,
        min_stake=parse_amount(min_stake, "minimum stake"),
        verifier=parse_address(verifier, "verifier address") if verifier else ZERO_ADDRESS,
        model_spec_cid=spec_digest,
        validation_commitment=validation_digest,
        attested=attested,
    )
    if json_out:
        emit_json(
            {"project_id": project_id, "tx": receipt["transactionHash"], "gas": receipt["gasUsed"]}
        )
        return
    console.print(f"project [bold]{project_id}[/] created (gas {receipt['gasUsed']})")
    if spec_digest == ZERO32:
        err_console.print(
            f"[yellow]note:[/] project {project_id} has no model spec, so nobody can train it; "
            "a trainable project needs --model-spec spec.json (`ledgerlearn aggregator spec`)",
            soft_wrap=True,
        )


def round_scores(market: MarketClient, project_id: int, rounds: int, n: int) -> list[list[int]]:
    """``[round][trainer]`` fixed-point scores from the ``RoundCommitted`` events
    (0 for trainers outside the round's inlier mask)."""
    from marketplace.rounds.chainview import round_commit

    out = []
    for r in range(1, rounds + 1):
        commit = round_commit(market, project_id, r, n)
        row = [0] * n
        if commit is not None:
            inliers = [i for i, keep in enumerate(commit.inlier_mask) if keep]
            for i, score in zip(inliers, commit.scores, strict=False):
                row[i] = score
        out.append(row)
    return out


def void_rounds(market: MarketClient, project_id: int) -> list[int]:
    """Rounds whose aggregator scores a trainers' majority replaced (attested projects):
    those scores pay nothing, and the replacing ones are known only to the trainers."""
    from marketplace.rounds.chainview import chain_time, round_commits
    from marketplace.views.settlement import round_settlements

    p = market.project(project_id)
    if not p.attested:
        return []
    commits = round_commits(market, project_id, p.trainer_count)
    settled = round_settlements(market, p, commits, chain_time(market))
    return [r for r, s in settled.items() if s.scores_void]


def project_view(market: MarketClient, project_id: int) -> dict[str, Any]:
    """Everything `show` prints, as plain data. A replaced round's aggregator scores are
    void: they count 0 here (``rounds_void`` names those rounds)."""
    p = market.project(project_id)
    void = void_rounds(market, project_id)
    history = [
        [0] * p.trainer_count if r in void else row
        for r, row in enumerate(
            round_scores(market, project_id, p.rounds_committed, p.trainer_count), 1
        )
    ]
    trainers = []
    for t in market.trainers(project_id):
        stake, share = market.expected_payout(project_id, t.address)
        bond_share = p.bond_share if stake else 0  # counted in the share, shown apart
        # scores live in the rounds' Merkle roots until claimed: count them from the events
        score = t.score if t.withdrawn else sum(row[t.index] for row in history)
        trainers.append(
            {
                "index": t.index,
                "address": t.address,
                "stake": t.stake,
                "score": score,
                "share_of_score": (score / p.total_score) if p.total_score else 0.0,
                "expected_reward": share - bond_share,
                "expected_bond": bond_share,
                "round_scores": [row[t.index] for row in history],
                "withdrawn": t.withdrawn,
            }
        )
    return {
        "project_id": project_id,
        "owner": p.owner,
        "aggregator": p.aggregator,
        "verifier": p.verifier,
        "status": p.status.name.lower(),
        "rounds": p.rounds,
        "rounds_committed": p.rounds_committed,
        "round_duration": p.round_duration,
        "reward": p.reward,
        "reward_paid": p.reward_paid,
        "min_stake": p.min_stake,
        "total_score": p.total_score,
        "global_model_cid": p.global_model_cid,
        "trainers": trainers,
        "rounds_void": void,
    }


def print_trainers(view: dict[str, Any], highlight: str | None = None) -> None:
    table = Table(title=f"project {view['project_id']} trainers")
    columns = ("#", "address", "stake", "score", "share", "scored rounds", "last round")
    for col in (*columns, "expected reward", "bond share", "withdrawn"):
        table.add_column(col)
    for t in view["trainers"]:
        mark = " (you)" if highlight and t["address"].lower() == highlight.lower() else ""
        table.add_row(
            str(t["index"]),
            t["address"] + mark,
            format_eth(t["stake"]),
            str(t["score"]),
            f"{100 * t['share_of_score']:.1f}%",
            f"{sum(1 for s in t['round_scores'] if s > 0)}/{len(t['round_scores'])}",
            str(t["round_scores"][-1]) if t["round_scores"] else "-",
            format_eth(t["expected_reward"]),
            format_eth(t["expected_bond"]),
            "yes" if t["withdrawn"] else "no",
        )
    console.print(table)


@app.command()
def show(
    project_id: ProjectId,
    rpc_url: RpcUrl = DEFAULT_URL,
    key: Key = None,
    account: AccountIndex = None,
    json_out: JsonOut = False,
) -> None:
    """Show a project, its trainers, their contribution (cumulative and per round) and
    expected payout."""
    view = project_view(open_session(rpc_url, key, account).market, project_id)
    if json_out:
        emit_json(view)
        return
    console.print(
        f"project [bold]{project_id}[/]: {view['status']}, round "
        f"{view['rounds_committed']}/{view['rounds']} committed, reward "
        f"{format_eth(view['reward'])}, owner {view['owner']}, aggregator {view['aggregator']}"
    )
    print_trainers(view)
    if view["rounds_void"]:
        console.print(
            f"rounds {', '.join(map(str, view['rounds_void']))}: the aggregator's scores were "
            "replaced by the trainers' majority and count 0 here; the replacing scores are "
            "known only to the trainers (see `ledgerlearn project history`)",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def finalize(
    project_id: ProjectId,
    rpc_url: RpcUrl = DEFAULT_URL,
    key: Key = None,
    account: AccountIndex = None,
) -> None:
    """Close a project after its last round (or after the aggregator missed a deadline)."""
    receipt = open_session(rpc_url, key, account).market.finalize(project_id)
    console.print(
        f"project {project_id} finalized (gas {receipt['gasUsed']}); trainers can withdraw"
    )


@app.command()
def reclaim(
    project_id: ProjectId,
    rpc_url: RpcUrl = DEFAULT_URL,
    key: Key = None,
    account: AccountIndex = None,
) -> None:
    """Owner: take back the unearned reward (cancelled or unscored project) or rounding dust."""
    receipt = open_session(rpc_url, key, account).market.reclaim(project_id)
    console.print(f"reclaimed (gas {receipt['gasUsed']})")
