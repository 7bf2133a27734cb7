"""``aonode``: run a node, manage wallets, verify and move stores.

The commands that talk to a running node (``spawn``, ``eval``, ``message``,
``module add-aos``, ``cron``, …) live in :mod:`aonode.client.commands` and are
wired in here; :func:`main` turns every failure a user can cause into one line.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from aonode import wallet as wallet_mod
from aonode.cli_migrate import export_, import_
from aonode.client import commands as client_commands
from aonode.config import LIMITS, NodeConfig, from_env, parse_mode, parse_scheduler_map, parse_size
from aonode.errors import AONodeError, BadUsage, ClientError, DataDirLocked

app = typer.Typer(
    help="aonode: an AO scheduling and process node.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
wallet_app = typer.Typer(help="Create and inspect wallets.", no_args_is_help=True)
app.add_typer(wallet_app, name="wallet")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"aonode: {message}", err=True)
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
    if not path.parent.is_dir():
        raise ClientError(f"cannot write {path}: the folder {path.parent} does not exist")
    w = wallet_mod.generate("rsa" if kind == "rsa" else "ed25519")
    try:
        wallet_mod.save(w, path)
    except OSError as exc:
        raise ClientError(f"cannot write {path}: {exc.strerror}") from None
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


@app.command(context_settings={"ignore_unknown_options": True})
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
client_commands.register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status.

    Bad usage prints its usage and exits 2 (as typer does).  Every other failure
    a user can cause — a node that is down or refuses, a malformed ``--url``, a
    file or directory that cannot be read or written — is one line
    ``aonode: <message>`` on stderr and exit status 1 (2 for a malformed
    argument, :class:`BadUsage`), never a traceback.
    """
    try:
        app(args=argv if argv is not None else sys.argv[1:], standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except BadUsage as exc:
        return _error(exc.message, 2)
    except AONodeError as exc:
        return _error(exc.message)
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename is not None else ""
        return _error(f"{exc.strerror or exc}{where}")
    return 0


def _error(message: str, status: int = 1) -> int:
    from aonode.client.node import one_line

    typer.echo(f"aonode: {one_line(message)}", err=True)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
