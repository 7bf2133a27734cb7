"""The operator's surface: ``GET /metrics`` (Prometheus) and ``GET /~dashboard``.

The dashboard is one static page shipped in the package (``static/dashboard.html``:
no build step, no CDN, so it works on an offline node).  It polls
``GET /~dashboard/state`` about once a second and renders what it gets:
the node (address, mode, store), its processes with their current slot
(rates are derived in the page from successive slots), and the latest
assignments of one process with their hash chain, each link re-checked here
(``chain[n] = sha256(chain[n-1] ‖ id[n])``), and how many outbox deliveries
to other nodes are failing (``push-failures``: open count, newest first).
Live state comes from ``svc.live`` (:mod:`aonode.live`): in a cluster, every
worker's, merged; ``workers`` says how many answered, of how many, and which
one served this request.

Handlers raise :class:`aonode.errors.AONodeError` for bad input, which the
app turns into the usual JSON errors (:mod:`aonode.http.responses`).
"""

from __future__ import annotations

import importlib.resources
import re
import time
from typing import Any, Final

import orjson

from aonode.codec.b64 import b64url_decode, b64url_encode
from aonode.errors import BadParameter
from aonode.http.request import Request
from aonode.http.responses import Response, json_response
from aonode.http.routing import Match
from aonode.ops.metrics import CONTENT_TYPE
from aonode.scheduler.hashchain import next_link
from aonode.services import Services

ID_RE: Final = re.compile(r"^[A-Za-z0-9_-]{43}$")
MAX_PROCESSES: Final = 200
MAX_LATEST: Final = 100
HTML: Final = "text/html; charset=utf-8"


def wants_html(accept: str) -> bool:
    """A browser navigating to ``/`` (``Accept: text/html,…``), not an AO client."""
    return "text/html" in accept.lower()


def page() -> Response:
    html = importlib.resources.files("aonode.http").joinpath("static/dashboard.html").read_bytes()
    return Response(200, html, HTML)


def _bounded(query: dict[str, str], name: str, default: int, most: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(f"{name} must be an integer, got {raw!r}") from None
    if not 1 <= value <= most:
        raise BadParameter(f"{name} must be between 1 and {most}, got {value}")
    return value


async def metrics(svc: Services, request: Request, m: Match) -> Response:
    """``GET /metrics``: the Prometheus exposition."""
    return Response(200, await svc.metrics(), CONTENT_TYPE)


async def dashboard(svc: Services, request: Request, m: Match) -> Response:
    """``GET /~dashboard``: the page."""
    return page()


async def state_route(svc: Services, request: Request, m: Match) -> Response:
    """``GET /~dashboard/state``: what the page polls."""
    query = request.query
    pid = query.get("process") or None
    if pid is not None and not ID_RE.match(pid):
        raise BadParameter(f"process must be a 43-character id, got {pid[:60]!r}")
    doc = await state(
        svc,
        pid,
        limit=_bounded(query, "limit", 20, MAX_PROCESSES),
        latest=_bounded(query, "latest", 10, MAX_LATEST),
    )
    return json_response(doc)


async def state(svc: Services, selected: str | None, *, limit: int, latest: int) -> dict[str, Any]:
    """What the page shows: the node, its busiest/newest processes, one process's chain."""
    if selected is not None:
        await svc.scheduling.require_process(selected)  # 404 for an unknown one
    live = await svc.live.live()
    stored = await svc.store.processes()
    ids = list(dict.fromkeys([*live.actors, *reversed(stored)]))
    total = len(ids)
    ids = ids[:limit]
    if selected is not None and selected not in ids:
        ids.append(selected)
    rows = []
    for pid in ids:
        actor = live.actors.get(pid)
        if actor is not None:
            current, queue = actor
        else:
            last = await svc.store.latest(pid)
            current, queue = (last.slot if last is not None else -1), 0
        computed = live.computed.get(pid)
        rows.append(
            {
                "id": pid,
                "slot": current,
                "queue": queue,
                "computed": computed,
                "live": actor is not None,
            }
        )
    chosen = selected or (ids[0] if ids else None)
    return {
        "address": svc.identity.address,
        "addresses": svc.identity.addresses,
        "url": svc.identity.url,
        "mode": svc.config.mode.value,
        "store": svc.store.url,
        "time": time.time_ns() // 1_000_000,
        "processes": rows,
        "process-count": total,
        "selected": chosen,
        "assignments": await _chain(svc, chosen, latest) if chosen else [],
        "push-failures": live.push_failures,
        "workers": {"answered": live.answered, "of": live.of, "here": live.here},
    }


async def _chain(svc: Services, pid: str, count: int) -> list[dict[str, Any]]:
    """The newest ``count`` durable assignments of ``pid``, newest first, links checked."""
    top = await svc.store.latest(pid)
    if top is None:
        return []
    first = max(0, top.slot - count)  # one more than shown, to check the oldest link
    rows = await svc.store.slots(pid, first, top.slot, count + 1)
    out: list[dict[str, Any]] = []
    previous: bytes | None = b"" if first == 0 else None
    for row in rows:
        a = row.assignment
        try:
            link = next_link(previous, b64url_decode(a.message)) if previous is not None else None
            chain = b64url_decode(a.hash_chain)
        except ValueError:
            link, chain = None, b""
        ok = None if link is None else b64url_encode(link) == a.hash_chain
        stamp = orjson.loads(a.document).get("timestamp")
        out.append(
            {
                "slot": a.slot,
                "message": a.message,
                "hash-chain": a.hash_chain,
                "linked": ok,
                "timestamp": stamp,
            }
        )
        previous = chain
    if len(out) > count:
        out = out[len(out) - count :]
    return out[::-1]
