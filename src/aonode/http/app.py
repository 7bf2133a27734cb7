"""The node's HTTP surface: a bare ASGI application (routes only).

Paths follow HyperBEAM's device syntax (``/~scheduler@1.0/schedule``,
``/{pid}~process@1.0/slot``, ``/{pid}/schedule``) so AO tooling that targets
HyperBEAM can target aonode.  Every error leaves as
``{"error": {"code", "message"}}`` with the status from ``http.errors``; a
client error never produces a 5xx and never changes state.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson

from aonode.codec.b64 import b64url_encode
from aonode.errors import (
    AONodeError,
    BadParameter,
    HeadersTooLarge,
    MethodNotAllowed,
    NotFound,
    NotOwner,
    Overloaded,
    PayloadTooLarge,
    QuotaExceeded,
    RequestTimeout,
)
from aonode.http import cron_routes, dashboard, legacy_routes, process_routes
from aonode.http.errors import status_of
from aonode.http.request import MAX_INT, Receive, Request, Scope, dryrun_slot, read_message
from aonode.message import Message
from aonode.node import Node
from aonode.quotas import Quotas
from aonode.scheduler import formats, location

log = logging.getLogger("aonode.http")

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ID_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
JSON = "application/json"


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(
    obj: Any, status: int = 200, headers: list[tuple[str, str]] | None = None
) -> Response:
    return Response(status, orjson.dumps(obj), JSON, headers or [])


def error_response(error: AONodeError) -> Response:
    status = status_of(error)
    headers: list[tuple[str, str]] = []
    if isinstance(error, Overloaded | QuotaExceeded):
        headers.append(("retry-after", str(error.retry_after)))
    if isinstance(error, MethodNotAllowed) and error.allow:
        headers.append(("allow", ", ".join(error.allow)))
    if isinstance(error, PayloadTooLarge | HeadersTooLarge | RequestTimeout):
        headers.append(("connection", "close"))  # the body is left unread: no reuse
    if status == 503 and not headers:
        headers.append(("retry-after", "1"))
    return json_response({"error": {"code": error.code, "message": error.message}}, status, headers)


def _after_assignment(exc: Exception, pid: str, slot: int, message_id: str) -> Response:
    """An error that came after the message took its slot durably: it names the slot.

    The message is on the schedule whatever failed next (computing, delivering);
    a client told only "error" would re-send it blind, so the body says where it is."""
    if isinstance(exc, AONodeError):
        response = error_response(exc)
        doc = orjson.loads(response.body)
    else:
        log.exception("push of %s slot %d failed after the assignment", pid, slot)
        response = Response(500, b"", "application/json")
        doc = {"error": {"code": "internal-error", "message": "the node failed; see its log"}}
    doc.update(process=pid, slot=slot, id=message_id)
    return json_response(doc, response.status, [*response.headers, ("process", pid)])


def _value(value: Any) -> Response:
    """A sub-path's value: text as text, anything else as JSON."""
    if isinstance(value, str):
        return Response(200, value.encode(), "text/plain; charset=utf-8")
    return json_response(value)


def _legacy(reply: legacy_routes.Reply) -> Response:
    if isinstance(reply.doc, bytes):
        return Response(reply.status, reply.doc, reply.content_type, reply.headers)
    return json_response(reply.doc, reply.status, reply.headers)


def _header_bytes(scope: Scope) -> int:
    """The size of the header block as sent: ``name: value\r\n`` per header."""
    return sum(len(k) + len(v) + 4 for k, v in scope.get("headers", ()))


def _allow(request: Request, *methods: str) -> None:
    if request.method not in methods:
        raise MethodNotAllowed(
            f"{request.method} is not allowed on {request.path}; use {' or '.join(methods)}",
            allow=methods,
        )


class App:
    """ASGI callable serving one :class:`Node`."""

    def __init__(self, node: Node) -> None:
        self.node = node
        c = node.config
        self.quotas = Quotas(
            messages=c.quota_messages,
            spawns=c.quota_spawns,
            stored_bytes=c.quota_store_bytes,
            reads=c.quota_reads,
            dryruns_per_client=c.dryruns_per_client,
            dryruns_total=c.dryruns_total,
            max_keys=c.quota_keys,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        config = self.node.config
        outside = scope.get("client") is not None  # None: the node calling itself
        request = Request.from_scope(
            scope,
            receive,
            config.max_body,
            quotas=self.quotas if outside else None,
            body_timeout=config.body_timeout,
        )
        try:
            if (size := _header_bytes(scope)) > config.max_header:
                raise HeadersTooLarge(
                    f"the header block is {size} bytes; at most {config.max_header}"
                )
            if outside and (request.method in ("GET", "HEAD") or request.path == "/graphql"):
                self.quotas.charge_read(request.client)  # unsigned reads (dry runs: later)
            response = await self.route(request)
        except AONodeError as exc:
            response = error_response(exc)
            if isinstance(exc, NotOwner):  # the same request, on the owner node
                qs = scope.get("query_string", b"").decode("latin-1")
                raw = scope.get("raw_path") or quote(scope.get("path", "/")).encode()
                where = exc.location.rstrip("/") + raw.decode("latin-1")
                response.headers.append(("location", f"{where}?{qs}" if qs else where))
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            response = json_response(
                {"error": {"code": "internal-error", "message": "the node failed; see its log"}},
                500,
            )
        self.node.instruments.http_request(request.method, request.path, response.status)
        headers = [
            (b"content-type", response.content_type.encode()),
            (b"content-length", str(len(response.body)).encode()),
        ]
        headers += [(k.encode(), v.encode()) for k, v in response.headers]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- routing ---------------------------------------------------------

    async def route(self, request: Request) -> Response:
        parts = [p for p in request.path.split("/") if p]
        accept = request.headers.get("accept", "")
        if not parts and request.method == "GET" and dashboard.wants_html(accept):
            return Response(*dashboard.page())  # a browser at / gets the dashboard
        if parts and parts[0] in dashboard.HEADS:  # /metrics, /~dashboard
            node, method = self.node, request.method
            return Response(*await dashboard.handle(node, method, parts, request.query))
        if not parts:
            return await self.root(request)
        if legacy_routes.claims(parts):  # the legacy SU's paths (see legacy_routes)
            return _legacy(await legacy_routes.handle(self.node, request, parts))
        head, rest = parts[0], parts[1:]
        if head.startswith("~"):
            return await self.device(request, head[1:], rest, None)
        pid, _, device = head.partition("~")
        if ID_RE.match(pid):
            return await self.device(request, device or "process@1.0", rest, pid)
        if head in ("schedule",) and not rest:
            return await self.device(request, "scheduler@1.0", ["schedule"], None)
        if head == "push" and not rest:  # aoconnect's spawn
            _allow(request, "POST")
            return await self.push(request, None)
        raise NotFound(f"no route for {request.path}", code="no-such-route")

    async def root(self, request: Request) -> Response:
        """``GET /`` (node info) and ``POST /`` (raw ANS-104): the legacy SU's root."""
        return _legacy(await legacy_routes.handle(self.node, request, []))

    async def device(
        self, request: Request, device: str, rest: list[str], pid: str | None
    ) -> Response:
        key = rest[0] if rest else ""
        if device == "meta@1.0":
            return await self.meta(request, rest)
        if device == "message@1.0":
            return await self.messages(request, rest)
        if device == "cron@1.0" and pid is None:
            return json_response(
                await cron_routes.handle(self.node.cron, self.node.verifier, request, rest)
            )
        if device == "process@1.0" and key == "push":
            _allow(request, "POST")
            return await self.push(request, pid)
        if device == "process@1.0" and pid is not None:
            keys, params = process_routes.parse_segments(rest)
            keys = [k for k in keys if k != "as"]
            if keys and keys[0] in process_routes.KEYS:
                return await self.process(request, pid, keys, {**request.query, **params})
        if device in ("scheduler@1.0", "process@1.0"):
            if key == "schedule":
                if request.method == "POST":
                    return await self.post_schedule(request, pid)
                _allow(request, "GET", "POST")
                return await self.get_schedule(request, pid or request.param("target"))
            if key == "slot":
                # aoconnect's results() POSTs a signed item to /{pid}/slot/current
                _allow(request, "GET", *(["POST"] if rest[1:] == ["current"] else []))
                return await self.get_slot(request, pid or request.param("target"), rest[1:])
            if key == "location" and pid is None:
                if request.method == "POST":
                    message = await read_message(request, self.node.verifier)
                    return json_response(await location.accept(self.node.store, message))
                _allow(request, "GET", "POST")
                address = request.param("address") or self.node.address
                return json_response(await location.lookup(self.node.store, address))
            if key == "status" and pid is None:
                _allow(request, "GET")
                return json_response(await self.node.status())
        raise NotFound(f"no route for {request.path}", code="no-such-route")

    # -- ~process@1.0 ----------------------------------------------------

    async def process(
        self, request: Request, pid: str, keys: list[str], params: dict[str, str]
    ) -> Response:
        node = self.node
        process = await node.require_process(pid)
        worker = await node.processes.worker(process)
        key, sub = keys[0], keys[1:]
        if key == "snapshot":
            _allow(request, "GET")
            slot, state = await worker.snapshot()
            return json_response(
                {
                    "process": pid,
                    "slot": slot,
                    "state": b64url_encode(state),
                    "hash": b64url_encode(hashlib.sha256(state).digest()),
                }
            )
        if key == "now":
            _allow(request, "GET")
            slot, results = await worker.now()
            return _value(process_routes.envelope(pid, slot, results, sub))
        _allow(request, "GET", "POST")
        wanted = process_routes.parse_slot(
            params.get("slot") or params.get("compute") or params.get("results")
        )
        if request.method == "POST" and "results" in params and wanted is not None:
            results = await worker.compute(wanted)  # aoconnect's result(s)
            return json_response({"raw": process_routes.aos_raw(results), "slot": wanted})
        if request.method == "POST":
            msg = await process_routes.dryrun_message(request, params, pid)
            async with dryrun_slot(request):
                at, results = await worker.dryrun(msg)
            doc = process_routes.envelope(pid, at, results, sub)
            if isinstance(doc, dict):
                doc["raw"] = process_routes.aos_raw(results)
            return _value(doc)
        if wanted is None:
            slot, results = await worker.now()
        else:
            slot, results = wanted, await worker.compute(wanted)
        return _value(process_routes.envelope(pid, slot, results, sub))

    # -- ~push@1.0 -------------------------------------------------------

    async def push(self, request: Request, pid: str | None) -> Response:
        """Schedule the body (or take ``?slot=N``), compute it, deliver its outbox."""
        node = self.node
        most = node.config.push_max_depth
        depth = request.int_param("result-depth", high=most)
        result_depth = 1 if depth is None else depth
        slot = request.int_param("slot")
        message_id = None
        mode = (request.param("push-mode") or "sync").lower()
        if slot is None:
            message = await read_message(request, node.verifier)
            mode = (request.param("push-mode") or message.keys.get("push-mode") or "sync").lower()
            assignment = await node.schedule(message, query_target=pid)
            pid, slot, message_id = assignment.header.process, assignment.slot, message.id
            if message.is_process:  # a spawn: nothing to push yet
                return json_response(
                    {"process": pid, "slot": slot, "id": message_id}, headers=[("process", pid)]
                )
        elif pid is None:
            raise BadParameter(
                "push ?slot=N needs a process: /{pid}~process@1.0/push", code="missing-target"
            )
        await node.require_process(pid)
        if mode not in ("sync", "async"):
            raise BadParameter(f"push-mode must be sync or async, got {mode!r}")
        if mode == "async":
            await node.push_async(pid, slot)  # durable before the 202
            return json_response(
                {"process": pid, "slot": slot, "id": message_id, "push-mode": "async"},
                202,
                [("process", pid)],
            )
        # push-depth / push-budget: another node continuing its walk here (push/remote.py)
        try:
            tree = await node.pusher.push(
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

    # -- ~meta@1.0 -------------------------------------------------------

    async def meta(self, request: Request, rest: list[str]) -> Response:
        _allow(request, "GET")
        if rest == ["info", "address"]:
            return Response(200, self.node.address.encode(), "text/plain")
        if rest in (["info"], []):
            return json_response({"address": self.node.address, "addresses": self.node.addresses})
        raise NotFound(f"no route for {request.path}", code="no-such-route")

    # -- ~message@1.0 ----------------------------------------------------

    async def messages(self, request: Request, rest: list[str]) -> Response:
        if rest == ["store"]:
            _allow(request, "POST")
            message = await read_message(request, self.node.verifier, store=True)
            await self.node.store.put_message(message.record())
            return json_response({"id": message.id})
        if len(rest) == 1 and ID_RE.match(rest[0]):
            _allow(request, "GET")
            record = await self.node.store.get_message(rest[0])
            if record is None:
                raise NotFound(f"unknown message {rest[0]}", code="unknown-message")
            stored = Message.from_record(record)
            if "octet-stream" in request.headers.get("accept", ""):
                return Response(200, stored.item.data, "application/octet-stream")
            return json_response(stored.to_json())
        raise NotFound(f"no route for {request.path}", code="no-such-route")

    # -- ~scheduler@1.0 --------------------------------------------------

    async def post_schedule(self, request: Request, pid: str | None) -> Response:
        message = await read_message(request, self.node.verifier)
        path = message.keys.get("path") or "compute"
        target = pid or request.param("target")
        assignment = await self.node.schedule(message, path=path, query_target=target)
        return Response(
            200, assignment.json_bytes(), JSON, [("process", assignment.header.process)]
        )

    async def get_schedule(self, request: Request, pid: str | None) -> Response:
        if not pid:
            raise BadParameter(
                "which process? give /{pid}/schedule or ?target=PID", code="missing-target"
            )
        first = request.int_param("from") or 0
        last = request.int_param("to")
        limit = request.int_param("limit")
        if last is not None and last < first:
            raise BadParameter(f"to ({last}) is below from ({first})")
        page = await self.node.schedule_page(pid, first, last, limit)
        block = self.node.timestamps.current()
        accept = request.param("accept") or ""
        if formats.AOS2 in accept:
            return json_response(
                formats.aos2_page(pid, page.assignments, continues=page.continues, block=block)
            )
        return json_response(
            formats.page_json(
                pid, page.assignments, continues=page.continues, next_slot=page.next, block=block
            )
        )

    async def get_slot(self, request: Request, pid: str | None, rest: list[str]) -> Response:
        if not pid:
            raise BadParameter(
                "which process? give /{pid}/slot or ?target=PID", code="missing-target"
            )
        info = await self.node.slot_info(pid)
        if rest == ["current"]:
            return Response(200, str(info["current"]).encode(), "text/plain")
        if rest:
            raise NotFound(f"no route for {request.path}", code="no-such-route")
        return json_response(info)
