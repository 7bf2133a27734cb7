"""``aonode``: run a node, manage wallets, verify and move stores.

The commands that talk to a running node (``spawn``, ``eval``, ``message``,
``module add-aos``, ``cron``, …) live in :mod:`aonode.client.commands` and are
wired in here; :func:`main` turns every failure a user can cause into one line.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

from aonode import gc_tuning
from aonode import wallet as wallet_mod
from aonode.client import commands as client_commands
from aonode.config import SETTINGS, NodeConfig, from_env, from_flags
from aonode.errors import AONodeError, BadUsage, ClientError, DataDirLocked
from aonode.ops.migrate_cli import export_, import_

if TYPE_CHECKING:
    from aonode.cluster.supervisor import Supervisor

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


def serve(
    log_level: Annotated[
        str, typer.Option(help="Log level: debug, info, warning (default), error")
    ] = "warning",
    log_format: Annotated[
        str, typer.Option(help="Log lines on stderr: text (readable, default) or json (JSON lines)")
    ] = "text",
    **flags: str | list[str] | None,
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
        config = from_flags(from_env(NodeConfig()), flags).validated()
        workers = config.workers or cores()
        node = Node(config) if workers == 1 else None
        supervisor = _supervisor(config, workers, log_level, log_format) if node is None else None
    except AONodeError as exc:
        raise _fail(exc.message, 2) from None

    try:
        gc_tuning.tune()
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            if node is not None:
                address = node.address

                def ready(url: str) -> None:
                    announce(url, address)

                runner.run(run(node, on_ready=ready))
            elif supervisor is not None and runner.run(_serve_cluster(supervisor)):
                raise typer.Exit(1)  # a worker failed to start (its reason is on stderr)
    except DataDirLocked as exc:  # one line naming the directory and the holder's pid
        raise _fail(exc.message, 2) from None
    except OSError as exc:
        raise _fail(f"cannot listen on {config.host}:{config.port}: {exc}", 2) from None
    except AONodeError as exc:  # e.g. the store cannot be opened (database unreachable)
        raise _fail(exc.message, 1) from None


def cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's cpuset counts)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity call on this platform
        return os.cpu_count() or 1


def _supervisor(config: NodeConfig, workers: int, log_level: str, log_format: str) -> Supervisor:
    """``serve --workers N`` (N > 1): a supervisor of N worker processes (aonode.cluster)."""
    from aonode.cluster.supervisor import Supervisor

    return Supervisor(config, workers, log_level=log_level, log_format=log_format)


async def _serve_cluster(supervisor: Supervisor) -> int:
    def ready(url: str) -> None:
        announce(url, supervisor.address)

    return await supervisor.run(on_ready=ready)


def announce(url: str, address: str) -> None:
    """The ready line, in one write: with ``PYTHONUNBUFFERED`` set, ``print`` writes
    the text and its newline separately, and a worker's log line written between
    the two (same stderr/stdout pipe for whoever reads both) corrupted the line."""
    sys.stdout.write(f"aonode listening on {url} address={address}\n")
    sys.stdout.flush()


def _serve_signature() -> inspect.Signature:
    """``serve``'s parameters as typer reads them: a flag per setting of
    :data:`aonode.config.SETTINGS` (its help and metavar from there), then the log options."""
    flag_params = [
        inspect.Parameter(
            s.name,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=None,
            annotation=Annotated[
                (list[str] if s.kind.split else str) | None,
                typer.Option(f"--{s.option}", help=s.help_line, metavar=s.kind.metavar),
            ],
        )
        for s in SETTINGS
        if s.option is not None
    ]
    log_params = [
        p
        for p in inspect.signature(serve, eval_str=True).parameters.values()
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    return inspect.Signature([*flag_params, *log_params])


serve.__signature__ = _serve_signature()  # type: ignore[attr-defined]
app.command()(serve)


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
    from aonode.ops.verify import list_processes, verify_schedule

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
