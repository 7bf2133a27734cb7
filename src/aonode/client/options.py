"""The options and arguments the client commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

# Ids are base64url and may start with "-": such a word is an argument, not an option.
IDS: dict[str, Any] = {"ignore_unknown_options": True}

UrlOpt = Annotated[str, typer.Option("--url", envvar="AONODE_URL", help="Node URL")]
WalletOpt = Annotated[
    Path,
    typer.Option("--wallet", help="Your wallet (JWK) that signs; required", show_default=False),
]
TagOpt = Annotated[list[str] | None, typer.Option("--tag", help="Tag K=V; repeatable")]
DataOpt = Annotated[str, typer.Option("--data", help="Message data")]
PidArg = Annotated[str, typer.Argument(help="Process id (may start with -)", show_default=False)]

OperatorOpt = Annotated[
    str | None,
    typer.Option(
        envvar="AONODE_OPERATOR_TOKEN",
        help="The node operator's token, sent as Authorization: Bearer",
    ),
]


def echo_json(value: Any) -> None:
    typer.echo(orjson.dumps(value).decode())
