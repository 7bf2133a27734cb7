"""The HyperBEAM-style routes: ``~scheduler@1.0``, ``~push@1.0``, ``~meta@1.0``, ``~message@1.0``.

Paths follow HyperBEAM's device syntax (``/~scheduler@1.0/schedule``,
``/{pid}~process@1.0/slot``, ``/{pid}/schedule``) so AO tooling that targets
HyperBEAM can target aonode; :mod:`aonode.http.routes` declares which path
reaches which handler here.  Handlers raise for bad input; the app turns every
error into its response (:mod:`aonode.http.responses`).
"""

from __future__ import annotations

from typing import Any

import orjson

from aonode.errors import BadParameter, NotFound
from aonode.http.request import MAX_INT, Request, read_message
from aonode.http.responses import JSON, Response, error_response, json_response
from aonode.http.routing import Match
from aonode.message import Message
from aonode.scheduler import formats, location
from aonode.services import Services

# -- ~scheduler@1.0 --------------------------------------------------------


async def post_schedule(svc: Services, request: Request, m: Match) -> Response:
    message = await read_message(request, svc.verifier)
    path = message.keys.get("path") or "compute"
    target = m.get("pid") or request.param("target")
    assignment = await svc.scheduling.schedule(message, path=path, query_target=target)
    return Response(200, assignment.json_bytes(), JSON, [("process", assignment.header.process)])


async def get_schedule(svc: Services, request: Request, m: Match) -> Response:
    pid = m.get("pid") or request.param("target")
    if not pid:
        raise BadParameter(
            "which process? give /{pid}/schedule or ?target=PID", code="missing-target"
        )
    first = request.int_param("from") or 0
    last = request.int_param("to")
    limit = request.int_param("limit")
    if last is not None and last < first:
        raise BadParameter(f"to ({last}) is below from ({first})")
    page = await svc.scheduling.schedule_page(pid, first, last, limit)
    block = svc.timestamps.current()
    assignments = list(page.assignments)
    accept = request.param("accept") or ""
    if formats.AOS2 in accept:
        return json_response(
            formats.aos2_page(pid, assignments, continues=page.continues, block=block)
        )
    return json_response(
        formats.page_json(
            pid, assignments, continues=page.continues, next_slot=page.next, block=block
        )
    )


async def _slot_info(svc: Services, request: Request, m: Match) -> dict[str, Any]:
    pid = m.get("pid") or request.param("target")
    if not pid:
        raise BadParameter("which process? give /{pid}/slot or ?target=PID", code="missing-target")
    return await svc.scheduling.slot_info(pid)


async def get_slot(svc: Services, request: Request, m: Match) -> Response:
    return json_response(await _slot_info(svc, request, m))


async def slot_current(svc: Services, request: Request, m: Match) -> Response:
    """The current slot as text (aoconnect's ``results()`` POSTs here)."""
    info = await _slot_info(svc, request, m)
    return Response(200, str(info["current"]).encode(), "text/plain")


async def post_location(svc: Services, request: Request, m: Match) -> Response:
    message = await read_message(request, svc.verifier)
    return json_response(await location.accept(svc.store, message))


async def get_location(svc: Services, request: Request, m: Match) -> Response:
    address = request.param("address") or svc.identity.address
    return json_response(await location.lookup(svc.store, address))


async def status(svc: Services, request: Request, m: Match) -> Response:
    return json_response(await svc.status())


# -- ~meta@1.0 -------------------------------------------------------------


async def meta(svc: Services, request: Request, m: Match) -> Response:
    return json_response({"address": svc.identity.address, "addresses": svc.identity.addresses})


async def meta_address(svc: Services, request: Request, m: Match) -> Response:
    return Response(200, svc.identity.address.encode(), "text/plain")


# -- ~message@1.0 ----------------------------------------------------------


async def store_message(svc: Services, request: Request, m: Match) -> Response:
    message = await read_message(request, svc.verifier, store=True)
    await svc.store.put_message(message.record())
    return json_response({"id": message.id})


async def get_message(svc: Services, request: Request, m: Match) -> Response:
    record = await svc.store.get_message(m["id"])
    if record is None:
        raise NotFound(f"unknown message {m['id']}", code="unknown-message")
    stored = Message.from_record(record)
    if "octet-stream" in request.headers.get("accept", ""):
        return Response(200, stored.item.data, "application/octet-stream")
    return json_response(stored.to_json())


# -- ~push@1.0 -------------------------------------------------------------


def _after_assignment(exc: Exception, pid: str, slot: int, message_id: str) -> Response:
    """An error that came after the message took its slot durably: it names the slot.

    The message is on the schedule whatever failed next (computing, delivering);
    a client told only "error" would re-send it blind, so the body says where it is."""
    response = error_response(exc, target=f"push of {pid} slot {slot}")
    doc = orjson.loads(response.body)
    doc.update(process=pid, slot=slot, id=message_id)
    return json_response(doc, response.status, [*response.headers, ("process", pid)])


async def push(svc: Services, request: Request, m: Match) -> Response:
    """Schedule the body (or take ``?slot=N``), compute it, deliver its outbox."""
    pid = m.get("pid")
    most = svc.config.push_max_depth
    depth = request.int_param("result-depth", high=most)
    result_depth = 1 if depth is None else depth
    slot = request.int_param("slot")
    message_id = None
    mode = (request.param("push-mode") or "sync").lower()
    if slot is None:
        message = await read_message(request, svc.verifier)
        mode = (request.param("push-mode") or message.keys.get("push-mode") or "sync").lower()
        assignment = await svc.scheduling.schedule(message, query_target=pid)
        pid, slot, message_id = assignment.header.process, assignment.slot, message.id
        if message.is_process:  # a spawn: nothing to push yet
            return json_response(
                {"process": pid, "slot": slot, "id": message_id}, headers=[("process", pid)]
            )
    elif pid is None:
        raise BadParameter(
            "push ?slot=N needs a process: /{pid}~process@1.0/push", code="missing-target"
        )
    await svc.scheduling.require_process(pid)
    if mode not in ("sync", "async"):
        raise BadParameter(f"push-mode must be sync or async, got {mode!r}")
    if mode == "async":
        await svc.pusher.accept(pid, slot)  # durable before the 202
        return json_response(
            {"process": pid, "slot": slot, "id": message_id, "push-mode": "async"},
            202,
            [("process", pid)],
        )
    # push-depth / push-budget: another node continuing its walk here (push/remote.py)
    try:
        tree = await svc.pusher.push(
            pid,
            slot,
            result_depth=result_depth,
            depth=request.int_param("push-depth", high=most) or 0,
            budget=request.int_param("push-budget", high=MAX_INT),
        )
    except Exception as exc:
        if message_id is None:
            raise
        return _after_assignment(exc, pid, slot, message_id)
    tree["id"] = message_id
    return json_response(tree, headers=[("process", pid)])
