"""``~cron@1.0``: requests the node sends to itself, once or every interval.

A task names a ``cron-path`` and optional message keys.  A firing resolves
the path inside the node exactly as an HTTP request to it would: it is an
in-process ASGI request to the node's own app (no network hop), so every
route behaves identically.  Without message keys a firing is ``GET
cron-path``; with keys it is ``POST cron-path`` whose body is a fresh ANS-104
item signed by the node's wallet, carrying the keys as tags (``data`` becomes
the item's data, ``target`` its target, else the process id in the path),
with a random anchor so every firing is a new message.

Durability (store records of kind ``cron``, JSON values): a task is stored
before it is acknowledged.  A ``once`` task's record is deleted (durably)
*before* it runs, so it fires at most once: a crash during that run loses the
run rather than repeating it.  An ``every`` task's record carries its next run
time, written before each firing; a tick whose time passed while the node was
down (or busy) is coalesced: the task fires once, and its next run is the
first tick of its original phase after now — never a burst.  A tick that
finds the previous run of the same task still in flight is skipped.

One asyncio timer loop serves every task.  Task ids are 32 random bytes,
base64url (two identical operator requests make two tasks), or derived from
the signed request that made the task (below).

Who may do what (DESIGN.md invariant 9; README "Cron: who may create and stop
tasks").  A firing with message keys is signed by the node's wallet, and
processes trust the node as their ``Authority``, so the node only signs for a
known owner: a task is created by a signed request (its signer owns the task)
or by the operator (a bearer token); anything else is 401.  A task whose
firing sends a message must reach only processes its owner owns (else 403);
the operator may send anywhere.  Only the owner or the operator stops a task.
Caps: tasks per owner (the operator has none) and per node (429 with
``Retry-After``), and a shortest ``every`` interval (400).

A signed request could be replayed by whoever saw it, so the id of the task it
makes derives from the request's id and is kept (record kind ``cron-used``):
the same request again answers the same task while it exists, and 409
``replayed-request`` after it fired or was stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from aonode.cron.task import (
    KIND,
    USED,
    Caller,
    CronTask,
    Dispatch,
    RunStatus,
    TaskType,
    firing_request,
    new_task,
    next_due,
    now_ms,
    reached_processes,
    signed_task_id,
)
from aonode.errors import AccessDenied, Conflict, NotFound, TooManyTasks, Unauthenticated
from aonode.store import RecordStore
from aonode.store.base import Record
from aonode.wallet import Wallet

log = logging.getLogger("aonode.cron")

_MAX_WAIT = 3600.0  # the loop re-checks at least hourly, whatever the intervals
_RETRY_MS = 1000  # a firing the store could not record is retried this much later
_FINISHED_KEPT = 256  # fired once-tasks still listed (memory only)

# a process id → its owner's address (None: unknown process)
OwnerOf = Callable[[str], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class CronPolicy:
    """Who may use cron and how much (NodeConfig's ``operator_token`` and ``cron_*``)."""

    operator_token: str | None = None
    max_per_owner: int = 100
    max_tasks: int = 10_000
    min_interval_ms: int = 10_000


async def _no_owner(pid: str) -> str | None:
    return None


class Cron:
    """The node's cron tasks and the one timer loop that fires them."""

    def __init__(
        self,
        store: RecordStore,
        wallet: Wallet,
        policy: CronPolicy | None = None,
        owner_of: OwnerOf = _no_owner,
    ) -> None:
        self._store = store
        self._wallet = wallet
        self.policy = policy or CronPolicy()
        self._owner_of = owner_of
        self._dispatch: Dispatch | None = None
        self._tasks: dict[str, CronTask] = {}
        self._finished: dict[str, CronTask] = {}  # fired once-tasks, listed until dropped
        self._last: dict[str, RunStatus] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._write = asyncio.Lock()
        self._wake = asyncio.Event()
        self._changed = asyncio.Condition()
        self._loop: asyncio.Task[None] | None = None
        self._observers: list[Callable[[CronTask, RunStatus], None]] = []
        self.wakeups = 0

    # -- lifecycle -------------------------------------------------------

    async def start(self, dispatch: Dispatch) -> None:
        """Load the stored tasks and start the timer loop; firings go to ``dispatch``."""
        self._dispatch = dispatch
        for record in await self._store.records(KIND):
            try:
                task = CronTask.from_bytes(record.value)
            except (ValueError, KeyError, TypeError):
                log.warning("cron: unreadable task record %s skipped", record.key)
                continue
            self._tasks[task.id] = task
        if self._tasks:
            log.info("cron: %d task(s) resumed", len(self._tasks))
        self._loop = asyncio.create_task(self._run_loop(), name="cron")

    async def stop(self) -> None:
        """Stop the loop and let the runs in flight finish (no new ones start)."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        if self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    # -- tasks -----------------------------------------------------------

    def is_operator(self, token: str) -> bool:
        """``token`` is the operator's (a constant-time compare; no token set: never)."""
        want = self.policy.operator_token
        return want is not None and hmac.compare_digest(token.encode(), want.encode())

    async def add(
        self, type_: TaskType, params: Iterable[tuple[str, str]], caller: Caller
    ) -> CronTask:
        """Create and durably store a task; it is then armed.

        401 for an anonymous caller, 400 for bad parameters, 403 when its firing
        would message a process the caller does not own, 429 past a cap."""
        owner = caller.owner
        if owner is None:
            raise Unauthenticated(
                "creating a cron task needs a signed request (ANS-104 or httpsig) "
                "or the operator's token (Authorization: Bearer TOKEN)"
            )
        policy = self.policy
        task_id = signed_task_id(type_, caller.message_id) if caller.message_id else None
        task = new_task(
            type_,
            params,
            now=now_ms(),
            owner=owner,
            min_interval_ms=policy.min_interval_ms,
            task_id=task_id,
        )
        if task.keys and not caller.operator:
            await self._check_reach(task, owner)
        async with self._write:
            if task_id is not None:
                made = self._tasks.get(task_id) or self._finished.get(task_id)
                if made is not None:
                    return made  # the same signed request again: the same task
                if await self._store.get_record(USED, task_id) is not None:
                    raise Conflict(
                        f"this signed request already made task {task_id}, which has "
                        "fired or was stopped; sign a new request for a new task",
                        code="replayed-request",
                    )
            mine = [t for t in self._tasks.values() if t.owner == owner]
            if not caller.operator and len(mine) >= policy.max_per_owner:
                raise TooManyTasks(
                    f"{owner} has {len(mine)} cron tasks, the most one owner may have; "
                    "stop one or wait for a once-task to fire",
                    retry_after=_retry_after(mine),
                )
            if len(self._tasks) >= policy.max_tasks:
                raise TooManyTasks(
                    f"this node runs {len(self._tasks)} cron tasks, its limit",
                    retry_after=_retry_after(list(self._tasks.values())),
                )
            if task_id is not None:
                await self._store.put_record(Record(USED, task_id, b""))
            await self._store.put_record(Record(KIND, task.id, task.to_bytes()))
            self._tasks[task.id] = task
        self._wake.set()
        log.info("cron: %s task %s started on %s", type_, task.id, task.path)
        return task

    async def _check_reach(self, task: CronTask, owner: str) -> None:
        """403 unless every process the firing could message is ``owner``'s."""
        reached = sorted(reached_processes(task))
        if not reached:
            raise AccessDenied(
                "a task that sends a message must name its process (in the cron-path or "
                "as target); only the operator may send elsewhere",
                code="no-target-process",
            )
        for pid in reached:
            if await self._owner_of(pid) != owner:
                raise AccessDenied(
                    f"{owner} does not own process {pid}: only its owner (or the operator) "
                    "may have the node send it messages",
                    code="not-process-owner",
                )

    async def cancel(self, task_id: str, caller: Caller) -> None:
        """Stop a task: it never fires again (a run in flight completes).

        401 anonymous, 404 unknown task, 403 neither its owner nor the operator."""
        if caller.owner is None:
            raise Unauthenticated(
                "stopping a cron task needs a request signed by its owner "
                "or the operator's token (Authorization: Bearer TOKEN)"
            )
        async with self._write:
            known = self._tasks.get(task_id) or self._finished.get(task_id)
            if known is None:
                raise NotFound(f"unknown cron task {task_id}", code="unknown-task")
            if not caller.operator and known.owner != caller.address:
                raise AccessDenied(
                    f"task {task_id} is not {caller.address}'s: only its owner "
                    "or the operator may stop it",
                    code="not-task-owner",
                )
            active = self._tasks.pop(task_id, None)
            self._finished.pop(task_id, None)
            self._last.pop(task_id, None)
            if active is not None:
                await self._store.delete_record(KIND, task_id)
        self._wake.set()
        log.info("cron: task %s stopped", task_id)

    def get(self, task_id: str) -> CronTask | None:
        return self._tasks.get(task_id) or self._finished.get(task_id)

    def running(self, task_id: str) -> bool:
        return task_id in self._running

    def last(self, task_id: str) -> RunStatus | None:
        return self._last.get(task_id)

    def listing(self) -> list[dict[str, Any]]:
        """Every task (active ones by next run time, then fired once-tasks)."""
        active = sorted(self._tasks.values(), key=lambda t: (t.next_run or 0, t.id))
        return [self.describe(t) for t in [*active, *self._finished.values()]]

    async def tasks(self) -> list[dict[str, Any]]:
        """:meth:`listing`, as the routes' use case (``aonode.services.Timers``)."""
        return self.listing()

    def describe(self, task: CronTask) -> dict[str, Any]:
        last = self._last.get(task.id)
        doc: dict[str, Any] = {
            "task": task.id,
            "type": task.type,
            "cron-path": task.path,
            "owner": task.owner,
            "keys": dict(task.keys),
            "next-run": task.next_run,
            "runs": task.runs,
            "running": task.id in self._running,
            "last-run": None
            if last is None
            else {"at": last.at, "status": last.status, "error": last.error},
        }
        if task.type == "every":
            doc["interval"] = task.interval
            doc["interval-ms"] = task.interval_ms
        return doc

    def observe(self, callback: Callable[[CronTask, RunStatus], None]) -> None:
        """Call ``callback(task, status)`` after every run (tests, metrics)."""
        self._observers.append(callback)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; it is re-checked after every wakeup and run."""
        async with self._changed:
            await self._changed.wait_for(predicate)

    # -- the timer loop --------------------------------------------------

    async def _run_loop(self) -> None:
        while True:
            self._wake.clear()
            now = now_ms()
            due = [t for t in self._tasks.values() if t.next_run is not None and t.next_run <= now]
            for task in sorted(due, key=lambda t: (t.next_run or 0, t.id)):
                try:
                    await self._fire(task, now)
                except Exception as exc:  # the store failed: retry this task later
                    log.warning("cron: task %s not fired: %s", task.id, exc)
                    if self._tasks.get(task.id) is task:
                        self._tasks[task.id] = replace(task, next_run=now + _RETRY_MS)
            self.wakeups += 1
            await self._notify()
            upcoming = [t.next_run for t in self._tasks.values() if t.next_run is not None]
            timeout = (
                min(_MAX_WAIT, max(0.0, (min(upcoming) - now_ms()) / 1000)) if upcoming else None
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _fire(self, task: CronTask, now: int) -> None:
        async with self._write:
            if self._tasks.get(task.id) is not task:
                return  # stopped (or changed) meanwhile
            if task.type == "once":
                # at most once: the record is gone, durably, before the run starts
                await self._store.delete_record(KIND, task.id)
                del self._tasks[task.id]
                fired = replace(task, next_run=None, runs=task.runs + 1)
                self._finished[task.id] = fired
                while len(self._finished) > _FINISHED_KEPT:
                    self._finished.pop(next(iter(self._finished)))
            else:
                assert task.interval_ms is not None and task.next_run is not None
                following = next_due(task.next_run, now, task.interval_ms)
                if task.id in self._running:  # the previous run is still going: skip this tick
                    self._tasks[task.id] = replace(task, next_run=following)
                    log.debug("cron: task %s still running; tick skipped", task.id)
                    return
                fired = replace(task, next_run=following, runs=task.runs + 1)
                await self._store.put_record(Record(KIND, task.id, fired.to_bytes()))
                self._tasks[task.id] = fired
        run = asyncio.create_task(self._run(fired), name=f"cron-{task.id[:8]}")
        self._running[task.id] = run

    async def _run(self, task: CronTask) -> None:
        at = now_ms()
        try:
            assert self._dispatch is not None
            method, headers, body = await asyncio.to_thread(firing_request, task, self._wallet)
            status, answer = await self._dispatch(method, task.path, headers, body)
            error = None if status < 400 else answer[:500].decode("utf-8", "replace")
            result = RunStatus(at, status, error)
        except Exception as exc:  # a failing run never stops the task
            result = RunStatus(at, None, f"{type(exc).__name__}: {exc}")
        if result.error is not None:
            prev = self._last.get(task.id)
            again = prev is not None and prev.error is not None and prev.status == result.status
            (log.debug if again else log.warning)(  # quiet: a failure repeating is not news
                "cron: task %s run of %s failed (%s): %s",
                task.id,
                task.path,
                result.status,
                result.error,
            )
        if task.id in self._tasks or task.id in self._finished:
            self._last[task.id] = result
        self._running.pop(task.id, None)
        for observer in self._observers:
            try:
                observer(task, result)
            except Exception:
                log.exception("cron: observer failed")
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


def _retry_after(tasks: list[CronTask]) -> int:
    """Seconds until the soonest of ``tasks``' once-tasks fires (and frees a place)."""
    soonest = [t.next_run for t in tasks if t.type == "once" and t.next_run is not None]
    if not soonest:
        return 3600
    return max(1, min(3600, math.ceil((min(soonest) - now_ms()) / 1000)))
