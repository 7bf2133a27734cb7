"""The legacy ao Scheduler Unit's HTTP surface, beside the HyperBEAM-style one.

Tools built for the legacy ao network (aoconnect's legacy mode, compute units,
HyperBEAM reading an ``ao.TN.1`` SU) speak to an SU with these routes
(API.md, "Legacy Scheduler-Unit surface")::

    GET  /                       {"timestamp": "<ms>", "address"}
    GET  /timestamp              {"timestamp": "<ms>", "block_height": "<12 digits>"}
    POST /                       raw ANS-104 (Type Process|Message) → {"timestamp", "id"}
    POST /?process-id=P&assign=M assign stored message M to P → {"timestamp", "id"}
    GET  /{pid}                  a page: from/to (timestamps) or from-nonce/to-nonce
    GET  /{msgid}?process-id=P   one slot as {"message", "assignment"}
    GET  /{pid}/latest           the latest slot, same shape
    GET  /processes/{pid}        the process item, with its block and timestamp

A message or spawn posted (or assigned) here is cranked as the legacy MU
does: after its slot is durable an async push job computes it and delivers
its outbox recursively (:mod:`aonode.push`).  For aoconnect's legacy
``result``/``dryrun`` pointed at this node as its compute unit: ``GET
/result/{msgid}?process-id=P`` (with ``PushFailures`` when the crank could
not deliver some of its ``Messages``) and ``POST /dry-run?process-id=P``.
The legacy CU's readers ``GET /results/{pid}``, ``GET /state/{pid}`` and
``GET /cron/{pid}`` live in :mod:`aonode.http.legacy.cu`.
An empty query value (``?from=&limit=``) counts as absent, as the legacy
clients send it.

Dispatch (the route table, :mod:`aonode.http.routes`): HyperBEAM-style paths always carry a device
(``/~dev@1.0/...``, ``/{pid}~process@1.0/...``) or a key after the process
id (``/{pid}/schedule``, ``/{pid}/slot``, ``/{pid}/compute``...).  The legacy
surface takes only what that leaves free: the root, one bare 43-character id
(``/{id}``, no ``~``), ``/{pid}/latest``, and the fixed words ``timestamp``,
``processes``, ``result``, ``results``, ``state``, ``cron``, ``dry-run``,
``graphql`` (the gateway queries legacy clients make: :mod:`aonode.http.legacy.graphql`).
No path is served by both.

Both surfaces read and write the one schedule through the same services: a slot
posted on either is the same slot, with the same hash chain, on both.
Errors here are legacy-shaped, ``{"error": "text"}``, with the status the
node gives the error everywhere else (400, 404, 405, 413, 503...).
"""

from __future__ import annotations

import re
import time
import weakref
from typing import Any

from aonode.errors import BadParameter, InvalidMessage, NotFound
from aonode.http import process_routes
from aonode.http.request import MAX_INT, Request, dryrun_slot, parse_int, read_message
from aonode.http.responses import Response, json_response
from aonode.http.routing import Match
from aonode.message import Message
from aonode.scheduler import legacy_format
from aonode.scheduler.assignment import Assignment
from aonode.scheduler.legacy_chain import LegacyChains
from aonode.services import Services
from aonode.store import Store

# Legacy hash chains are derived per store and memoised.
_CHAINS: weakref.WeakKeyDictionary[Store, LegacyChains] = weakref.WeakKeyDictionary()

ID_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
DEFAULT_LIMIT = 100  # the legacy SU's default page size
MAX_LIMIT = 1000  # the largest page legacy clients ask for (CU, aoconnect, HyperBEAM)


def _pid(text: str) -> str:
    if not ID_RE.match(text):
        raise BadParameter(f"{text!r} is not a 43-character base64url id")
    return text


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _id_param(request: Request, *names: str, required: bool = False) -> str | None:
    for name in names:
        value = request.query.get(name)
        if value:
            if not ID_RE.match(value):
                raise BadParameter(f"{name} must be a 43-character base64url id, got {value!r}")
            return value
    if required:
        raise BadParameter(f"{names[0]} is required")
    return None


def _int(request: Request, name: str, *, low: int, high: int | None = None) -> int | None:
    # an empty cursor (``?from=``) is no cursor; bounded like every integer (parse_int)
    return parse_int(name, request.query.get(name), low=low, high=high or MAX_INT)


async def info(svc: Services, request: Request, m: Match) -> Response:
    """``GET /``: the node's address and clock."""
    return json_response({"timestamp": str(_now_ms()), "address": svc.identity.address})


async def timestamp(svc: Services, request: Request, m: Match) -> Response:
    height = svc.timestamps.current().height
    return json_response({"timestamp": str(_now_ms()), "block_height": str(height).zfill(12)})


async def process(svc: Services, request: Request, m: Match) -> Response:
    """``GET /processes/{pid}``: the process item, with its block and timestamp."""
    pid = _pid(m["pid"])
    return json_response(legacy_format.process_inner(await _slot(svc, pid, 0)))


async def latest(svc: Services, request: Request, m: Match) -> Response:
    """``GET /{pid}/latest``: the latest slot, as one message."""
    pid = m["pid"]
    top = await svc.store.latest(pid)
    if top is None:
        raise NotFound(f"unknown process {pid}", code="unknown-process")
    return json_response(await _message(svc, await _slot(svc, pid, top.slot)))


def _chains(svc: Services) -> LegacyChains:
    """The store's memo of legacy hash chains (made on first use)."""
    chains = _CHAINS.get(svc.store)
    if chains is None:
        chains = _CHAINS[svc.store] = LegacyChains(svc.store)
    return chains


async def _message(svc: Services, a: Assignment, *, show_anchor: bool = False) -> dict[str, Any]:
    chain = (await _chains(svc).of(a.header.process, [a]))[a.slot]
    return legacy_format.message(a, chain, show_anchor=show_anchor)


async def _slot(svc: Services, pid: str, slot: int) -> Assignment:
    rows = await svc.store.slots(pid, slot, slot, 1)
    if not rows:
        raise NotFound(f"unknown process {pid}", code="unknown-process")
    return Assignment.from_stored(rows[0])


# -- writing ---------------------------------------------------------------


async def post(svc: Services, request: Request, m: Match) -> Response:
    """``POST /``: a raw ANS-104 message or spawn, or an assignment (module docstring)."""
    return json_response(await _post(svc, request))


async def _post(svc: Services, request: Request) -> dict[str, Any]:
    pid = _id_param(request, "process-id")
    assign = _id_param(request, "assign")
    if (pid is None) != (assign is None):
        raise BadParameter("an assignment needs both process-id and assign")
    if pid is not None and assign is not None:
        return await _assign(svc, request, pid, assign)
    message = await read_message(request, svc.verifier, binary_default=True)
    if not message.keys.get("data-protocol"):
        raise InvalidMessage("the message has no Data-Protocol tag", code="missing-data-protocol")
    kind = message.keys.get("type", "")
    if kind not in ("Process", "Message"):
        shown = f"{kind!r}" if kind else "absent"
        raise InvalidMessage(
            f"the Type tag must be Process or Message (it is {shown})", code="unsupported-type"
        )
    assignment = await svc.scheduling.schedule(message, path=message.keys.get("path") or "compute")
    await _crank(svc, assignment)
    return {"timestamp": assignment.header.timestamp, "id": message.id}


async def _crank(svc: Services, assignment: Assignment) -> None:
    """The legacy MU's crank: compute the slot and deliver its outbox, recursively.

    A durable async push job (recorded before the client is answered, resumed
    after a restart, each delivery made once through the push ledger).  A
    spawn is cranked too, as the MU pulls a new process's boot result.
    """
    await svc.pusher.accept(assignment.header.process, assignment.slot)


async def _assign(svc: Services, request: Request, pid: str, assign: str) -> dict[str, Any]:
    if "exclude" in request.query or "base-layer" in request.query:
        raise BadParameter(
            "exclude and base-layer assignments are not supported: assign a message "
            "this node stores (POST /~message@1.0/store)",
            code="unsupported-assignment",
        )
    record = await svc.store.get_message(assign)
    if record is None:
        raise NotFound(
            f"unknown message {assign}: store it first (POST /~message@1.0/store)",
            code="unknown-message",
        )
    message = Message.from_record(record)
    if message.is_process:
        raise BadParameter(f"{assign} is a process; only messages can be assigned")
    assignment = await svc.scheduling.schedule(message, assign_to=pid)
    await _crank(svc, assignment)
    return {"timestamp": assignment.header.timestamp, "id": assignment.id}


# -- reading ---------------------------------------------------------------


async def read(svc: Services, request: Request, m: Match) -> Response:
    """``GET /{id}``: one message of ``process-id``'s schedule, else a process's page."""
    return json_response(await _read(svc, request, m["id"]))


async def _read(svc: Services, request: Request, tx: str) -> Any:
    pid = _id_param(request, "process-id", "proc-id")
    if pid is not None and tx != pid:
        stored = await svc.store.by_message(pid, tx)
        if stored is not None:
            anchor = "show-anchor" in request.query
            return await _message(svc, Assignment.from_stored(stored), show_anchor=anchor)
    if await svc.scheduling.process_message(tx) is not None:
        return await _page(svc, request, tx)
    if pid is not None and await svc.scheduling.process_message(pid) is None:
        raise NotFound(f"unknown process {pid}", code="unknown-process")
    where = f" on process {pid}" if pid else " (give process-id to look up a message)"
    raise NotFound(f"no message or process {tx}{where}", code="unknown-message")


async def _page(svc: Services, request: Request, pid: str) -> dict[str, Any]:
    """A page by timestamp (``from`` exclusive, ``to`` inclusive) or by nonce (= slot)."""
    ceiling = max(MAX_LIMIT, svc.config.page_limit)
    limit = _int(request, "limit", low=1, high=ceiling) or DEFAULT_LIMIT
    cap = min(limit, svc.config.page_limit)
    nonce_mode = "from-nonce" in request.query or "to-nonce" in request.query
    latest = await svc.store.latest(pid)
    last = latest.slot if latest is not None else -1
    if nonce_mode:
        from_nonce = _int(request, "from-nonce", low=-1)
        to_nonce = _int(request, "to-nonce", low=0)
        first = 0 if from_nonce is None else from_nonce + 1
        if to_nonce is not None:
            last = min(last, to_nonce)
        rows = await _rows(svc, pid, first, last, cap + 1)
        more = len(rows) > cap
        rows = rows[:cap]
    else:
        since = _int(request, "from", low=0)
        until = _int(request, "to", low=0)
        # a first page (no from) opens with the process itself, as the legacy SU's does
        first = 0 if since is None else max(1, await _first_after(svc, pid, since, last))
        rows, more = await _by_time(svc, pid, first, last, cap, until)
    return legacy_format.page(
        rows,
        await _chains(svc).of(pid, rows),
        has_next_page=more,
        nonce_mode=nonce_mode,
        show_anchor="show-anchor" in request.query,
    )


async def _rows(svc: Services, pid: str, first: int, last: int, limit: int) -> list[Assignment]:
    if last < first or limit < 1:
        return []
    return [Assignment.from_stored(r) for r in await svc.store.slots(pid, first, last, limit)]


async def _first_after(svc: Services, pid: str, since: int, last: int) -> int:
    """The lowest slot whose timestamp is after ``since`` (timestamps never decrease)."""
    low, high = 0, last + 1
    while low < high:
        mid = (low + high) // 2
        (row,) = await _rows(svc, pid, mid, mid, 1)
        if row.header.timestamp > since:
            high = mid
        else:
            low = mid + 1
    return low


async def _by_time(
    svc: Services, pid: str, first: int, last: int, cap: int, until: int | None
) -> tuple[list[Assignment], bool]:
    """Up to ``cap`` slots from ``first`` with timestamp <= ``until``, and whether more follow.

    Cursors are timestamps and several slots can share one millisecond, so a
    page never ends inside such a run: the next page starts after the cursor
    and would skip the rest of it.  A page is cut before the run instead, or,
    when the run fills the whole page, stretched to hold all of it.
    """
    rows = await _rows(svc, pid, first, last, cap + 1)
    if until is not None:
        rows = [r for r in rows if r.header.timestamp <= until]
    if len(rows) <= cap:
        return rows, False
    boundary = rows[cap].header.timestamp
    kept = [r for r in rows[:cap] if r.header.timestamp < boundary]
    if kept:
        return kept, True
    page = rows[:cap]  # one run of equal timestamps fills the page: take all of it
    nxt = rows[cap].slot
    while True:
        more = await _rows(svc, pid, nxt, last, svc.config.page_limit)
        run = [r for r in more if r.header.timestamp == boundary]
        page += run
        if not more or len(run) < len(more):
            after = len(run) < len(more)
            return page, after and (until is None or more[len(run)].header.timestamp <= until)
        nxt = more[-1].slot + 1


# -- the compute-unit routes aoconnect's legacy mode calls ----------------


async def result(svc: Services, request: Request, m: Match) -> Response:
    """``GET /result/{msgid}?process-id=P``: aoconnect's legacy result."""
    message_id = _pid(m["pid"])
    pid = _id_param(request, "process-id", required=True)
    assert pid is not None
    process = await svc.scheduling.require_process(pid)
    stored = await svc.store.by_message(pid, message_id)
    if stored is None:
        raise NotFound(f"message {message_id} is not on process {pid}", code="unknown-message")
    worker = await svc.processes.worker(process)
    slot = stored.assignment.slot
    raw = process_routes.aos_raw(await worker.compute(slot))
    failed = svc.pusher.failures.of_slot(pid, slot)
    if failed:  # the crank could not deliver some of Messages: say which, and why
        raw["PushFailures"] = [f.to_json() for f in failed]
    return json_response(raw)


async def dryrun(svc: Services, request: Request, m: Match) -> Response:
    """``POST /dry-run?process-id=P``: aoconnect's legacy dry run."""
    pid = _id_param(request, "process-id", required=True)
    assert pid is not None
    process = await svc.scheduling.require_process(pid)
    worker = await svc.processes.worker(process)
    msg = await process_routes.dryrun_message(request, {}, pid)
    async with dryrun_slot(request):
        _, results = await worker.dryrun(msg)
    return json_response(process_routes.aos_raw(results))
