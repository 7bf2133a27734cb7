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
base64url: two identical requests make two tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from aonode.cron_task import (
    KIND,
    CronTask,
    Dispatch,
    RunStatus,
    TaskType,
    firing_request,
    new_task,
    next_due,
    now_ms,
)
from aonode.errors import NotFound
from aonode.store import RecordStore
from aonode.store.base import Record
from aonode.wallet import Wallet

log = logging.getLogger("aonode.cron")

_MAX_WAIT = 3600.0  # the loop re-checks at least hourly, whatever the intervals
_RETRY_MS = 1000  # a firing the store could not record is retried this much later
_FINISHED_KEPT = 256  # fired once-tasks still listed (memory only)


class Cron:
    """The node's cron tasks and the one timer loop that fires them."""

    def __init__(self, store: RecordStore, wallet: Wallet) -> None:
        self._store = store
        self._wallet = wallet
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

    async def add(self, type_: TaskType, params: Iterable[tuple[str, str]]) -> CronTask:
        """Create and durably store a task (400 for bad parameters); it is then armed."""
        task = new_task(type_, params, now=now_ms())
        async with self._write:
            await self._store.put_record(Record(KIND, task.id, task.to_bytes()))
            self._tasks[task.id] = task
        self._wake.set()
        log.info("cron: %s task %s started on %s", type_, task.id, task.path)
        return task

    async def cancel(self, task_id: str) -> None:
        """Stop a task: it never fires again (a run in flight completes)."""
        async with self._write:
            active = self._tasks.pop(task_id, None)
            finished = self._finished.pop(task_id, None)
            if active is None and finished is None:
                raise NotFound(f"unknown cron task {task_id}", code="unknown-task")
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

    def describe(self, task: CronTask) -> dict[str, Any]:
        last = self._last.get(task.id)
        doc: dict[str, Any] = {
            "task": task.id,
            "type": task.type,
            "cron-path": task.path,
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
