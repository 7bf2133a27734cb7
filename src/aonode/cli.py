"""``aonode``: run a node, manage wallets, schedule messages, verify schedules."""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer

from aonode import wallet as wallet_mod
from aonode.cli_migrate import export_, import_
from aonode.config import LIMITS, NodeConfig, from_env, parse_mode, parse_scheduler_map, parse_size
from aonode.errors import AONodeError, DataDirLocked

app = typer.Typer(
    help="aonode: an AO scheduling and process node.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
wallet_app = typer.Typer(help="Create and inspect wallets.", no_args_is_help=True)
app.add_typer(wallet_app, name="wallet")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (env AONODE_HOST; default 127.0.0.1)")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (0: any free port) (env AONODE_PORT; default 8734)")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Holds the store and wallet.json (env AONODE_DATA_DIR; default ./.aonode)"
        ),
    ] = None,
    wallet: Annotated[
        list[Path] | None,
        typer.Option(help="Extra scheduler wallet (JWK); repeatable (env AONODE_WALLET)"),
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            help="aggressive | local_confirmation | remote_confirmation (env AONODE_MODE)"
        ),
    ] = None,
    max_body: Annotated[
        str | None, typer.Option(help="Request body limit, e.g. 10MiB (env AONODE_MAX_BODY)")
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            help="sqlite:///path (default: in the data dir) or postgresql://user@host:port/db (env AONODE_STORE)"
        ),
    ] = None,
    gateway: Annotated[
        str | None,
        typer.Option(
            help="Arweave gateway URL for block info; none = offline (env AONODE_GATEWAY)"
        ),
    ] = None,
    advertise_url: Annotated[
        str | None,
        typer.Option(
            help="The URL other nodes should use for this one, signed into its location record (env AONODE_ADVERTISE_URL; default http://HOST:PORT)"
        ),
    ] = None,
    sign_threads: Annotated[
        int | None,
        typer.Option(
            help="Threads that make RSA signatures; one per core (env AONODE_SIGN_THREADS; default 2)"
        ),
    ] = None,
    abort_seconds: Annotated[
        float | None,
        typer.Option(
            help="A request not assigned within this time is dropped (env AONODE_ABORT_SECONDS; default 10)"
        ),
    ] = None,
    scheduler_map: Annotated[
        list[str] | None,
        typer.Option(
            help="KEY=URL: push to process id or scheduler address KEY at the node URL; repeatable (env AONODE_SCHEDULER_MAP, comma-separated)"
        ),
    ] = None,
    upload_url: Annotated[
        str | None,
        typer.Option(
            help="Upload assignments and messages to this Arweave node (or arlocal); required by remote_confirmation (env AONODE_UPLOAD_URL)"
        ),
    ] = None,
    lua_memory: Annotated[
        str | None,
        typer.Option(
            help="Memory cap of each live Lua process, C allocations included, e.g. 64MiB; a message past it fails and is rolled back (env AONODE_LUA_MEMORY; default 64MiB)"
        ),
    ] = None,
    operator: Annotated[
        str | None,
        typer.Option(
            help="The operator's token: a request with Authorization: Bearer TOKEN may create and stop any cron task (env AONODE_OPERATOR_TOKEN, preferred: a flag shows in ps; default none = no operator)"
        ),
    ] = None,
    cron_max_per_owner: Annotated[
        int | None,
        typer.Option(
            help="Cron tasks one signer may have at once (env AONODE_CRON_MAX_PER_OWNER; default 100)"
        ),
    ] = None,
    cron_max_tasks: Annotated[
        int | None,
        typer.Option(
            help="Cron tasks the node holds at once (env AONODE_CRON_MAX_TASKS; default 10000)"
        ),
    ] = None,
    cron_min_interval_ms: Annotated[
        int | None,
        typer.Option(
            help="Shortest interval of an every-task, in milliseconds (env AONODE_CRON_MIN_INTERVAL_MS; default 10000)"
        ),
    ] = None,
    # -- quotas and connection limits (config.LIMITS; README "Running a public node") --
    quota_messages: Annotated[
        str | None,
        typer.Option(
            help="Messages per signer, BURST:AMOUNT/PERIOD or off (env AONODE_QUOTA_MESSAGES; default 500:20/s)"
        ),
    ] = None,
    quota_spawns: Annotated[
        str | None,
        typer.Option(help="Spawns per signer (env AONODE_QUOTA_SPAWNS; default 50:6/min)"),
    ] = None,
    quota_store_bytes: Annotated[
        str | None,
        typer.Option(
            help="Bytes per signer through /~message@1.0/store (env AONODE_QUOTA_STORE_BYTES; default 1GiB:1GiB/day)"
        ),
    ] = None,
    quota_reads: Annotated[
        str | None,
        typer.Option(
            help="Unsigned requests and dry runs per client address (env AONODE_QUOTA_READS; default 2000:200/s)"
        ),
    ] = None,
    dryruns_per_client: Annotated[
        str | None,
        typer.Option(
            help="Concurrent dry runs per client address, 0 = no cap (env AONODE_DRYRUNS_PER_CLIENT; default 4)"
        ),
    ] = None,
    dryruns_total: Annotated[
        str | None,
        typer.Option(
            help="Concurrent dry runs on the node, 0 = no cap (env AONODE_DRYRUNS_TOTAL; default 32)"
        ),
    ] = None,
    quota_keys: Annotated[
        str | None,
        typer.Option(
            help="Signers and clients whose quotas are remembered (LRU) (env AONODE_QUOTA_KEYS; default 100000)"
        ),
    ] = None,
    max_header: Annotated[
        str | None,
        typer.Option(
            help="Request header block cap, 431 above (env AONODE_MAX_HEADER; default 16KiB)"
        ),
    ] = None,
    header_timeout: Annotated[
        str | None,
        typer.Option(
            help="Seconds for a request's headers to arrive, counted from when the connection waits for one: closes slow-header and idle connections (env AONODE_HEADER_TIMEOUT; default 10)"
        ),
    ] = None,
    body_timeout: Annotated[
        str | None,
        typer.Option(
            help="Seconds a request body may stall before 408 and close (env AONODE_BODY_TIMEOUT; default 30)"
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option(help="Log level: debug, info, warning (default), error")
    ] = "warning",
    log_format: Annotated[
        str, typer.Option(help="Log lines on stderr: text (readable, default) or json (JSON lines)")
    ] = "text",
) -> None:
    """Run a node until SIGTERM/SIGINT; prints one ready line with URL and address."""
    from aonode import logs
    from aonode.http.server import serve as run
    from aonode.node import Node

    try:
        logs.setup(log_level, log_format)
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    try:
        config = from_env(NodeConfig())
        changes: dict[str, Any] = {}
        for name, value in (
            ("host", host),
            ("port", port),
            ("data_dir", data_dir),
            ("store", store),
            ("gateway", gateway),
            ("advertise_url", advertise_url),
            ("abort_seconds", abort_seconds),
            ("sign_threads", sign_threads),
            ("upload_url", upload_url),
            ("operator_token", operator),
            ("cron_max_per_owner", cron_max_per_owner),
            ("cron_max_tasks", cron_max_tasks),
            ("cron_min_interval_ms", cron_min_interval_ms),
        ):
            if value is not None:
                changes[name] = value
        if wallet:
            changes["wallets"] = tuple(wallet)
        if mode is not None:
            changes["mode"] = parse_mode(mode)
        if max_body is not None:
            changes["max_body"] = parse_size(max_body)
        if scheduler_map:
            changes["scheduler_map"] = parse_scheduler_map(scheduler_map)
        if lua_memory is not None:
            changes["lua_memory"] = parse_size(lua_memory)
        limits = {
            "quota_messages": quota_messages,
            "quota_spawns": quota_spawns,
            "quota_store_bytes": quota_store_bytes,
            "quota_reads": quota_reads,
            "dryruns_per_client": dryruns_per_client,
            "dryruns_total": dryruns_total,
            "quota_keys": quota_keys,
            "max_header": max_header,
            "header_timeout": header_timeout,
            "body_timeout": body_timeout,
        }
        changes.update({k: LIMITS[k](v) for k, v in limits.items() if v is not None})
        config = replace(config, **changes).validated()
        node = Node(config)
    except AONodeError as exc:
        raise _fail(exc.message, 2) from None

    def ready(url: str) -> None:
        print(f"aonode listening on {url} address={node.address}", flush=True)

    try:
        _tune_gc()
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(run(node, on_ready=ready))
    except DataDirLocked as exc:  # one line naming the directory and the holder's pid
        raise _fail(exc.message, 2) from None
    except OSError as exc:
        raise _fail(f"cannot listen on {config.host}:{config.port}: {exc}", 2) from None
    except AONodeError as exc:  # e.g. the store cannot be opened (database unreachable)
        raise _fail(exc.message, 1) from None


def _tune_gc() -> None:
    """Fewer full collections: with the default thresholds a full pass over the
    heap ran every few hundred requests and set p99 latency (24 ms against 6 ms
    at half load, bench/schedule.py); nothing here relies on prompt cycle
    collection."""
    import gc

    gc.set_threshold(10_000, 10, 100)
    gc.freeze()  # start-up objects (modules, wallets) never need scanning again


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed: cheaper cross-thread wake-ups for granian and the store."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return None
    return uvloop.new_event_loop


@wallet_app.command("new")
def wallet_new(
    path: Annotated[Path, typer.Argument(help="Where to write the JWK (mode 0600)")],
    kind: Annotated[str, typer.Option(help="rsa (Arweave RSA-4096) or ed25519")] = "rsa",
    force: Annotated[bool, typer.Option(help="Overwrite an existing file")] = False,
) -> None:
    """Generate a wallet and print its address."""
    if kind not in ("rsa", "ed25519"):
        raise _fail("kind must be rsa or ed25519", 2)
    if path.exists() and not force:
        raise _fail(f"{path} exists (use --force to overwrite)", 2)
    w = wallet_mod.generate("rsa" if kind == "rsa" else "ed25519")
    wallet_mod.save(w, path)
    typer.echo(w.address)


@wallet_app.command("show")
def wallet_show(path: Annotated[Path, typer.Argument(help="A JWK wallet file")]) -> None:
    """Print a wallet's address and kind."""
    try:
        w = wallet_mod.load(path)
    except (AONodeError, OSError) as exc:
        raise _fail(str(exc), 2) from None
    kind = "rsa" if w.signature_type == 1 else "ed25519"
    typer.echo(orjson.dumps({"address": w.address, "kind": kind}).decode())


def _sign_and_post(
    client: httpx.Client,
    wallet: Path,
    *,
    process: str | None,
    data: str,
    tags: list[tuple[str, str]],
    scheduler: str | None = None,
    spawn_tags: list[tuple[str, str]] | None = None,
) -> httpx.Response:
    """Sign a message (or, with ``process=None``, a process) and post it to be scheduled."""
    from aonode.codec import ans104
    from aonode.codec.b64 import b64url_decode

    try:
        w = wallet_mod.load(wallet)
    except (AONodeError, OSError) as exc:
        raise _fail(str(exc), 2) from None
    target = b""
    if process is None:
        sched = scheduler or client.get("/~meta@1.0/info/address").text.strip()
        base = [
            ("Data-Protocol", "ao"),
            ("Variant", "ao.N.1"),
            ("Type", "Process"),
            ("Device", "process@1.0"),
            ("Scheduler-Device", "scheduler@1.0"),
            ("Scheduler", sched),
            *(spawn_tags or []),
        ]
    else:
        try:
            target = b64url_decode(process)
        except ValueError:
            raise _fail(f"{process!r} is not a process id", 2) from None
        base = [("Data-Protocol", "ao"), ("Variant", "ao.N.1"), ("Type", "Message")]
    names = {n.lower() for n, _ in tags}
    tags = [t for t in base if t[0].lower() not in names] + tags
    # A fresh text anchor (as aoconnect sets one) makes every call a new message:
    # ed25519 signatures are deterministic, and a re-post keeps its first slot.
    anchor = secrets.token_urlsafe(24).encode()
    item = ans104.sign(w, data=data.encode(), tags=tags, target=target, anchor=anchor)
    return client.post(
        "/~scheduler@1.0/schedule",
        content=item.raw,
        headers={"content-type": "application/ans104"},
    )


def _parse_tags(tag: list[str] | None) -> list[tuple[str, str]]:
    tags: list[tuple[str, str]] = []
    for t in tag or []:
        name, sep, value = t.partition("=")
        if not sep or not name:
            raise _fail(f"tag {t!r} is not K=V", 2)
        tags.append((name, value))
    return tags


WalletOpt = Annotated[Path, typer.Option(help="Wallet that signs the message")]
UrlOpt = Annotated[str, typer.Option(help="Node URL")]
DEFAULT_WALLET = Path(".aonode/wallet.json")
DEFAULT_URL = "http://127.0.0.1:8734"


@app.command()
def schedule(
    process: Annotated[str | None, typer.Argument(help="Process id (omit with --spawn)")] = None,
    wallet: WalletOpt = DEFAULT_WALLET,
    url: UrlOpt = DEFAULT_URL,
    data: Annotated[str, typer.Option(help="Message data")] = "",
    tag: Annotated[list[str] | None, typer.Option(help="Tag K=V; repeatable")] = None,
    spawn: Annotated[
        bool, typer.Option(help="Create a process (Type: Process) on the node")
    ] = False,
    scheduler: Annotated[
        str | None, typer.Option(help="Scheduler address for --spawn (default: the node's)")
    ] = None,
) -> None:
    """Sign a message with a wallet and post it to a node's schedule."""
    tags = _parse_tags(tag)
    if not spawn and not process:
        raise _fail("give a process id, or --spawn", 2)
    with httpx.Client(base_url=url, timeout=30) as client:
        response = _sign_and_post(
            client,
            wallet,
            process=None if spawn else process,
            data=data,
            tags=tags,
            scheduler=scheduler,
        )
    typer.echo(response.text)
    if response.status_code >= 400:
        raise typer.Exit(1)


@app.command()
def spawn(
    wallet: WalletOpt = DEFAULT_WALLET,
    url: UrlOpt = DEFAULT_URL,
    module: Annotated[
        str | None,
        typer.Option(help="Lua module message id(s), comma-separated (default: built-in aos)"),
    ] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Extra tag K=V; repeatable")] = None,
) -> None:
    """Spawn an aos process (lua@5.3a) on the node and print its id."""
    extra = [("Execution-Device", "lua@5.3a")]
    if module:
        extra.append(("Module", module))
    with httpx.Client(base_url=url, timeout=30) as client:
        r = _sign_and_post(
            client, wallet, process=None, data="", tags=_parse_tags(tag), spawn_tags=extra
        )
    if r.status_code >= 400:
        raise _fail(r.text, 1)
    typer.echo(r.json()["process"])


@app.command("eval")
def eval_(
    process: Annotated[str, typer.Argument(help="Process id")],
    code: Annotated[str, typer.Argument(help="Lua code to evaluate in the process")],
    wallet: WalletOpt = DEFAULT_WALLET,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Schedule an Eval message, compute its slot and print the result."""
    with httpx.Client(base_url=url, timeout=120) as client:
        r = _sign_and_post(client, wallet, process=process, data=code, tags=[("Action", "Eval")])
        if r.status_code >= 400:
            raise _fail(r.text, 1)
        slot = r.json()["slot"]
        c = client.get(f"/{process}~process@1.0/compute", params={"slot": slot})
    if c.status_code >= 400:
        raise _fail(c.text, 1)
    results = c.json()["results"]
    # The output is what aos shows: the prints, then the Eval's value (every runtime).
    shown = results.get("output") or results.get("data") or ""
    if shown:
        typer.echo(shown, nl=not str(shown).endswith("\n"))
    if results.get("error"):
        raise _fail(str(results["error"]), 1)


@app.command()
def compute(
    process: Annotated[str, typer.Argument(help="Process id")],
    slot: Annotated[int | None, typer.Option(help="Slot (default: the current one)")] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Compute a process up to a slot and print that slot's results as JSON."""
    path = f"/{process}~process@1.0/" + ("now" if slot is None else "compute")
    with httpx.Client(base_url=url, timeout=120) as client:
        r = client.get(path, params={} if slot is None else {"slot": slot})
    typer.echo(r.text)
    if r.status_code >= 400:
        raise typer.Exit(1)


@app.command()
def verify(
    source: Annotated[
        str,
        typer.Argument(
            help="Node URL (http://…), a data directory, or a store URL (sqlite:…, postgresql://…)"
        ),
    ],
    process: Annotated[
        str | None, typer.Argument(help="Process id (default: every process there)")
    ] = None,
) -> None:
    """Re-derive the hash chain and check every signature of a process's schedule.

    Exits 1 at the first break, naming the process, the slot and the reason.
    """
    from aonode.verify import list_processes, verify_schedule

    try:
        pids = [process] if process else asyncio.run(list_processes(source))
        for pid in pids:
            problem, count = asyncio.run(verify_schedule(source, pid))
            if problem is not None:
                slot, reason = problem
                where = f"slot {slot}" if process else f"{pid} slot {slot}"
                raise _fail(f"{where}: {reason}", 1)
            typer.echo(f"ok: {count} assignments verified for {pid}")
    except AONodeError as exc:
        raise _fail(exc.message, 2) from None


app.command("export")(export_)
app.command("import")(import_)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (usage errors print their usage, status 2).

    Ids may start with ``-`` (base64url): put them after ``--``, e.g.
    ``aonode eval --wallet me.json -- -abc… 'return 1'``.
    """
    try:
        app(args=argv if argv is not None else sys.argv[1:], standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
