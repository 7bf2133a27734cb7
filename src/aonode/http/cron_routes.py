"""``/~cron@1.0/{once,every,stop,tasks}`` (API.md, Cron).

Parameters come as query parameters, as a JSON object body (string, number
or boolean values; the body keys keep their case, and become tag names), or
as a signed message (an ANS-104 body or its JSON form, or an httpsig-signed
request: its keys, its ``data`` and its ``target``).

Who asks (see :mod:`aonode.cron`): the signer of a signed message, and the
operator when ``Authorization: Bearer <token>`` matches the node's operator
token.  A signed request takes its parameters from what it signed only: an
unsigned query parameter next to a signature is refused (400), because a
replayed signed body with a changed query would otherwise act for its signer.
Unsigned parameters (query, plain JSON) count only with the operator's token.
"""

from __future__ import annotations

from typing import Any

import orjson

from aonode.codec import httpsig
from aonode.codec.b64 import b64url_encode
from aonode.cron.task import Caller, TaskType
from aonode.errors import BadParameter, InvalidMessage
from aonode.http.request import Request, read_message
from aonode.http.responses import Response, json_response
from aonode.http.routing import Match
from aonode.message import Message
from aonode.services import Services, Timers
from aonode.verifier import Verifier


async def tasks(svc: Services, request: Request, m: Match) -> Response:
    """``GET /~cron@1.0/tasks``: every task, as the listing the node keeps."""
    return json_response(await svc.cron.tasks())


async def once(svc: Services, request: Request, m: Match) -> Response:
    return json_response(await _act(svc, request, "once"))


async def every(svc: Services, request: Request, m: Match) -> Response:
    return json_response(await _act(svc, request, "every"))


async def stop(svc: Services, request: Request, m: Match) -> Response:
    return json_response(await _act(svc, request, "stop"))


async def _act(svc: Services, request: Request, key: str) -> Any:
    """The JSON answer of ``once``, ``every`` or ``stop`` (errors raise)."""
    cron, verifier = svc.cron, svc.verifier
    operator = _operator(cron, request)
    signed, params = await body_params(request, verifier)
    if signed is None or "query" in _derived(signed):  # unsigned, or a covered @query
        params = [*params, *request.query.items()]
    elif request.query:
        raise BadParameter(
            "a signed request takes its parameters from what it signed; move the query "
            f"parameters ({', '.join(sorted(request.query))}) into the signed message",
            code="unsigned-parameter",
        )
    caller = (
        Caller(operator=operator)
        if signed is None
        else Caller(address=signed.signer, operator=operator, message_id=signed.id)
    )
    if key == "stop":
        task = next((v for k, v in reversed(params) if k.lower() == "task"), "")
        if not task:
            raise BadParameter("which task? give task=ID", code="missing-task")
        await cron.cancel(task, caller)
        return {"task": task, "stopped": True}
    kind: TaskType = "once" if key == "once" else "every"
    created = await cron.add(kind, params, caller)
    return {"task": created.id, "owner": created.owner}


def _operator(cron: Timers, request: Request) -> bool:
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    return scheme.lower() == "bearer" and cron.is_operator(token.strip())


def _derived(message: Message) -> dict[str, str]:
    item = message.item
    return dict(item.derived) if isinstance(item, httpsig.HttpSigItem) else {}


async def body_params(
    request: Request, verifier: Verifier
) -> tuple[Message | None, list[tuple[str, str]]]:
    """(the signed message, if the request is one; the parameters it carries)."""
    body = await request.body()
    if httpsig.is_httpsig(request.headers) and request.content_type != "application/ans104":
        return _from_message(await read_message(request, verifier))
    if not body:
        return None, []
    if request.content_type == "application/json":
        obj = orjson.loads(body)  # not JSON: a 400 invalid-json (http/responses.py)
        if not isinstance(obj, dict):
            raise InvalidMessage("a cron body must be a JSON object of keys")
        if "signature_type" not in obj:
            return None, [(str(k), _scalar(k, v)) for k, v in obj.items()]
    return _from_message(await read_message(request, verifier))


def _from_message(message: Message) -> tuple[Message, list[tuple[str, str]]]:
    params = list(message.item.tags)
    if message.item.data:
        params.append(("data", message.item.data.decode("utf-8", "replace")))
    if message.item.target:
        params.append(("target", b64url_encode(message.item.target)))
    return message, params


def _scalar(name: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise InvalidMessage(f"key {name!r} must be a string, number or boolean", code="invalid-json")
