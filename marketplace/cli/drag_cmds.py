"""dRAG commands: ``source serve|register|list``, ``drag query|flush|feedback-status``,
``registry grant-evaluator|revoke-evaluator``.

A data owner registers a source (``source register``, the signing account becomes its
owner) and serves its documents (``source serve``); a user asks questions (``drag query``)
and, with ``--correct``/``--wrong``/``--truth``, queues feedback that ``drag flush`` (or the
size/age threshold, or ``--flush``) sends on-chain in one ``applyFeedback`` transaction. The
flushing account needs ``EVALUATOR_ROLE``, granted by the registry admin (the deployer)
with ``registry grant-evaluator``. The chain id and registry address come from the
deployment manifest of ``--rpc-url`` (``ledgerlearn deploy``).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from marketplace.cli.common import (
    DEFAULT_URL,
    AccountIndex,
    JsonOut,
    Key,
    RpcUrl,
    Session,
    console,
    emit_json,
    format_eth,
    open_session,
)
from marketplace.cli.project_cmds import parse_digest
from marketplace.errors import ConfigError
from marketplace.paths import ledgerlearn_home

if TYPE_CHECKING:
    from marketplace.chain.registry import SourceInfo

source_app = typer.Typer(help="Serve and register dRAG sources.", no_args_is_help=True)
drag_app = typer.Typer(help="Ask the registered sources; feed back.", no_args_is_help=True)
registry_app = typer.Typer(help="Administer the SourceRegistry.", no_args_is_help=True)


def default_index_dir(docs: Path) -> Path:
    """``$LEDGERLEARN_HOME/drag/index/<hash of the docs folder path>``: outside the docs
    folder (whose ``.jsonl`` files are all ingested) and stable across restarts."""
    digest = hashlib.sha256(str(docs.resolve()).encode()).hexdigest()[:16]
    return ledgerlearn_home() / "drag" / "index" / digest


def feedback_queue_path(chain_id: int, registry: str, account: str) -> Path:
    """The persistent feedback queue of one account on one registry under
    ``$LEDGERLEARN_HOME`` (:func:`drag.feedback.queue_path`)."""
    from drag.feedback import queue_path

    return queue_path(ledgerlearn_home(), chain_id, registry, account)


def legacy_queue_path(chain_id: int, registry: str) -> Path:
    """Where the queue shared by every account lived before queues were per account."""
    return ledgerlearn_home() / "drag" / f"feedback-{chain_id}-{registry.lower()}.jsonl"


def _find_source_id(rows: list[SourceInfo], signer: str, source_id: int | None) -> int:
    if source_id is not None:
        row = next((r for r in rows if r.source_id == source_id), None)
        if row is None:
            raise ConfigError(f"source {source_id} is not registered: run `source register`")
        if row.signer != signer:
            raise ConfigError(
                f"source {source_id} is registered with signer {row.signer}, not {signer}; "
                "pass that signer's --key or the right --source-id"
            )
        return source_id
    mine = [r.source_id for r in rows if r.signer == signer and r.active]
    if not mine:
        raise ConfigError(
            f"no active source has signer {signer}: run `ledgerlearn source register "
            f"--endpoint URL --signer {signer}` first, or pass --source-id"
        )
    if len(mine) > 1:
        raise ConfigError(f"signer {signer} has sources {mine}; pick one with --source-id")
    return mine[0]


# ------------------------------------------------------------------ source


ChunkWords = Annotated[
    int, typer.Option(help="Largest passage in words (whole sentences, within one document).")
]


def _chunk(chunk_words: int) -> Any:
    from drag.ingest import ChunkConfig

    if chunk_words < 8:
        raise ConfigError(f"--chunk-words {chunk_words} is too small; use 8 or more")
    return ChunkConfig(chunk_words=chunk_words, overlap=min(20, chunk_words // 4))


@source_app.command("ingest")
def source_ingest(
    docs: Annotated[
        Path, typer.Option(help="A docs.jsonl ({id, text} per line), .txt/.md, or a folder.")
    ],
    index_dir: Annotated[
        Path | None, typer.Option(help="Where the index lives (default: under home).")
    ] = None,
    chunk_words: ChunkWords = 120,
    json_out: JsonOut = False,
) -> None:
    """Chunk (by sentences, within documents) and embed DOCS into a persistent index, so
    `source serve` starts at once; only new or changed files are embedded."""
    from drag.index import PassageIndex

    index_dir = index_dir or default_index_dir(docs)
    index = PassageIndex(index_dir, chunk=_chunk(chunk_words))
    start = time.perf_counter()
    report = index.sync(docs)
    out = {
        "index_dir": str(index_dir),
        "passages": len(index),
        "documents": len({p.doc_id for p in index.passages}),
        "embedded": report.embedded_passages,
        "added": report.added,
        "changed": report.changed,
        "removed": report.removed,
        "seconds": round(time.perf_counter() - start, 2),
    }
    if json_out:
        emit_json(out)
        return
    console.print(
        f"{out['documents']} documents -> {out['passages']} passages in {index_dir} "
        f"({out['embedded']} embedded in {out['seconds']} s)"
    )


@source_app.command("serve")
def source_serve(
    docs: Annotated[Path, typer.Option(help="Folder of .txt/.md/.jsonl documents to serve.")],
    port: Annotated[int, typer.Option(help="TCP port.")] = 8600,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    index_dir: Annotated[
        Path | None,
        typer.Option(help="Where the index and the receipt nonces live (default: under home)."),
    ] = None,
    source_id: Annotated[
        int | None, typer.Option(help="Registered source id (default: found by signer).", min=1)
    ] = None,
    max_k: Annotated[int, typer.Option(help="Largest k a client may ask for.")] = 50,
    chunk_words: ChunkWords = 120,
    rpc_url: RpcUrl = DEFAULT_URL,
    key: Key = None,
    account: AccountIndex = None,
) -> None:
    """Serve signed top-k retrieval over DOCS (the key signs the source's receipts)."""
    from drag.ingest import list_documents
    from drag.server import SourceConfig, SourceNode, serve
    from drag.source_lock import SourceLock
    from marketplace.chain.registry import MAX_NONCE_STEP
    from marketplace.storage.gateway import check_port_free

    check_port_free(host, port)  # before indexing the folder and loading the model
    if not list_documents(docs):
        raise ConfigError(
            f"{docs} holds no .txt, .md or .jsonl documents; put the documents to serve "
            "there, or point --docs at the folder that has them"
        )
    session = open_session(rpc_url, key, account)
    sid = _find_source_id(session.registry.all_scores(), session.account.address, source_id)
    # held until the process exits: a second server of this source would reuse nonces
    lock = SourceLock(ledgerlearn_home(), session.chain.chain_id, session.registry.address, sid)
    lock.acquire()
    config = SourceConfig(
        source_id=sid,
        private_key="0x" + bytes(session.account.key).hex(),
        chain_id=session.chain.chain_id,
        registry_address=session.registry.address,
        max_k=max_k,
    )
    index_dir = index_dir or default_index_dir(docs)
    console.print(f"indexing {docs} into {index_dir} ...")
    node = SourceNode.from_dirs(docs, index_dir, config, _chunk(chunk_words))
    if len(node.index) == 0:
        raise ConfigError(
            f"the documents under {docs} hold no text to serve; add text to them, or point "
            "--docs at the folder that has it"
        )
    registry = session.registry  # nonces stay within the registry's step bound
    node.ledger.set_ceiling(lambda: registry.source(sid).last_nonce + MAX_NONCE_STEP)
    console.print(
        f"source [bold]{sid}[/] ({node.address}) serves {len(node.index)} passages on "
        f"http://{host}:{port} (last nonce {node.ledger.last})"
    )
    serve(node, host=host, port=port, log_level="warning")


@source_app.command("register")
def source_register(
    endpoint: Annotated[str, typer.Option(help="URL clients reach the source node at.")],
    signer: Annotated[
        str | None, typer.Option(help="Address that signs receipts (default: the owner).")
    ] = None,
    metadata_cid: Annotated[
        str | None, typer.Option(help="CID (or 0x digest) of the source's metadata.")
    ] = None,
    rpc_url: RpcUrl = DEFAULT_URL,
    key: Key = None,
    account: AccountIndex = None,
    json_out: JsonOut = False,
) -> None:
    """Register a source owned by the signing account, paying the registry's stake."""
    from marketplace.chain.accounts import parse_address

    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"endpoint {endpoint!r} must start with http:// or https://")
    session = open_session(rpc_url, key, account)
    signer_address = parse_address(signer, "signer") if signer else session.account.address
    stake = session.registry.source_stake()
    sid, receipt = session.registry.register_source(
        signer_address, endpoint, parse_digest(metadata_cid, "metadata CID")
    )
    if json_out:
        emit_json(
            {
                "source_id": sid,
                "owner": session.account.address,
                "signer": signer_address,
                "endpoint": endpoint,
                "stake": stake,
                "gas": receipt["gasUsed"],
            }
        )
        return
    console.print(
        f"source [bold]{sid}[/] registered (signer {signer_address}, stake {format_eth(stake)})"
    )


@source_app.command("deactivate")
def source_deactivate(
    source_id: Annotated[int, typer.Argument(min=1, help="Your source's id.")],
    rpc_url: RpcUrl = DEFAULT_URL,
    key: Key = None,
    account: AccountIndex = None,
) -> None:
    """Stop your source from being sampled; its stake unlocks after the registry's lock."""
    session = open_session(rpc_url, key, account)
    session.registry.deactivate(source_id)
    _, unlock_at = session.registry.stake_of(source_id)
    console.print(
        f"source {source_id} deactivated; its stake can be withdrawn from "
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(unlock_at))} "
        f"(`ledgerlearn source withdraw-stake {source_id}`)"
    )


@source_app.command("withdraw-stake")
def source_withdraw_stake(
    source_id: Annotated[int, typer.Argument(min=1, help="Your deactivated source's id.")],
    rpc_url: RpcUrl = DEFAULT_URL,
    key: Key = None,
    account: AccountIndex = None,
) -> None:
    """Take back the stake of your source once it has been deactivated for the lock."""
    session = open_session(rpc_url, key, account)
    stake, _ = session.registry.stake_of(source_id)
    session.registry.withdraw_stake(source_id)
    console.print(f"withdrew {format_eth(stake)} staked for source {source_id}")


def _source_row(info: SourceInfo) -> dict[str, Any]:
    a, b = 1 + info.reliability_pos, 1 + info.reliability_neg
    return {
        "source_id": info.source_id,
        "owner": info.owner,
        "signer": info.signer,
        "endpoint": info.endpoint,
        "active": info.active,
        "alpha": info.alpha,
        "beta": info.beta,
        "reliability": a / (a + b),
        "usefulness": info.usefulness_score,
        "last_nonce": info.last_nonce,
    }


def _print_sources(rows: list[dict[str, Any]], title: str) -> None:
    table = Table(title=title)
    for col in ("id", "endpoint", "active", "reliability", "evidence +/-", "usefulness"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["source_id"]),
            r["endpoint"],
            "yes" if r["active"] else "no",
            f"{r['reliability']:.3f}",
            f"{r['alpha'] / 1e6:.2f} / {r['beta'] / 1e6:.2f}",
            f"{r['usefulness']:.3f}",
        )
    console.print(table)


@source_app.command("list")
def source_list(
    rpc_url: RpcUrl = DEFAULT_URL,
    key: Key = None,
    account: AccountIndex = None,
    json_out: JsonOut = False,
) -> None:
    """Every registered source and its on-chain scores."""
    rows = [_source_row(i) for i in open_session(rpc_url, key, account).registry.all_scores()]
    if json_out:
        emit_json({"sources": rows})
        return
    _print_sources(rows, "registered sources")


# ------------------------------------------------------------------ drag


def _generator(
    llm_url: str | None, llm_model: str | None, model_path: Path | None, local_llm: bool = False
) -> Any:
    from drag.generate import ExtractiveGenerator, OpenAICompatibleGenerator, TransformersGenerator

    if sum((bool(llm_url), bool(model_path), local_llm)) > 1:
        raise ConfigError("pass one of --llm-url/--llm-model, --model-path or --local-llm")
    if local_llm:
        from drag.local_llm import local_llm_generator

        return local_llm_generator()
    if llm_url:
        if not llm_model:
            raise ConfigError("--llm-url needs --llm-model (the model name the server serves)")
        return OpenAICompatibleGenerator(llm_url, llm_model)
    if model_path:
        return TransformersGenerator(model_path)
    return ExtractiveGenerator()


def _queue(session: Session, batch: int, max_age: float) -> tuple[Any, Any]:
    from drag.chain_directory import ChainDirectory
    from drag.feedback import FeedbackQueue

    directory = ChainDirectory(session.registry)
    chain_id, registry = session.chain.chain_id, session.registry.address
    path = feedback_queue_path(chain_id, registry, session.account.address)
    queue = FeedbackQueue(path, directory.submit, batch, max_age, check=directory.check_evaluator)
    return directory, queue


Batch = Annotated[int, typer.Option("--batch", help="Flush when this many deltas wait.", min=1)]
# `drag query --batch FILE` takes a file of questions; its queue threshold is --flush-batch
FlushBatch = Annotated[
    int, typer.Option("--flush-batch", help="Flush when this many deltas wait.", min=1)
]
MaxAge = Annotated[
    float, typer.Option("--max-age", help="Flush when the oldest delta is this many s old.")
]


Sampler = Annotated[str, typer.Option(help="How to choose sources: thompson or usefulness.")]
Sources = Annotated[int, typer.Option("--sources", help="Sources to query.", min=1)]
Alpha = Annotated[float, typer.Option(help="Weight of reliability in reranking.", min=0, max=1)]
PassagesPerSource = Annotated[int, typer.Option(help="Passages per source.", min=1)]
TopN = Annotated[int, typer.Option(help="Passages given to the generator.", min=1)]
LlmUrl = Annotated[
    str | None, typer.Option(help="OpenAI-compatible server (vLLM, Ollama, llama.cpp).")
]
LlmModel = Annotated[str | None, typer.Option(help="Model name for --llm-url.")]
LocalLlm = Annotated[
    bool,
    typer.Option(
        "--local-llm",
        help="Answer with the packaged SmolLM2-135M-Instruct, offline (the [llm] extra).",
    ),
]
ModelPath = Annotated[
    Path | None, typer.Option(help="Local transformers model folder as generator.")
]


def _client(
    session: Session,
    sources: int,
    sampler: str,
    alpha: float,
    k: int,
    top_n: int,
    timeout: float,
    generator: Any,
    batch: int,
    max_age: float,
) -> tuple[Any, Any, Any]:
    """(client, directory, queue) for this session's account."""
    from drag.client import ClientConfig, DragClient

    if sampler not in ("thompson", "usefulness"):
        raise ConfigError(f"unknown sampler {sampler!r}; use thompson or usefulness")
    directory, queue = _queue(session, batch, max_age)
    config = ClientConfig(
        n_sources=sources,
        k=k,
        top_n=top_n,
        alpha=alpha,
        strategy=sampler,  # type: ignore[arg-type]
        timeout_s=timeout,
    )
    return DragClient(directory, generator, config, queue), directory, queue


def _print_answer(out: dict[str, Any]) -> None:
    shown = out["answer"] or "(no answer: nothing in the passages answers it)"
    console.print(f"[bold]answer:[/] {shown}")
    if out.get("confidence") is not None:
        console.print(f"confidence: {out['confidence']:.2f}")
    if "correct" in out:
        console.print(f"judged {'right' if out['correct'] else 'wrong'} against --truth")
    table = Table(title="passages used")
    for col in ("#", "source", "relevance", "reliability", "score", "text"):
        table.add_column(col)
    for i, p in enumerate(out["passages"], start=1):
        table.add_row(
            str(i),
            str(p["source_id"]),
            f"{p['relevance']:.3f}",
            f"{p['reliability']:.3f}",
            f"{p['score']:.3f}",
            p["text"],
        )
    console.print(table)
    for s in out["sources"]:
        state = "answered" if s["answered"] else "no answer"
        console.print(
            f"source {s['source_id']}: reliability {s['reliability']:.3f}, "
            f"usefulness {s['usefulness']:.3f} ({state})"
        )
    fb = out["feedback"]
    if fb.get("queued") or fb.get("flushed"):
        console.print(
            f"feedback: {fb['queued']} deltas queued, {fb['pending']} pending, "
            f"{fb['flushed']} flushed" + (f" in tx {fb['tx']}" if fb.get("tx") else "")
        )


@drag_app.command("query")
def drag_query(
    question: Annotated[
        str | None, typer.Argument(help="The question (or give --batch FILE).")
    ] = None,
    batch_file: Annotated[
        Path | None,
        typer.Option(
            "--batch-file",
            "--batch",
            help="Answer every question of FILE (JSONL {question, answer?, aliases?} or one "
            "question per line), one JSON line each; with an answer, judge it and queue "
            "feedback.",
        ),
    ] = None,
    sources: Sources = 3,
    sampler: Sampler = "thompson",
    alpha: Alpha = 0.3,
    k: PassagesPerSource = 10,
    top_n: TopN = 5,
    llm_url: LlmUrl = None,
    llm_model: LlmModel = None,
    model_path: ModelPath = None,
    local_llm: LocalLlm = False,
    correct: Annotated[bool, typer.Option("--correct", help="The answer is right.")] = False,
    wrong: Annotated[bool, typer.Option("--wrong", help="The answer is wrong.")] = False,
    truth: Annotated[
        list[str] | None,
        typer.Option(help="The right answer (repeat for aliases); judged after normalization."),
    ] = None,
    flush: Annotated[bool, typer.Option("--flush", help="Send queued feedback now.")] = False,
    batch: FlushBatch = 20,
    max_age: MaxAge = 300.0,
    timeout: Annotated[float, typer.Option(help="Per-source timeout in seconds.")] = 5.0,
    seed: Annotated[int | None, typer.Option(help="Seed of the source sampling.")] = None,
    rpc_url: RpcUrl = DEFAULT_URL,
    key: Key = None,
    account: AccountIndex = None,
    json_out: JsonOut = False,
) -> None:
    """Answer QUESTION from the registered sources; print the passages and their sources."""
    import asyncio

    from drag.service import QueryService, read_batch

    if sum([correct, wrong, bool(truth)]) > 1:
        raise ConfigError("give at most one of --correct, --wrong and --truth")
    if (question is None) == (batch_file is None):
        raise ConfigError("give a QUESTION or --batch FILE (one of them)")
    generator = _generator(llm_url, llm_model, model_path, local_llm)  # before connecting
    session = open_session(rpc_url, key, account)
    client, directory, queue = _client(
        session, sources, sampler, alpha, k, top_n, timeout, generator, batch, max_age
    )
    if flush or correct or wrong or truth:
        directory.check_evaluator()  # refuse before querying, not after: nothing queued
    service = QueryService(client)

    if batch_file is not None:
        items = list(read_batch(batch_file))

        async def run_batch() -> None:
            async with service:
                for i, item in enumerate(items):
                    out = await service.ask(
                        item.question, item.truth, seed=None if seed is None else seed + i
                    )
                    out["id"] = item.qid
                    typer.echo(json.dumps(out, ensure_ascii=False, default=str))

        asyncio.run(run_batch())
        flushed = queue.flush() if flush else 0
        typer.echo(
            f"{len(items)} questions answered; feedback: {len(queue)} pending, {flushed} flushed",
            err=True,
        )
        return

    assert question is not None

    async def run_one() -> dict[str, Any]:
        async with service:
            return await service.ask(
                question, truth or (), None if not (correct or wrong) else correct, seed
            )

    out = asyncio.run(run_one())
    flushed = queue.flush() if flush else 0
    out["feedback"].update(
        {"pending": len(queue), "flushed": flushed, "tx": _tx_hash(directory) if flushed else None}
    )
    if json_out:
        emit_json(out)
        return
    _print_answer(out)


@drag_app.command("serve-client")
def drag_serve_client(
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1.")] = 8700,
    sources: Sources = 3,
    sampler: Sampler = "thompson",
    alpha: Alpha = 0.3,
    k: PassagesPerSource = 10,
    top_n: TopN = 5,
    llm_url: LlmUrl = None,
    llm_model: LlmModel = None,
    model_path: ModelPath = None,
    local_llm: LocalLlm = False,
    batch: FlushBatch = 20,
    max_age: MaxAge = 300.0,
    timeout: Annotated[float, typer.Option(help="Per-source timeout in seconds.")] = 5.0,
    rpc_url: RpcUrl = DEFAULT_URL,
    key: Key = None,
    account: AccountIndex = None,
) -> None:
    """Keep the models loaded and answer over HTTP on 127.0.0.1 (POST /query, GET /feedback)."""
    import uvicorn

    from drag.client_api import create_client_app
    from drag.service import QueryService

    generator = _generator(llm_url, llm_model, model_path, local_llm)  # before connecting
    session = open_session(rpc_url, key, account)
    client, directory, queue = _client(
        session, sources, sampler, alpha, k, top_n, timeout, generator, batch, max_age
    )
    if client.embedder is not None:
        client.embedder.embed(["warm-up"])  # load the model before the port opens

    def status() -> dict[str, Any]:
        return {
            "account": session.account.address,
            "queue": str(queue.path),
            "pending": len(queue),
            "may_flush": _is_evaluator(directory),
        }

    def flush_queue() -> int:
        directory.check_evaluator()
        return int(queue.flush())

    app = create_client_app(QueryService(client), status, flush_queue)
    console.print(
        f"dRAG client for {session.account.address} on http://127.0.0.1:{port} "
        f"(POST /query, GET /feedback); feedback queue {queue.path}"
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _is_evaluator(directory: Any) -> bool:
    try:
        directory.check_evaluator()
    except ConfigError:
        return False
    return True


def _tx_hash(directory: Any) -> str | None:
    receipt = directory.last_receipt
    return None if receipt is None else "0x" + bytes(receipt["transactionHash"]).hex()


@drag_app.command("flush")
def drag_flush(
    batch: Batch = 20,
    rpc_url: RpcUrl = DEFAULT_URL,
    key: Key = None,
    account: AccountIndex = None,
    json_out: JsonOut = False,
) -> None:
    """Send every queued feedback delta on-chain (needs EVALUATOR_ROLE)."""
    session = open_session(rpc_url, key, account)
    directory, queue = _queue(session, batch, 0.0)
    directory.check_evaluator()
    legacy = legacy_queue_path(session.chain.chain_id, session.registry.address)
    adopted = queue.adopt(legacy)
    pending = len(queue)
    sent = queue.flush()
    reasons: dict[str, int] = {}
    for d in queue.dropped:
        reasons[d.reason] = reasons.get(d.reason, 0) + 1
    out = {
        "pending": pending,
        "sent": sent - len(queue.dropped),
        "dropped": len(queue.dropped),
        "dropped_by_reason": reasons,
        "adopted_from_shared_queue": adopted,
        "tx": _tx_hash(directory),
    }
    if json_out:
        emit_json(out)
        return
    console.print(
        f"{out['sent']} feedback updates applied, {out['dropped']} dropped"
        + (f"; last tx {out['tx']}" if out["tx"] else "")
    )
    for reason, n in reasons.items():
        console.print(f"  dropped {n}: {reason}")


@drag_app.command("feedback-status")
def drag_feedback_status(
    rpc_url: RpcUrl = DEFAULT_URL,
    key: Key = None,
    account: AccountIndex = None,
    json_out: JsonOut = False,
) -> None:
    """This account's feedback queue: pending deltas, drops by reason, the last flush."""
    session = open_session(rpc_url, key, account)
    directory, queue = _queue(session, 20, 300.0)
    out = queue.status().to_json()
    out["account"] = session.account.address
    out["evaluator"] = session.registry.is_evaluator(session.account.address)
    legacy = legacy_queue_path(session.chain.chain_id, session.registry.address)
    out["shared_queue_pending"] = len(queue.read_other(legacy)) if legacy.is_file() else 0
    if json_out:
        emit_json(out)
        return
    role = "evaluator" if out["evaluator"] else "NOT an evaluator (cannot flush)"
    console.print(f"account {out['account']} ({role}), queue {out['queue']}")
    age = out["oldest_age_s"]
    console.print(
        f"{out['pending']} pending" + (f", oldest {age:.0f} s old" if age is not None else "")
    )
    for sid, n in out["pending_by_source"].items():
        console.print(f"  source {sid}: {n} pending")
    console.print(f"{out['dropped']} dropped so far")
    for reason, n in out["dropped_by_reason"].items():
        console.print(f"  {n}: {reason}")
    if out["last_flush"]:
        console.print(f"last flush: {out['last_flush']}")
    if out["shared_queue_pending"]:
        console.print(
            f"{out['shared_queue_pending']} deltas wait in the old shared queue {legacy}; "
            "`ledgerlearn drag flush` by an evaluator adopts and sends them"
        )


# ------------------------------------------------------------------ registry


@registry_app.command("grant-evaluator")
def grant_evaluator(
    address: Annotated[str, typer.Argument(help="Account allowed to submit feedback.")],
    rpc_url: RpcUrl = DEFAULT_URL,
    key: Key = None,
    account: AccountIndex = None,
) -> None:
    """Give ADDRESS the EVALUATOR_ROLE (the signing account must be the registry admin)."""
    from marketplace.chain.accounts import parse_address

    session = open_session(rpc_url, key, account)
    target = parse_address(address, "evaluator address")
    session.registry.grant_evaluator(target)
    console.print(f"{target} may now submit dRAG feedback")


@registry_app.command("revoke-evaluator")
def revoke_evaluator(
    address: Annotated[str, typer.Argument(help="Account to stop.")],
    rpc_url: RpcUrl = DEFAULT_URL,
    key: Key = None,
    account: AccountIndex = None,
) -> None:
    """Take the EVALUATOR_ROLE from ADDRESS (registry admin only)."""
    from marketplace.chain.accounts import parse_address

    session = open_session(rpc_url, key, account)
    target = parse_address(address, "evaluator address")
    session.registry.revoke_evaluator(target)
    console.print(f"{target} may no longer submit dRAG feedback")


def register(app: typer.Typer) -> None:
    app.add_typer(source_app, name="source")
    app.add_typer(drag_app, name="drag")
    app.add_typer(registry_app, name="registry")
