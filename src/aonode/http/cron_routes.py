"""``/~cron@1.0/{once,every,stop,tasks}`` (API.md, Cron).

Parameters come as query parameters, as a JSON object body (string, number
or boolean values; the body keeps the case of its key names, which become tag
names), or as a signed message body (ANS-104 or its JSON form: its tags, its
``data`` and its ``target``).  Both may be given: a query parameter wins over
a body key of the same (case-insensitive) name.
"""

from __future__ import annotations

from typing import Any

import orjson

from aonode.codec.b64 import b64url_encode
from aonode.cron import Cron
from aonode.cron_task import TaskType
from aonode.errors import BadParameter, InvalidMessage, MethodNotAllowed, NotFound
from aonode.http.request import Request, read_message
from aonode.verifier import Verifier

ROUTES = {"once": "POST", "every": "POST", "stop": "POST", "tasks": "GET"}


async def handle(cron: Cron, verifier: Verifier, request: Request, rest: list[str]) -> Any:
    """The JSON answer of one cron route (errors raise)."""
    key = rest[0] if len(rest) == 1 else ""
    method = ROUTES.get(key)
    if method is None:
        raise NotFound(f"no route for {request.path}", code="no-such-route")
    if request.method != method:
        raise MethodNotAllowed(
            f"{request.method} is not allowed on {request.path}; use {method}", allow=(method,)
        )
    if key == "tasks":
        return cron.listing()
    params = [*(await body_params(request, verifier)), *request.query.items()]
    if key == "stop":
        task = next((v for k, v in reversed(params) if k.lower() == "task"), "")
        if not task:
            raise BadParameter("which task? give task=ID", code="missing-task")
        await cron.cancel(task)
        return {"task": task, "stopped": True}
    kind: TaskType = "once" if key == "once" else "every"
    created = await cron.add(kind, params)
    return {"task": created.id}


async def body_params(request: Request, verifier: Verifier) -> list[tuple[str, str]]:
    body = await request.body()
    if not body:
        return []
    if request.content_type == "application/json":
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidMessage(f"body is not valid JSON: {exc}", code="invalid-json") from None
        if not isinstance(obj, dict):
            raise InvalidMessage("a cron body must be a JSON object of keys")
        if "signature_type" not in obj:
            return [(str(k), _scalar(k, v)) for k, v in obj.items()]
    message = await read_message(request, verifier)
    params = list(message.item.tags)
    if message.item.data:
        params.append(("data", message.item.data.decode("utf-8", "replace")))
    if message.item.target:
        params.append(("target", b64url_encode(message.item.target)))
    return params


def _scalar(name: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise InvalidMessage(f"key {name!r} must be a string, number or boolean", code="invalid-json")
