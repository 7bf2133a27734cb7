"""``aonode cron add|list|stop``: cron tasks, signed by their owner or the operator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from aonode.client import sign
from aonode.client.node import DEFAULT_URL, NodeClient
from aonode.client.options import IDS, DataOpt, OperatorOpt, PidArg, TagOpt, UrlOpt, echo_json
from aonode.errors import BadUsage

cron_app = typer.Typer(help="Timed messages: add, list and stop cron tasks.", no_args_is_help=True)

CronWalletOpt = Annotated[
    Path | None,
    typer.Option("--wallet", help="Your wallet: signs the request and owns the task"),
]


def _cron_post(
    url: str, route: str, params: sign.Tags, data: str, wallet: Path | None, token: str | None
) -> Any:
    """POST a cron request: a signed item (tags = parameters) and/or the operator's token."""
    if wallet is None and not token:
        raise BadUsage("give --wallet (it signs the request) or --operator-token")
    headers = {"authorization": f"Bearer {token}"} if token else {}
    with NodeClient(url) as client:
        if wallet is not None:
            it = sign.item(sign.load_wallet(wallet), data=data.encode(), tags=params)
            headers.update({"content-type": "application/ans104"})
            return client.json("POST", f"/~cron@1.0/{route}", content=it.raw, headers=headers)
        body = dict(params) | ({"data": data} if data else {})
        headers["content-type"] = "application/json"
        return client.json(
            "POST", f"/~cron@1.0/{route}", content=orjson.dumps(body), headers=headers
        )


@cron_app.command("add", context_settings=IDS)
def cron_add(
    process: PidArg,
    every: Annotated[
        str | None, typer.Option(help="Interval: N-milliseconds|seconds|minutes|hours|days")
    ] = None,
    delay: Annotated[str | None, typer.Option(help="First run after this long (same form)")] = None,
    tag: TagOpt = None,
    data: DataOpt = "",
    path: Annotated[
        str | None,
        typer.Option(
            help="Path requested (default: /PID~process@1.0/schedule when tags or data "
            "are given, else /PID~process@1.0/now)"
        ),
    ] = None,
    wallet: CronWalletOpt = None,
    operator_token: OperatorOpt = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Add a task for a process: once (no --every) or every interval; prints the task id.

    With --tag/--data each firing schedules a new message with them on the
    process; without, it computes the process (/now)."""
    pid = sign.check_id(process)
    tags = sign.parse_tags(tag)
    target = path or f"/{pid}~process@1.0/" + ("schedule" if tags or data else "now")
    params: sign.Tags = [("cron-path", target)]
    if every is not None:
        params.append(("interval", every))
    if delay is not None:
        params.append(("delay", delay))
    answer = _cron_post(
        url, "every" if every else "once", params + tags, data, wallet, operator_token
    )
    typer.echo(answer["task"])


@cron_app.command("list")
def cron_list(url: UrlOpt = DEFAULT_URL) -> None:
    """Print the node's cron tasks as JSON."""
    with NodeClient(url) as client:
        echo_json(client.json("GET", "/~cron@1.0/tasks"))


@cron_app.command("stop", context_settings=IDS)
def cron_stop(
    task: Annotated[str, typer.Argument(help="Task id (may start with -)", show_default=False)],
    wallet: CronWalletOpt = None,
    operator_token: OperatorOpt = None,
    url: UrlOpt = DEFAULT_URL,
) -> None:
    """Stop a cron task (signed by its owner, or with the operator's token)."""
    task = sign.check_id(task, "task id")
    echo_json(_cron_post(url, "stop", [("task", task)], "", wallet, operator_token))
