"""The legacy ao Compute Unit's reading routes, served from this node's own results.

aoconnect's legacy ``results()`` (and tools written against a legacy CU) call::

    GET /results/{pid}?from=&to=&sort=ASC|DESC&limit=N
        {"pageInfo": {"hasNextPage"}, "edges": [{"cursor", "node": Result}]}
    GET /state/{pid}     the process's state, as bytes
    GET /cron/{pid}?from=&to=
        the same connection, over the cron firings only

A legacy CU orders its evaluations by (timestamp, ordinate = nonce); here the
nonce is the slot, and slots already are in timestamp order, so a range of
evaluations is a range of slots.  ``from`` is exclusive and ``to`` inclusive,
as the legacy CU's: either a cursor this route returned (base64url JSON
``{"timestamp", "ordinate", "cron", "sort"}``, the legacy CU's cursor fields)
or a bare timestamp in milliseconds.  ``sort`` only orders the page:
``DESC`` starts from the newest slot of the range.  ``limit`` defaults to 25,
the legacy CU's default.  ``Result`` is the shape ``/result/{msg}`` answers
(``Output``, ``Messages``, ``Spawns``, ``Assignments``, ``Error``).

``/state`` is the closest honest equivalent of the legacy CU's ``Memory``
dump: the runtime's own snapshot at the latest slot (a Lua-state image for
``lua@5.3a``, the linear memory for WASM), with the slot in ``ao-slot``.
A legacy CU's ``to`` (state as of an earlier time) is refused: this node
keeps snapshots at intervals, not at every slot.

``/cron`` lists what the legacy CU calls cron evaluations.  This node has no
``Cron-Interval`` process tag; its timed messages come from ``~cron@1.0``
tasks, each firing an item signed by the node's wallet.  So the cron
listing is the results of the slots whose message that wallet signed (the
process's own slot 0 excepted), with timestamps as cursors, all in one page.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from aonode.errors import BadParameter
from aonode.http import process_routes
from aonode.http.request import MAX_INT, Request, parse_int
from aonode.http.responses import Response, json_response
from aonode.http.routing import Match
from aonode.scheduler.assignment import Assignment
from aonode.services import Services

ID_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
DEFAULT_LIMIT = 25  # the legacy CU's default page of results
SORTS = ("ASC", "DESC")


@dataclass(frozen=True, slots=True)
class Bound:
    """One end of a range: a timestamp, and (from a cursor) the slot at it."""

    timestamp: int
    slot: int | None = None


def cursor(a: Assignment, sort: str) -> str:
    doc = {"timestamp": a.header.timestamp, "ordinate": str(a.slot), "cron": None, "sort": sort}
    raw = json.dumps(doc, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _bounded(name: str, value: int) -> int:
    if not 0 <= value <= MAX_INT:
        raise ValueError(f"{name} out of range")
    return value


def parse_bound(name: str, raw: str | None) -> Bound | None:
    """A cursor or a bare millisecond timestamp; empty means no bound."""
    if raw is None or raw == "":
        return None
    try:
        if raw.isdigit():
            return Bound(_bounded(name, int(raw)))
        doc = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        timestamp = _bounded(name, int(doc["timestamp"]))
        ordinate = doc.get("ordinate")
        return Bound(
            timestamp, _bounded(name, int(ordinate)) if ordinate not in (None, "") else None
        )
    except (binascii.Error, ValueError, TypeError, KeyError, AttributeError):
        raise BadParameter(
            f"{name} must be a cursor from a previous page or a timestamp in ms, got {raw!r}",
            code="bad-cursor",
        ) from None


async def _rows(svc: Services, pid: str, first: int, last: int) -> list[Assignment]:
    out: list[Assignment] = []
    while first <= last:
        got = await svc.store.slots(pid, first, last, svc.config.page_limit)
        if not got:
            break
        out += [Assignment.from_stored(r) for r in got]
        first = out[-1].slot + 1
    return out


async def _first_later(svc: Services, pid: str, timestamp: int, last: int) -> int:
    """The lowest slot whose timestamp is after ``timestamp`` (timestamps never decrease)."""
    low, high = 0, last + 1
    while low < high:
        mid = (low + high) // 2
        (row,) = await svc.store.slots(pid, mid, mid, 1)
        if Assignment.from_stored(row).header.timestamp > timestamp:
            high = mid
        else:
            low = mid + 1
    return low


async def _span(svc: Services, pid: str, since: Bound | None, until: Bound | None) -> range:
    """The slots after ``since`` and up to ``until``: slots are in timestamp order, so a
    cursor's slot (or, for a bare timestamp, a binary search) gives each end."""
    latest = await svc.store.latest(pid)
    if latest is None:
        return range(0)
    first, last = 0, latest.slot
    if since is not None:
        if since.slot is not None:
            first = since.slot + 1
        else:
            first = await _first_later(svc, pid, since.timestamp, last)
    if until is not None:
        if until.slot is not None:
            last = min(last, until.slot)
        else:
            last = await _first_later(svc, pid, until.timestamp, last) - 1
    return range(first, last + 1)


def _ends(span: range) -> tuple[int, int]:
    return (span.start, span.stop - 1) if span else (0, -1)


async def _node_of(svc: Services, pid: str, a: Assignment) -> Any:
    process = await svc.scheduling.require_process(pid)
    worker = await svc.processes.worker(process)
    return process_routes.aos_raw(await worker.compute(a.slot))


def pid_of(m: Match) -> str:
    """The process id a legacy route names (any one segment: checked here, a 400)."""
    text = m["pid"]
    if not ID_RE.match(text):
        raise BadParameter(f"{text!r} is not a 43-character base64url id")
    return text


async def results(svc: Services, request: Request, m: Match) -> Response:
    """``GET /results/{pid}``: a page of results (see the module docstring)."""
    pid = pid_of(m)
    await svc.scheduling.require_process(pid)
    sort = request.query.get("sort") or "ASC"
    if sort not in SORTS:
        raise BadParameter(f"sort must be ASC or DESC, got {sort!r}")
    limit = min(
        parse_int("limit", request.query.get("limit"), low=1) or DEFAULT_LIMIT,
        svc.config.page_limit,
    )
    since = parse_bound("from", request.query.get("from"))
    until = parse_bound("to", request.query.get("to"))
    span = await _span(svc, pid, since, until)
    ends = span[:limit] if sort == "ASC" else span[::-1][:limit]
    page = await _rows(svc, pid, min(ends, default=0), max(ends, default=-1))
    if sort == "DESC":
        page.reverse()
    return json_response(
        {
            "pageInfo": {"hasNextPage": len(span) > limit},
            "edges": [
                {"cursor": cursor(a, sort), "node": await _node_of(svc, pid, a)} for a in page
            ],
        }
    )


async def cron(svc: Services, request: Request, m: Match) -> Response:
    """``GET /cron/{pid}``: the results of the ``~cron@1.0`` firings, one page."""
    pid = pid_of(m)
    await svc.scheduling.require_process(pid)
    since = parse_bound("from", request.query.get("from"))
    until = parse_bound("to", request.query.get("to"))
    signer = svc.identity.address  # the wallet ~cron@1.0 signs its firings with
    rows = [
        a
        for a in await _rows(svc, pid, *_ends(await _span(svc, pid, since, until)))
        if a.slot > 0 and a.body.item.owner_address == signer
    ]
    return json_response(
        {
            "pageInfo": {"hasNextPage": False},
            "edges": [
                {"cursor": str(a.header.timestamp), "node": await _node_of(svc, pid, a)}
                for a in rows
            ],
        }
    )


async def state(svc: Services, request: Request, m: Match) -> Response:
    """``GET /state/{pid}``: the runtime's snapshot at the latest slot."""
    pid = pid_of(m)
    if request.query.get("to"):
        raise BadParameter(
            "to is not supported: this node serves the state at the latest slot only",
            code="unsupported-parameter",
        )
    process = await svc.scheduling.require_process(pid)
    worker = await svc.processes.worker(process)
    slot, image = await worker.snapshot()
    return Response(200, image, "application/octet-stream", [("ao-slot", str(slot))])
