"""Round commands: ``trainer run``, ``aggregator run|spec``, ``simulate`` and ``demo``.

``trainer run`` and ``aggregator run`` are long-running nodes against a real chain
(``--rpc-url``); ``simulate`` and ``demo`` run a whole project in one process on the
embedded chain. A project created with a round verifier is proved automatically by
``aggregator run``; ``simulate --zk`` deploys one and proves every round.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from marketplace.cli import trainer_cmds
from marketplace.cli.common import (
    AGGREGATOR_GATEWAY_ENV,
    AGGREGATOR_PORT_ENV,
    DEFAULT_AGGREGATOR_GATEWAY,
    DEFAULT_AGGREGATOR_PORT,
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
)
from marketplace.errors import ConfigError, StorageError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from marketplace.rounds.scoring import ContributionConfig

aggregator_app = typer.Typer(
    help="Run a project's aggregator: filter, aggregate and commit rounds.", no_args_is_help=True
)

Host = Annotated[str, typer.Option(help="Interface the content gateway listens on.")]
Port = Annotated[int, typer.Option(help="Gateway port (0 picks a free one).", min=0)]
Poll = Annotated[float, typer.Option(help="Seconds between chain polls.", min=0.05)]
Contribution = Annotated[
    str,
    typer.Option(
        "--contribution",
        help="Contribution estimator: gtg (default: GTG-Shapley with a control variate), "
        "exact, tmc, loo or equal.",
    ),
]
AllowPrivate = Annotated[
    bool,
    typer.Option(
        "--allow-private-endpoints",
        help="Fetch gateways on loopback or private addresses even on a public chain "
        "(always allowed on a local development chain: embedded, 31337, 1337).",
    ),
]
DataDir = Annotated[
    Path | None,
    typer.Option(help="Directory of this node's content store (default under LEDGERLEARN_HOME)."),
]


def _node_dir(data_dir: Path | None, role: str, address: str, project: int) -> Path:
    from marketplace.paths import node_dir

    return node_dir(role, address, project, data_dir)


def _percent(value: object) -> str:
    return f"{100 * float(value):.1f}%" if isinstance(value, int | float) else "-"


def _round_line(summary: object, total: int, attackers: list[int] | None = None) -> str:
    from marketplace.nodes.aggregator import RoundSummary

    assert isinstance(summary, RoundSummary)
    m = summary.metrics
    trainers = int(m.get("trainers") or 0)
    dropped = sorted({*summary.excluded, *summary.rejected})
    marks = []
    for i in dropped:
        tag = "attacker " if attackers is not None and i in attackers else ""
        kind = "rejected" if i in summary.rejected else "excluded"
        marks.append(f"{kind} {tag}#{i}")
    for i in sorted(summary.score_notes):  # inliers the noise floor did not pay
        tag = "attacker " if attackers is not None and i in attackers else ""
        marks.append(f"unpaid {tag}#{i} (noise floor)")
    proof = "" if summary.prove_seconds is None else f"  proof {summary.prove_seconds:.2f} s"
    return (
        f"round {summary.round}/{total}  accuracy [bold]{_percent(m.get('accuracy'))}[/]  "
        f"inliers {len(summary.inliers)}/{trainers}  "
        + (", ".join(marks) if marks else "nobody excluded")
        + f"  gas {summary.gas_used:,}{proof}  {summary.seconds:.2f} s"
    )


def rule_params(rule: str, items: list[str] | None) -> dict[str, Any]:
    """``--rule-param KEY=VALUE`` options as the rule's parameters (numbers where they
    parse), checked against the rule: an unknown rule or parameter, or a missing required
    one (Krum's ``f``), is a one-line error before anything runs."""
    from marketplace.robust import AGGREGATORS
    from marketplace.robust.registry import check_params
    from marketplace.rounds.pipeline import rule_params_from

    if rule not in AGGREGATORS:
        raise ConfigError(f"--rule {rule!r}: unknown rule; choose one of {', '.join(AGGREGATORS)}")
    raw: dict[str, str] = {}
    for item in items or []:
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise ConfigError(f"--rule-param {item!r}: write KEY=VALUE, e.g. f=1")
        raw[name.strip()] = value.strip()
    params = rule_params_from(raw)
    check_params(rule, params)
    return params


def _contribution_config(method: str) -> ContributionConfig:
    from marketplace.rounds.scoring import METHODS, ContributionConfig

    if method not in METHODS:
        raise ConfigError(f"--contribution {method!r}: choose one of {', '.join(METHODS)}")
    return ContributionConfig(method=method)  # type: ignore[arg-type]  # checked above


# ------------------------------------------------------------------ trainer run

_DECLARE_HELP = "Declare this value of the project's local-training recipe in the spec."
_RECIPE_HELP = (
    "Local training; default: the recipe the project's model spec declares, else 1 epoch, "
    "lr 0.2, no momentum, batch 32. The aggregator's trust anchor trains with the declared "
    "recipe: deviate only knowingly."
)


def trainer_run(
    project: ProjectId,
    data: Annotated[
        Path,
        typer.Option(
            help="Your local data (.npz, .csv or an image folder; docs/data.md); it never "
            "leaves this machine. Read and checked first."
        ),
    ],
    aggregator_gateway: Annotated[
        str,
        typer.Option(
            envvar=AGGREGATOR_GATEWAY_ENV,
            help="URL of the aggregator's content gateway (model spec and models).",
        ),
    ] = DEFAULT_AGGREGATOR_GATEWAY,
    model_spec: Annotated[
        Path | None,
        typer.Option(
            help="The project's model spec file (checked against its on-chain CID): your data "
            "is checked against it at once, before the aggregator's gateway answers."
        ),
    ] = None,
    data_dir: DataDir = None,
    host: Host = "127.0.0.1",
    port: Port = 0,
    public_url: Annotated[
        str | None, typer.Option(help="URL to announce if the gateway is reached otherwise.")
    ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help=_RECIPE_HELP)] = None,
    lr: Annotated[float | None, typer.Option(min=0.0, help=_RECIPE_HELP)] = None,
    momentum: Annotated[float | None, typer.Option(min=0.0, max=0.999, help=_RECIPE_HELP)] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help=_RECIPE_HELP)] = None,
    seed: Annotated[int, typer.Option(min=0, help="Base seed of local batch order.")] = 0,
    poll: Poll = 0.5,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for the aggregator's gateway to answer.")
    ] = 120.0,
    allow_private_endpoints: AllowPrivate = False,
    validation: Annotated[
        Path | None,
        typer.Option(
            help="The owner's validation data (CSV or NPZ): in an attested project the node "
            "replays each committed round with it and attests the scores."
        ),
    ] = None,
    rpc_url: RpcUrl = DEFAULT_URL,
    key: Key = None,
    account: AccountIndex = None,
) -> None:
    """Train on local data each round; serve updates by CID and commit them on-chain; in an
    attested project, replay and attest each committed round."""
    from marketplace.cli.status_cmds import RoundFeedback
    from marketplace.learning import ModelSpec, TrainConfig
    from marketplace.learning.datafiles import conform, load_for_spec, read_data
    from marketplace.nodes.trainer import (
        TrainerNode,
        TrainerStep,
        check_project_spec,
        fetch_project_spec,
        local_recipe,
    )
    from marketplace.storage import GatewayReader, LocalStore, start_gateway
    from marketplace.storage.gateway import check_port_free

    raw = read_data(data)  # first: a wrong file fails now, not after the gateway wait
    console.print(f"read {len(raw)} samples of shape {raw.sample_shape} from {data}")
    check_port_free(host, port)
    session = open_session(rpc_url, key, account)
    folder = _node_dir(data_dir, "trainer", session.account.address, project)
    store = LocalStore(folder)
    source = GatewayReader(
        aggregator_gateway,
        allow_private=session.chain.development or allow_private_endpoints,
        what="--aggregator-gateway",
    )
    info = session.market.project(project)
    if model_spec is not None:
        if not model_spec.is_file():
            raise ConfigError(f"{model_spec}: no such model spec file")
        spec = check_project_spec(
            ModelSpec.from_json(model_spec.read_bytes()), info, str(model_spec)
        )
    else:
        deadline = time.monotonic() + wait
        while True:  # the aggregator's gateway may still be starting
            try:
                spec = fetch_project_spec(source, info)
                break
            except StorageError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(poll)
    local_data = conform(raw, spec)
    recipe = local_recipe(spec, epochs=epochs, lr=lr, momentum=momentum, batch_size=batch_size)
    node = TrainerNode(
        session.market,
        project,
        local_data,
        store,
        source,
        TrainConfig(**recipe.model_dump(), seed=seed),
        spec=spec,
    )
    if info.attested:
        if validation is None:
            console.print(
                "project is attested: without --validation this node cannot replay rounds, "
                "so it does not attest them"
            )
        else:
            from marketplace.nodes.aggregator import GatewayResolver
            from marketplace.nodes.attest import RoundAttester, replay_record

            resolver = GatewayResolver(
                session.market, project, allow_private=allow_private_endpoints or None
            )
            valid = load_for_spec(validation, spec)
            node.attester = RoundAttester(
                session.market,
                project,
                source,
                resolver,
                valid,
                reader=node.reader,
                record=replay_record(folder),
            )
            node.announce_reader_key()
    server = start_gateway(store, host, port)
    try:
        url = public_url or server.url
        node.announce(url)
        console.print(
            f"trainer #{node.index} ({node.address}) of project {project}: "
            f"{len(node.data)} local samples, gateway {url}"
        )

        feedback = RoundFeedback(node.market, source, project, node.index)

        def told() -> None:  # the rounds committed since the last poll, before training
            feedback(node.market.project(project).rounds_committed)

        def show(step: TrainerStep) -> None:
            if step.status == "committed":
                console.print(f"round {step.round}: committed (hidden) to update {step.cid}")
            elif step.status == "revealed":
                console.print(f"round {step.round}: revealed and serving update {step.cid}")
            elif step.status == "attested":
                console.print(f"round {step.round}: replayed and attested ({step.detail})")
            elif step.status == "missed":
                console.print(f"round {step.round}: missed {step.detail}".rstrip())
            elif step.status in ("done", "closed"):  # no round left: say it of the project
                what = "all rounds committed" if step.status == "done" else "closed"
                console.print(f"project {project}: {what}; this trainer stops")

        node.run(poll_s=poll, on_step=show, on_poll=told)
    finally:
        server.stop()
        source.close()


# ------------------------------------------------------------------ aggregator


@aggregator_app.command("run")
def aggregator_run(
    project: ProjectId,
    validation: Annotated[
        Path,
        typer.Option(
            help="The owner's validation data (.npz, .csv or an image folder): the file the "
            "project committed to; checked against the commitment before the first round."
        ),
    ],
    model_spec: Annotated[
        Path | None,
        typer.Option(help="Model spec JSON to serve (its CID must be the project's)."),
    ] = None,
    rule: Annotated[str, typer.Option(help="Robust aggregation rule.")] = "default",
    rule_param: Annotated[
        list[str] | None, typer.Option(help="Rule parameter KEY=VALUE (repeatable).")
    ] = None,
    min_trainers: Annotated[
        int, typer.Option(min=1, help="Close a round early only once this many registered.")
    ] = 1,
    keep_serving: Annotated[
        bool,
        typer.Option(
            "--keep-serving",
            help="After the last round keep the gateway up (reports, models and every "
            "update, for audits once the trainers are gone) until stopped.",
        ),
    ] = False,
    contribution: Contribution = "gtg",
    zk_keys: Annotated[
        Path | None,
        typer.Option(
            help="Groth16 keys folder of the project's verifier (default: the circuit's "
            "cache under LEDGERLEARN_HOME/zk, made by `zk setup`). Used only when the "
            "project has a verifier."
        ),
    ] = None,
    data_dir: DataDir = None,
    host: Host = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            envvar=AGGREGATOR_PORT_ENV,
            min=0,
            help="Gateway port, where trainers fetch the spec and models (0 picks a free one).",
        ),
    ] = DEFAULT_AGGREGATOR_PORT,
    poll: Poll = 0.5,
    allow_private_endpoints: AllowPrivate = False,
    rpc_url: RpcUrl = DEFAULT_URL,
    key: Key = None,
    account: AccountIndex = None,
) -> None:
    """Aggregate every round of a project and commit each in one transaction."""
    from marketplace.chain.deploy import load_manifest
    from marketplace.cli.status_cmds import WaitPrinter
    from marketplace.learning import ModelSpec
    from marketplace.learning.datafiles import conform, read_data
    from marketplace.nodes.aggregator import AggregatorNode, GatewayResolver, RoundSummary
    from marketplace.rounds.pipeline import RoundConfig
    from marketplace.storage import LocalStore, start_gateway
    from marketplace.storage.gateway import check_port_free

    raw_validation = read_data(validation)  # first: a wrong file fails at once
    check_port_free(host, port)
    params = rule_params(rule, rule_param)
    session = open_session(rpc_url, key, account)
    store = LocalStore(_node_dir(data_dir, "aggregator", session.account.address, project))
    node = AggregatorNode(
        session.market,
        project,
        store,
        None,
        RoundConfig(
            rule=rule,
            rule_params=params,
            contribution=_contribution_config(contribution),
        ),
        resolver=GatewayResolver(
            session.market, project, allow_private=allow_private_endpoints or None
        ),
        min_trainers=min_trainers,
        start_block=load_manifest(session.chain).contracts["ContributionMarket"].block,
        zk_keys_dir=zk_keys,
    )
    node.check_role()
    if model_spec is not None:
        if not model_spec.is_file():
            raise ConfigError(f"{model_spec}: no such model spec file")
        node.publish_spec(ModelSpec.from_json(model_spec.read_bytes()))
    spec = node.spec()
    node.check_pinned(spec)
    validation_data = conform(raw_validation, spec)
    node.check_validation(validation_data, str(validation))
    node.validation = validation_data
    info = session.market.project(project)
    zk = node.zk(info)  # loads the proving key now, not in the first round
    server = start_gateway(store, host, port)
    try:
        filter_name = rule if zk is None else f"zk sketch rule ({zk.verifier.shape.name})"
        console.print(
            f"aggregator of project {project}: rule {filter_name}, {len(node.validation)} "
            f"validation samples, gateway {server.url} (give this URL to trainers)"
        )

        def show(summary: RoundSummary) -> None:
            console.print(_round_line(summary, info.rounds))

        pinned = None if zk is not None else (node.config.rule, dict(node.config.rule_params))
        node.run(poll_s=poll, on_round=show, on_wait=WaitPrinter(session.market, project, pinned))
        console.print(f"project {project}: all {info.rounds} rounds committed")
        if keep_serving:
            console.print(
                f"serving every round blob at {server.url} for audits "
                f"(`ledgerlearn audit {project} --aggregator-gateway {server.url}`); "
                "Ctrl-C stops",
                highlight=False,
                soft_wrap=True,
            )
            while True:
                time.sleep(3600)
    finally:
        server.stop()


def _signer(rpc_url: str, key: str | None, account: int | None) -> LocalAccount:
    """The account of --key (no chain needed) or dev account --account of the node."""
    from marketplace.chain.accounts import account_from_key, chosen_key, resolve_account
    from marketplace.chain.connection import connect

    chosen = chosen_key(key, account)
    if chosen is not None:
        return account_from_key(chosen)
    return resolve_account(connect(rpc_url), None, account)


@aggregator_app.command("reader-key")
def aggregator_reader_key(
    key: Key = None,
    account: AccountIndex = None,
    rpc_url: RpcUrl = DEFAULT_URL,
    private: Annotated[
        bool, typer.Option("--private", help="Print only the private half (for scripts).")
    ] = False,
    json_out: JsonOut = False,
) -> None:
    """Print the aggregator's X25519 reader key, derived from its signing key: the public
    half goes in the model spec, the private half opens sealed updates (give it to an
    auditor you trust with the updates: `ledgerlearn audit --reader-key`)."""
    from marketplace.privacy.keys import ReaderKey

    if key is None and account is None:
        raise ConfigError("pass the aggregator's --key or --account")
    reader = ReaderKey.from_eth_key(_signer(rpc_url, key, account).key)
    if private:
        typer.echo(reader.private_hex)
        return
    if json_out:
        emit_json({"public": reader.public_hex, "private": reader.private_hex})
        return
    console.print(f"public  {reader.public_hex}\nprivate {reader.private_hex}", highlight=False)


@aggregator_app.command("spec")
def aggregator_spec(
    out: Annotated[Path, typer.Option(help="Where to write the model spec JSON.")],
    kind: Annotated[str, typer.Option(help="logreg, mlp, cnn or cnn1d.")] = "mlp",
    dataset: Annotated[
        str | None, typer.Option(help="Take input shape and classes from a built-in dataset.")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Take input shape and classes from your data file (.npz, .csv or an image "
            "folder; docs/data.md), e.g. the validation file of `data split`."
        ),
    ] = None,
    input_shape: Annotated[str | None, typer.Option(help="Sample shape, e.g. 8,8.")] = None,
    classes: Annotated[int | None, typer.Option(min=2)] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the initial weights.")] = 0,
    train_epochs: Annotated[int | None, typer.Option(min=1, help=_DECLARE_HELP)] = None,
    train_lr: Annotated[float | None, typer.Option(min=0.0, help=_DECLARE_HELP)] = None,
    train_momentum: Annotated[
        float | None, typer.Option(min=0.0, max=0.999, help=_DECLARE_HELP)
    ] = None,
    train_batch_size: Annotated[int | None, typer.Option(min=1, help=_DECLARE_HELP)] = None,
    rule: Annotated[
        str, typer.Option(help="Robust rule the project pins (the aggregator must run it).")
    ] = "default",
    rule_param: Annotated[
        list[str] | None, typer.Option(help="Pinned rule parameter KEY=VALUE (repeatable).")
    ] = None,
    key: Key = None,
    account: AccountIndex = None,
    reader: Annotated[
        list[str] | None, typer.Option(help="Another reader's X25519 public key (hex, repeatable).")
    ] = None,
    public_updates: Annotated[
        bool, typer.Option(help="Publish updates in clear (opt-in; requires --dp-epsilon).")
    ] = False,
    dp_epsilon: Annotated[
        float | None, typer.Option(min=0.0, help="DP budget of each trainer over all rounds.")
    ] = None,
    rounds: Annotated[int | None, typer.Option(min=1, help="The project's rounds (for DP).")] = (
        None
    ),
    local_steps: Annotated[
        int | None, typer.Option(min=1, help="Local SGD steps per update (default with DP: 16).")
    ] = None,
    dp_clip: Annotated[float, typer.Option(min=0.0, help="Per-sample clip norm (DP).")] = 1.0,
    dp_sample_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Poisson sampling rate per step (DP).")
    ] = 0.1,
    min_samples: Annotated[int, typer.Option(min=1, help="Smallest shard a trainer may use.")] = 32,
    rpc_url: RpcUrl = DEFAULT_URL,
    json_out: JsonOut = False,
) -> None:
    """Write a model spec and print its CID (the owner passes the file to `project create
    --model-spec`, and the aggregator serves it with `aggregator run --model-spec`).

    Any --train-* option declares the project's local-training recipe in the spec (the
    others take their defaults): trainers follow it unless told otherwise, and the
    aggregator's trust anchor trains with it. --rule and --rule-param pin the robust
    rule: the aggregator refuses another, and `ledgerlearn audit` flags a round that
    used another. Updates are sealed to the aggregator (sign with its --key or
    --account: its reader key is derived from it) and any --reader; --public-updates
    publishes them in clear instead, only with --dp-epsilon."""
    from marketplace.learning import ModelSpec, load_dataset
    from marketplace.nodes.trainer import local_recipe
    from marketplace.privacy.declare import project_privacy
    from marketplace.privacy.keys import ReaderKey
    from marketplace.rounds.codec import spec_cid

    if sum(v is not None for v in (dataset, data, input_shape)) > 1:
        raise ConfigError("pass one of --dataset, --data or --input-shape")
    if dataset is not None:
        train, _ = load_dataset(dataset, 0)
        shape, num_classes = tuple(train.input_shape), train.num_classes
    elif data is not None:
        from marketplace.learning.datafiles import read_data

        raw = read_data(data)
        shape, num_classes = raw.sample_shape, classes or raw.num_classes
    elif input_shape is not None and classes is not None:
        try:
            shape = tuple(int(v) for v in input_shape.split(","))
        except ValueError as exc:
            raise ConfigError(f"--input-shape {input_shape!r}: write e.g. 8,8") from exc
        num_classes = classes
    else:
        raise ConfigError(
            "say what the model takes: --data FILE (your data), --dataset NAME, or "
            "--input-shape and --classes"
        )
    from marketplace.learning.rule_pin import PinnedRule

    pin = PinnedRule(rule=rule, params=rule_params(rule, rule_param))
    readers = list(reader or [])
    if not public_updates:
        if key is None and account is None and not readers:
            raise ConfigError(
                "updates are sealed to the aggregator's reader key: pass the aggregator's "
                "--key or --account (or --reader HEX), or --public-updates with --dp-epsilon"
            )
        if key is not None or account is not None:
            signer = _signer(rpc_url, key, account)
            readers.insert(0, ReaderKey.from_eth_key(signer.key).public_hex)
    privacy = project_privacy(
        readers,
        public_updates=public_updates,
        dp_epsilon=dp_epsilon,
        rounds=rounds,
        local_steps=local_steps,
        sample_rate=dp_sample_rate,
        clip_norm=dp_clip,
        min_samples=min_samples,
    )
    spec = ModelSpec.for_data(kind, shape, num_classes, seed=seed, aggregation=pin, privacy=privacy)
    declared = (train_epochs, train_lr, train_momentum, train_batch_size)
    if any(v is not None for v in declared):
        recipe = local_recipe(
            spec,
            epochs=train_epochs,
            lr=train_lr,
            momentum=train_momentum,
            batch_size=train_batch_size,
        )
        spec = spec.model_copy(update={"training": recipe})
    spec_bytes = spec.to_json_bytes()
    out.write_bytes(spec_bytes)
    cid = spec_cid(spec)
    if json_out:
        emit_json({"cid": cid, "path": str(out), "spec": json.loads(spec_bytes)})
        return
    console.print(
        f"wrote {out} ({spec.kind}, input {tuple(spec.input_shape)}, {spec.num_classes} "
        f"classes); model spec CID [bold]{cid}[/]",
        soft_wrap=True,
    )


# ------------------------------------------------------------------ simulate / demo


def _plot(result: object, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from marketplace.nodes.simulate import SimulationResult

    assert isinstance(result, SimulationResult)
    rounds = [0] + [s.round for s in result.rounds]
    acc = [result.initial_accuracy] + [float(s.metrics.get("accuracy") or 0) for s in result.rounds]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(rounds, [100 * a for a in acc], marker="o")
    c = result.config
    ax.set_title(
        f"{c.dataset}, {c.trainers} trainers, {c.partition}, {c.attack or 'no attack'}, {c.rule}"
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_contributions(result: object, path: Path) -> None:
    """Bar chart of each trainer's cumulative on-chain score and withdrawn reward."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from marketplace.nodes.simulate import SimulationResult

    assert isinstance(result, SimulationResult)
    payouts = result.payouts
    total = sum(p.score for p in payouts) or 1
    labels = [f"#{p.index}" + (" (attacker)" if p.attacker else "") for p in payouts]
    colors = ["tab:red" if p.attacker else "tab:blue" for p in payouts]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(labels, [100 * p.score / total for p in payouts], color=colors)
    for i, p in enumerate(payouts):
        ax.annotate(
            f"{p.reward / 1e18:.3f} ETH",
            (i, 100 * p.score / total),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    c = result.config
    ax.set_title(f"contribution per trainer ({c.contribution}, {c.rounds} rounds, {c.dataset})")
    ax.set_ylabel("share of cumulative score (%)")
    ax.set_xlabel("trainer (label: reward withdrawn)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _payout_table(result: object) -> Table:
    from marketplace.nodes.simulate import SimulationResult

    assert isinstance(result, SimulationResult)
    table = Table(title=f"project {result.project_id} payouts (withdrawn)")
    slashed = any(p.bond for p in result.payouts)
    cols = ("#", "trainer", "role", "score", "share", "stake back", "reward")
    for col in cols + (("slashed bond",) if slashed else ()):
        table.add_column(col)
    total = sum(p.score for p in result.payouts) or 1
    for p in result.payouts:
        row = [
            str(p.index),
            p.address,
            "[red]attacker[/]" if p.attacker else "honest",
            f"{p.score:,}",
            f"{100 * p.score / total:.1f}%",
            format_eth(p.stake),
            format_eth(p.reward),
        ]
        table.add_row(*row, *([format_eth(p.bond)] if slashed else []))
    return table


def _run_simulation(
    config: object,
    json_out: bool,
    plot: Path | None,
    contributions_plot: Path | None = None,
    zk_keys: Path | None = None,
) -> None:
    from marketplace.nodes.aggregator import RoundSummary
    from marketplace.nodes.simulate import SimulationConfig, simulate

    assert isinstance(config, SimulationConfig)

    def show(summary: RoundSummary, seconds: float, attackers: list[int]) -> None:
        if not json_out:
            line = _round_line(summary, config.rounds, attackers)
            console.print(line.rsplit("  ", 1)[0] + f"  {seconds:.2f} s")

    if not json_out:
        rule = config.rule
        if config.zk_shape is not None:
            n_max, dim = config.zk_shape
            rule = f"provable sketch rule (Groth16, {n_max}x{dim} circuit)"
        console.print(
            f"simulating {config.trainers} trainers x {config.rounds} rounds on "
            f"{config.dataset} ({config.partition}), attack {config.attack or 'none'}, "
            f"rule {rule}, embedded chain"
        )
    result = simulate(config, on_round=show, zk_keys_dir=zk_keys)
    if plot is not None:
        _plot(result, plot)
    if contributions_plot is not None:
        _plot_contributions(result, contributions_plot)
    if json_out:
        emit_json(result.to_dict())
        return
    console.print(_payout_table(result))
    for event in result.protocol_events:
        console.print(f"protocol: {event}")
    console.print(
        f"accuracy {_percent(result.initial_accuracy)} -> {_percent(result.final_accuracy)}; "
        f"attackers {result.attackers or 'none'}"
        + (f"; plot written to {plot}" if plot is not None else "")
    )
    if contributions_plot is not None:
        console.print(f"contribution plot written to {contributions_plot}")


def simulate_cmd(
    trainers: Annotated[int, typer.Option(min=1, max=1000)] = 6,
    rounds: Annotated[int, typer.Option(min=1)] = 3,
    dataset: Annotated[str, typer.Option(help="digits, mnist1d or synthetic.")] = "digits",
    partition: Annotated[str, typer.Option(help="iid, dirichlet:ALPHA or quantity:ALPHA.")] = (
        "iid"
    ),
    attack: Annotated[
        str | None, typer.Option(help="NAME:FRACTION, e.g. sign_flip:0.2 (none by default).")
    ] = None,
    aggregator: Annotated[str, typer.Option(help="Robust aggregation rule.")] = "default",
    rule_param: Annotated[
        list[str] | None, typer.Option(help="Rule parameter KEY=VALUE (repeatable), e.g. f=2.")
    ] = None,
    model: Annotated[str, typer.Option(help="logreg, mlp, cnn or cnn1d.")] = "mlp",
    epochs: Annotated[int, typer.Option(min=1)] = 2,
    lr: Annotated[float, typer.Option(min=0.0)] = 0.2,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    contribution: Contribution = "gtg",
    plot: Annotated[Path | None, typer.Option(help="Write an accuracy plot (PNG).")] = None,
    contributions_plot: Annotated[
        Path | None, typer.Option(help="Write a contribution-per-trainer plot (PNG).")
    ] = None,
    zk: Annotated[
        bool,
        typer.Option(
            "--zk", help="Deploy a round verifier and prove every round's filter (Groth16)."
        ),
    ] = False,
    zk_shape: Annotated[
        str, typer.Option(help="Circuit shape NxD (trainer slots x sketch dims) for --zk.")
    ] = "10x16",
    zk_keys: Annotated[
        Path | None, typer.Option(help="Keys folder for --zk (default: cached per shape).")
    ] = None,
    aggregator_attack: Annotated[
        str | None,
        typer.Option(
            help="A cheating aggregator that also runs trainer 0: empty_rounds (commit each "
            "round empty before the trainers' windows), self_deal (score trainer 0 ~99%), "
            "rule_switch (aggregate with another rule than the pinned one), grind (choose "
            "the round seed and arrival order)."
        ),
    ] = None,
    dp_epsilon: Annotated[
        float | None, typer.Option(min=0.0, help="Trainers' DP budget over all rounds.")
    ] = None,
    dp_clip: Annotated[float, typer.Option(min=0.0, help="Per-sample clip norm (DP).")] = 1.0,
    dp_sample_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Poisson sampling rate per step (DP).")
    ] = 0.1,
    local_steps: Annotated[
        int | None, typer.Option(min=1, help="Local SGD steps per update (default with DP: 16).")
    ] = None,
    public_updates: Annotated[
        bool, typer.Option(help="Updates in clear, not sealed to the aggregator (needs DP).")
    ] = False,
    min_samples: Annotated[
        int, typer.Option(min=1, help="Smallest shard a trainer may train on (privacy).")
    ] = 32,
    json_out: JsonOut = False,
) -> None:
    """Run a whole project in one process on the embedded chain, with real training.
    Updates are sealed to the aggregator; --dp-epsilon adds DP-SGD on the trainers."""
    from marketplace.cli.zk_cmds import parse_shape
    from marketplace.nodes.simulate import SimulationConfig

    attacks = ("empty_rounds", "self_deal", "rule_switch", "grind")
    if aggregator_attack is not None and aggregator_attack not in attacks:
        raise ConfigError(
            f"unknown --aggregator-attack {aggregator_attack}: use one of {', '.join(attacks)}"
        )

    config = SimulationConfig(
        trainers=trainers,
        rounds=rounds,
        dataset=dataset,
        partition=partition,
        attack=attack,
        rule=aggregator,
        rule_params=rule_params(aggregator, rule_param),
        model=model,
        epochs=epochs,
        lr=lr,
        seed=seed,
        contribution=_contribution_config(contribution).method,
        zk_shape=parse_shape(zk_shape) if zk else None,
        aggregator_attack=aggregator_attack,  # type: ignore[arg-type]
        dp_epsilon=dp_epsilon,
        dp_clip=dp_clip,
        dp_sample_rate=dp_sample_rate,
        local_steps=local_steps,
        public_updates=public_updates,
        min_samples=min_samples,
    )
    _run_simulation(config, json_out, plot, contributions_plot, zk_keys)


def demo(
    plot: Annotated[Path | None, typer.Option(help="Write an accuracy plot (PNG).")] = None,
    contributions_plot: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the contribution plot (default: "
            "$LEDGERLEARN_HOME/ledgerlearn-demo-contributions.png)."
        ),
    ] = None,
    zk: Annotated[
        bool,
        typer.Option(
            "--zk/--no-zk",
            help="Prove every round's filter on-chain (Groth16; keys made once, cached).",
        ),
    ] = True,
) -> None:
    """A 30-second tour: 6 trainers on digits, one of them flips its update's sign; the
    aggregator proves each round's filter in Groth16 and the market verifies it; every
    trainer withdraws its stake and its Shapley-based share of the reward."""
    from marketplace.nodes.simulate import SimulationConfig
    from marketplace.paths import ledgerlearn_home

    config = SimulationConfig(
        trainers=6,
        rounds=3,
        dataset="digits",
        attack="sign_flip:0.17",
        epochs=2,
        lr=0.2,
        zk_shape=(10, 16) if zk else None,
    )
    if contributions_plot is None:
        home = ledgerlearn_home()
        home.mkdir(parents=True, exist_ok=True)
        contributions_plot = home / "ledgerlearn-demo-contributions.png"
    _run_simulation(config, False, plot, contributions_plot)


def register(app: typer.Typer) -> None:
    """Add the round commands to the ``ledgerlearn`` app."""
    trainer_cmds.app.command("run")(trainer_run)
    app.add_typer(aggregator_app, name="aggregator")
    app.command("simulate")(simulate_cmd)
    app.command("demo")(demo)
