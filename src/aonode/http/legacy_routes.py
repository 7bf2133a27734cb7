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
``GET /cron/{pid}`` live in :mod:`legacy_cu`.
An empty query value (``?from=&limit=``) counts as absent, as the legacy
clients send it.

Dispatch (see :func:`claims`): HyperBEAM-style paths always carry a device
(``/~dev@1.0/...``, ``/{pid}~process@1.0/...``) or a key after the process
id (``/{pid}/schedule``, ``/{pid}/slot``, ``/{pid}/compute``...).  The legacy
surface takes only what that leaves free: the root, one bare 43-character id
(``/{id}``, no ``~``), ``/{pid}/latest``, and the fixed words ``timestamp``,
``processes``, ``result``, ``results``, ``state``, ``cron``, ``dry-run``,
``graphql`` (the gateway queries legacy clients make: :mod:`graphql_gateway`).
No path is served by both.

Both surfaces read and write the one schedule through :class:`Node`: a slot
posted on either is the same slot, with the same hash chain, on both.
Errors here are legacy-shaped, ``{"error": "text"}``, with the status the
node gives the error everywhere else (400, 404, 405, 413, 503...).
"""

from __future__ import annotations

import re
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from aonode.errors import (
    AONodeError,
    BadParameter,
    InvalidMessage,
    MethodNotAllowed,
    NotFound,
    NotOwner,
    Overloaded,
    QuotaExceeded,
)
from aonode.http import graphql_gateway, legacy_cu, process_routes
from aonode.http.errors import status_of
from aonode.http.request import MAX_INT, Request, dryrun_slot, parse_int, read_message
from aonode.message import Message
from aonode.node import Node
from aonode.scheduler import legacy_format
from aonode.scheduler.assignment import Assignment
from aonode.scheduler.legacy_chain import LegacyChains

# Legacy hash chains are derived per node (from its store) and memoised.
_CHAINS: weakref.WeakKeyDictionary[Node, LegacyChains] = weakref.WeakKeyDictionary()

ID_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
DEFAULT_LIMIT = 100  # the legacy SU's default page size
MAX_LIMIT = 1000  # the largest page legacy clients ask for (CU, aoconnect, HyperBEAM)
WORDS = {("timestamp",), ("dry-run",), ("graphql",)}
PREFIXES = {"processes", "result", "results", "state", "cron"}


@dataclass(frozen=True, slots=True)
class Reply:
    """``doc`` is JSON, or ``bytes`` sent as they are, typed ``content_type``."""

    status: int
    doc: Any
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/octet-stream"


def claims(parts: list[str]) -> bool:
    """Whether the legacy surface serves this path (split on ``/``, empties dropped)."""
    if not parts:
        return True
    if len(parts) == 1:
        return tuple(parts) in WORDS or bool(ID_RE.match(parts[0]))
    if len(parts) == 2:
        return parts[0] in PREFIXES or (bool(ID_RE.match(parts[0])) and parts[1] == "latest")
    return False


async def handle(node: Node, request: Request, parts: list[str]) -> Reply:
    """Serve a claimed path; every error but a redirect leaves legacy-shaped."""
    try:
        if parts == ["graphql"]:  # the gateway's GraphQL, for spawn and scheduler-utils
            _allow(request, "POST")
            answer = await graphql_gateway.answer(node, await request.body())
            return Reply(answer.status, answer.body, content_type="application/json")
        if len(parts) == 2 and parts[0] == "state":
            _allow(request, "GET")
            image, extra = await legacy_cu.state(node, request, _pid(parts[1]))
            return Reply(200, image, extra)
        return Reply(200, await _dispatch(node, request, parts))
    except NotOwner:
        raise  # the app answers 307 + Location to the owner, as on every route
    except AONodeError as exc:
        headers: list[tuple[str, str]] = []
        if isinstance(exc, Overloaded | QuotaExceeded):
            headers.append(("retry-after", str(exc.retry_after)))
        if isinstance(exc, MethodNotAllowed) and exc.allow:
            headers.append(("allow", ", ".join(exc.allow)))
        return Reply(status_of(exc), {"error": exc.message}, headers)


def _allow(request: Request, method: str) -> None:
    if request.method != method:
        raise MethodNotAllowed(
            f"{request.method} is not allowed on {request.path}; use {method}", allow=(method,)
        )


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


async def _dispatch(node: Node, request: Request, parts: list[str]) -> Any:
    if not parts:
        if request.method == "POST":
            return await _post(node, request)
        _allow(request, "GET")
        return {"timestamp": str(_now_ms()), "address": node.address}
    if len(parts) == 1 and parts[0] == "dry-run":
        _allow(request, "POST")
        return await _dryrun(node, request)
    _allow(request, "GET")
    head = parts[0]
    if parts == ["timestamp"]:
        height = node.timestamps.current().height
        return {"timestamp": str(_now_ms()), "block_height": str(height).zfill(12)}
    if head in PREFIXES:
        if not ID_RE.match(parts[1]):
            raise BadParameter(f"{parts[1]!r} is not a 43-character base64url id")
        if head == "processes":
            return legacy_format.process_inner(await _slot(node, parts[1], 0))
        if head == "results":
            return await legacy_cu.results(node, request, parts[1])
        if head == "cron":
            return await legacy_cu.cron(node, request, parts[1])
        return await _result(node, request, parts[1])
    if parts[1:] == ["latest"]:
        latest = await node.store.latest(head)
        if latest is None:
            raise NotFound(f"unknown process {head}", code="unknown-process")
        return await _message(node, await _slot(node, head, latest.slot))
    return await _read(node, request, head)


def _chains(node: Node) -> LegacyChains:
    """The node's memo of legacy hash chains (made on first use)."""
    chains = _CHAINS.get(node)
    if chains is None:
        chains = _CHAINS[node] = LegacyChains(node.store)
    return chains


async def _message(node: Node, a: Assignment, *, show_anchor: bool = False) -> dict[str, Any]:
    chain = (await _chains(node).of(a.header.process, [a]))[a.slot]
    return legacy_format.message(a, chain, show_anchor=show_anchor)


async def _slot(node: Node, pid: str, slot: int) -> Assignment:
    rows = await node.store.slots(pid, slot, slot, 1)
    if not rows:
        raise NotFound(f"unknown process {pid}", code="unknown-process")
    return Assignment.from_stored(rows[0])


# -- writing ---------------------------------------------------------------


async def _post(node: Node, request: Request) -> dict[str, Any]:
    pid = _id_param(request, "process-id")
    assign = _id_param(request, "assign")
    if (pid is None) != (assign is None):
        raise BadParameter("an assignment needs both process-id and assign")
    if pid is not None and assign is not None:
        return await _assign(node, request, pid, assign)
    message = await read_message(request, node.verifier, binary_default=True)
    if not message.keys.get("data-protocol"):
        raise InvalidMessage("the message has no Data-Protocol tag", code="missing-data-protocol")
    kind = message.keys.get("type", "")
    if kind not in ("Process", "Message"):
        shown = f"{kind!r}" if kind else "absent"
        raise InvalidMessage(
            f"the Type tag must be Process or Message (it is {shown})", code="unsupported-type"
        )
    assignment = await node.schedule(message, path=message.keys.get("path") or "compute")
    await _crank(node, assignment)
    return {"timestamp": assignment.header.timestamp, "id": message.id}


async def _crank(node: Node, assignment: Assignment) -> None:
    """The legacy MU's crank: compute the slot and deliver its outbox, recursively.

    A durable async push job (recorded before the client is answered, resumed
    after a restart, each delivery made once through the push ledger).  A
    spawn is cranked too, as the MU pulls a new process's boot result.
    """
    await node.push_async(assignment.header.process, assignment.slot)


async def _assign(node: Node, request: Request, pid: str, assign: str) -> dict[str, Any]:
    if "exclude" in request.query or "base-layer" in request.query:
        raise BadParameter(
            "exclude and base-layer assignments are not supported: assign a message "
            "this node stores (POST /~message@1.0/store)",
            code="unsupported-assignment",
        )
    record = await node.store.get_message(assign)
    if record is None:
        raise NotFound(
            f"unknown message {assign}: store it first (POST /~message@1.0/store)",
            code="unknown-message",
        )
    message = Message.from_record(record)
    if message.is_process:
        raise BadParameter(f"{assign} is a process; only messages can be assigned")
    assignment = await node.schedule(message, assign_to=pid)
    await _crank(node, assignment)
    return {"timestamp": assignment.header.timestamp, "id": assignment.id}


# -- reading ---------------------------------------------------------------


async def _read(node: Node, request: Request, tx: str) -> Any:
    """``GET /{id}``: one message of ``process-id``'s schedule, else a process's page."""
    pid = _id_param(request, "process-id", "proc-id")
    if pid is not None and tx != pid:
        stored = await node.store.by_message(pid, tx)
        if stored is not None:
            anchor = "show-anchor" in request.query
            return await _message(node, Assignment.from_stored(stored), show_anchor=anchor)
    if await node.process_message(tx) is not None:
        return await _page(node, request, tx)
    if pid is not None and await node.process_message(pid) is None:
        raise NotFound(f"unknown process {pid}", code="unknown-process")
    where = f" on process {pid}" if pid else " (give process-id to look up a message)"
    raise NotFound(f"no message or process {tx}{where}", code="unknown-message")


async def _page(node: Node, request: Request, pid: str) -> dict[str, Any]:
    """A page by timestamp (``from`` exclusive, ``to`` inclusive) or by nonce (= slot)."""
    ceiling = max(MAX_LIMIT, node.config.page_limit)
    limit = _int(request, "limit", low=1, high=ceiling) or DEFAULT_LIMIT
    cap = min(limit, node.config.page_limit)
    nonce_mode = "from-nonce" in request.query or "to-nonce" in request.query
    latest = await node.store.latest(pid)
    last = latest.slot if latest is not None else -1
    if nonce_mode:
        from_nonce = _int(request, "from-nonce", low=-1)
        to_nonce = _int(request, "to-nonce", low=0)
        first = 0 if from_nonce is None else from_nonce + 1
        if to_nonce is not None:
            last = min(last, to_nonce)
        rows = await _rows(node, pid, first, last, cap + 1)
        more = len(rows) > cap
        rows = rows[:cap]
    else:
        since = _int(request, "from", low=0)
        until = _int(request, "to", low=0)
        # a first page (no from) opens with the process itself, as the legacy SU's does
        first = 0 if since is None else max(1, await _first_after(node, pid, since, last))
        rows, more = await _by_time(node, pid, first, last, cap, until)
    return legacy_format.page(
        rows,
        await _chains(node).of(pid, rows),
        has_next_page=more,
        nonce_mode=nonce_mode,
        show_anchor="show-anchor" in request.query,
    )


async def _rows(node: Node, pid: str, first: int, last: int, limit: int) -> list[Assignment]:
    if last < first or limit < 1:
        return []
    return [Assignment.from_stored(r) for r in await node.store.slots(pid, first, last, limit)]


async def _first_after(node: Node, pid: str, since: int, last: int) -> int:
    """The lowest slot whose timestamp is after ``since`` (timestamps never decrease)."""
    low, high = 0, last + 1
    while low < high:
        mid = (low + high) // 2
        (row,) = await _rows(node, pid, mid, mid, 1)
        if row.header.timestamp > since:
            high = mid
        else:
            low = mid + 1
    return low


async def _by_time(
    node: Node, pid: str, first: int, last: int, cap: int, until: int | None
) -> tuple[list[Assignment], bool]:
    """Up to ``cap`` slots from ``first`` with timestamp <= ``until``, and whether more follow.

    Cursors are timestamps and several slots can share one millisecond, so a
    page never ends inside such a run: the next page starts after the cursor
    and would skip the rest of it.  A page is cut before the run instead, or,
    when the run fills the whole page, stretched to hold all of it.
    """
    rows = await _rows(node, pid, first, last, cap + 1)
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
        more = await _rows(node, pid, nxt, last, node.config.page_limit)
        run = [r for r in more if r.header.timestamp == boundary]
        page += run
        if not more or len(run) < len(more):
            after = len(run) < len(more)
            return page, after and (until is None or more[len(run)].header.timestamp <= until)
        nxt = more[-1].slot + 1


# -- the compute-unit routes aoconnect's legacy mode calls ----------------


async def _result(node: Node, request: Request, message_id: str) -> Any:
    pid = _id_param(request, "process-id", required=True)
    assert pid is not None
    process = await node.require_process(pid)
    stored = await node.store.by_message(pid, message_id)
    if stored is None:
        raise NotFound(f"message {message_id} is not on process {pid}", code="unknown-message")
    worker = await node.processes.worker(process)
    slot = stored.assignment.slot
    raw = process_routes.aos_raw(await worker.compute(slot))
    failed = node.pusher.failures.of_slot(pid, slot)
    if failed:  # the crank could not deliver some of Messages: say which, and why
        raw["PushFailures"] = [f.to_json() for f in failed]
    return raw


async def _dryrun(node: Node, request: Request) -> Any:
    pid = _id_param(request, "process-id", required=True)
    assert pid is not None
    process = await node.require_process(pid)
    worker = await node.processes.worker(process)
    msg = await process_routes.dryrun_message(request, {}, pid)
    async with dryrun_slot(request):
        _, results = await worker.dryrun(msg)
    return process_routes.aos_raw(results)
