"""``aonode export`` / ``aonode import`` (registered on the main app in ``cli.py``)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from aonode.errors import AONodeError


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


StoreOpt = Annotated[
    str,
    typer.Option(
        "--store",
        envvar="AONODE_STORE",
        help="sqlite:///path or postgresql://user@host:port/db (env AONODE_STORE)",
    ),
]


def export_(
    store: StoreOpt,
    file: Annotated[str, typer.Argument(help="Where to write the stream (- : stdout)")] = "-",
    results: Annotated[
        bool, typer.Option(help="Include computed results and snapshots (derived data)")
    ] = True,
) -> None:
    """Write a store's schedules, messages, locations, results and records as one stream.

    One consistent snapshot, also of a store a node is serving.  A progress bar
    shows on stderr when it is a terminal; a JSON summary follows on stderr.
    """
    from aonode.ops.migrate import export_store

    if file == "-" and sys.stdout.isatty():
        raise _fail("refusing to write a binary stream to a terminal; give a FILE or redirect", 2)
    try:
        if file == "-":
            counts = asyncio.run(export_store(store, sys.stdout.buffer, results=results))
        else:
            try:
                with open(file, "wb") as out:
                    counts = asyncio.run(export_store(store, out, results=results))
            except BaseException:
                Path(file).unlink(missing_ok=True)  # no half-written stream left behind
                raise
    except OSError as exc:
        raise _fail(f"cannot write {file}: {exc}", 2) from None
    except AONodeError as exc:
        raise _fail(exc.message, 1) from None
    typer.echo(orjson.dumps({"exported": counts}).decode(), err=True)


def import_(
    store: StoreOpt,
    file: Annotated[str, typer.Argument(help="The stream to read (- : stdin)")] = "-",
) -> None:
    """Read an `aonode export` stream into a store (SQLite or PostgreSQL).

    Idempotent: what the target already holds is skipped.  A target holding a
    different schedule for a process is refused (exit 1).  Run `aonode verify
    --store URL` afterwards for a full signature check.
    """
    from aonode.ops.migrate import import_store

    try:
        if file == "-":
            report = asyncio.run(import_store(store, sys.stdin.buffer))
        else:
            with open(file, "rb") as source:
                report = asyncio.run(import_store(store, source))
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc}", 2) from None
    except AONodeError as exc:
        raise _fail(exc.message, 1) from None
    typer.echo(orjson.dumps({"imported": report.as_dict()}).decode())
