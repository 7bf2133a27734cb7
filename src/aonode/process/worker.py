"""One worker per process: the live runtime, advanced slot by slot.

Requests for one process are serialised through its worker's lock, so each
assignment is applied exactly once and in order (invariant 7).  Many callers
waiting for the same slot share one computation: the first takes the lock and
computes; the others find the slot cached when they get it.  The runtime runs
on the process's own compute thread (``pool``) so the event loop keeps serving
the scheduler meanwhile.  Each trip there applies a batch of slots: those
asked for, and, for a caller walking the schedule one slot after another,
up to ``_WALK`` more already read ahead (they are assigned, so they are
computed anyway; one trip instead of one each).

Every computed slot's results are cached (``/computed/{pid}/slot/{N}`` and by
message id); every ``snapshot_slots`` slots the runtime's state is stored with
them, and a worker that starts (after a restart, or after it was unloaded)
resumes from the newest snapshot at or below the slot asked for instead of
replaying from slot 0.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import replace
from typing import Any, Protocol, TypeVar

import orjson

from aonode.errors import NotFound
from aonode.message import Message
from aonode.process import aosmsg, patching
from aonode.process.results import ResultWriter
from aonode.process.runtime.base import Json, Results, Runtime
from aonode.scheduler.assignment import Assignment
from aonode.store.base import ResultCache, ResultRecord, ScheduleReader

log = logging.getLogger("aonode.process")

T = TypeVar("T")
RuntimeFactory = Callable[[bytes | None], Runtime]  # snapshot (None: fresh) → runtime
# (process, first, last) → the consecutive durable assignments from ``first`` the
# scheduler still holds in memory (possibly none)
RecentAssignments = Callable[[str, int, int], list[Assignment]]
_BATCH = 256  # assignments applied per trip to the compute thread
# Read from the store beyond the slot asked for, kept for the next compute (a client
# walking a stored schedule slot by slot reads the store once per this many slots).
_READ_AHEAD = 32
# Slots applied in one trip for a caller walking the schedule (asking for the slot
# after the last one computed) when they are read ahead already: the trip to the
# compute thread and its bookkeeping are paid once for them all; the slot asked for
# waits for the others of its trip (at most this many messages).
_WALK = 8


class WorkerStore(ScheduleReader, ResultCache, Protocol):
    """What computing a process uses of the store: schedule reads and the result cache."""


class ProcessWorker:
    def __init__(
        self,
        process: Message,
        *,
        store: WorkerStore,
        factory: RuntimeFactory,
        executor: Executor,
        snapshot_slots: int = 100,
        snapshot_seconds: float = 60.0,
        patching: bool = False,
        async_cache: bool = True,
    ) -> None:
        # False: a compute returns only once its results (and snapshot) are stored.
        self._async_cache = async_cache
        self.process = process
        # patch@1.0 in the execution stack: outbox messages with method PATCH are not
        # sent; their keys update the process state, served beside the results.
        self._patching = patching
        self.state: dict[str, Any] = {}
        self.id = process.id
        self._store = store
        self._factory = factory
        self._executor = executor
        self._snapshot_slots = max(1, snapshot_slots)
        # Also snapshot when this long has passed since the last one (work done, not
        # state, depends on it: the bytes of a snapshot at a slot never do).
        self._snapshot_seconds = snapshot_seconds
        self._last_snapshot = time.monotonic()
        self._lock = asyncio.Lock()
        self._runtime: Runtime | None = None
        self.at_slot = -1
        self.replayed = 0  # slots applied by this worker (resumes show in it)
        self.resumed_from: int | None = None
        self.last_used = time.monotonic()
        # Results computed but maybe not yet in the store (writes are asynchronous).
        self._fresh: dict[int, Results] = {}
        self._writer = ResultWriter(store, self._fresh)
        self.on_applied: Callable[[int], None] | None = None  # told slots applied (metrics)
        self.recent: RecentAssignments | None = None
        self._frontier: int | None = None  # no stored results at or above it (see _cached)
        self._ahead: list[Assignment] = []  # assignments read past the last slot asked for
        self._env = aosmsg.process_env(process)  # the same for every message

    async def _call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def compute(self, slot: int) -> Results:
        """Results of ``slot``, computing every slot up to it once, in order."""
        self.last_used = time.monotonic()
        if (fresh := self._fresh.get(slot)) is not None:
            return fresh
        if (cached := await self._cached(slot)) is not None:
            return cached
        waited = self._lock.locked()
        async with self._lock:
            if waited:  # someone else computed meanwhile, perhaps this very slot
                if (fresh := self._fresh.get(slot)) is not None:
                    return fresh
                if (cached := await self._cached(slot)) is not None:
                    return cached
            if self._runtime is None or self.at_slot >= slot:
                await self._load(slot)
            return await self._advance(slot)

    async def _cached(self, slot: int) -> Results | None:
        """The stored results of ``slot``, skipping the look-up where none can exist.

        Stored results always form a prefix of the schedule (they are written in
        slot order and a crash loses only a suffix), so once a look-up misses at
        ``s``, nothing at or above ``s`` is stored but what this worker writes."""
        if self._frontier is not None and slot >= self._frontier and slot > self.at_slot:
            return None
        cached = await self._store.get_result(self.id, slot)
        if cached is not None:
            return _results(cached.results)
        if slot > self.at_slot:
            self._frontier = slot if self._frontier is None else min(self._frontier, slot)
        return None

    async def _advance(self, slot: int, *, exact: bool = False) -> Results:
        """Apply the assignments after ``at_slot`` up to ``slot`` (lock held), or a
        few past it for a walker (not when ``exact``); the results of ``slot``.

        Pipelined: while the compute thread applies one batch, the event loop
        reads and parses the next one (Lua runs without the GIL)."""
        if self.at_slot >= slot:
            return Results()
        walking = not exact and slot == self.at_slot + 1
        batch = await self._batch(self.at_slot + 1, slot, walking=walking)
        while batch[-1].slot < slot:
            applying = asyncio.ensure_future(self._apply(batch, batch[-1].slot))
            try:
                ahead = await self._batch(batch[-1].slot + 1, slot)
            finally:
                await applying  # also when reading ahead failed
            batch = ahead
        return await self._apply(batch, slot)  # the last batch: nothing to read ahead

    async def _batch(self, first: int, slot: int, *, walking: bool = False) -> list[Assignment]:
        """The next assignments from ``first`` (at most 256, up to ``slot``; for a
        walker, up to ``_WALK`` of those already read), parsed.

        Those the scheduler just made durable come from its memory; else the store,
        reading a few past ``slot`` for the next compute (assignments never change)."""
        last = min(slot, first + _BATCH - 1)
        ahead, self._ahead = self._ahead, []
        if ahead and ahead[0].slot == first and ahead[-1].slot >= last:
            if walking:
                last = max(last, min(ahead[-1].slot, first + _WALK - 1))
            taken = [a for a in ahead if a.slot <= last]
            self._ahead = ahead[len(taken) :]
            return taken
        if self.recent is not None:
            fresh = self.recent(self.id, first, max(last, first + _WALK - 1) if walking else last)
            if fresh:
                return fresh
        want = max(last - first + 1, _READ_AHEAD)
        rows = await self._store.slots(self.id, first, first + want - 1, want)
        if not rows or rows[0].assignment.slot != first:
            latest = await self._store.latest(self.id)
            current = latest.slot if latest else -1
            raise NotFound(
                f"slot {slot} of {self.id} is not assigned yet (current {current})",
                code="slot-not-assigned",
            )
        parsed = [Assignment.from_stored(r) for r in rows]
        if walking:
            last = max(last, min(parsed[-1].slot, first + _WALK - 1))
        taken = [a for a in parsed if a.slot <= last]
        self._ahead = parsed[len(taken) :]
        return taken

    async def now(self) -> tuple[int, Results]:
        latest = await self._store.latest(self.id)
        if latest is None:
            raise NotFound(f"process {self.id} has no schedule", code="unknown-process")
        return latest.slot, await self.compute(latest.slot)

    async def _live_at(self, slot: int) -> Runtime:
        """The live runtime advanced exactly to ``slot`` (lock held)."""
        if self._runtime is None or self.at_slot > slot:
            await self._load(slot)
        await self._advance(slot, exact=True)
        assert self._runtime is not None
        return self._runtime

    async def dryrun(self, msg: Json) -> tuple[int, Results]:
        """Evaluate ``msg`` on the latest state; nothing is stored or changed."""
        slot, _ = await self.now()
        async with self._lock:
            runtime = await self._live_at(slot)
            env = self._env

            def run() -> Results:
                try:
                    return runtime.dryrun(msg, env)
                except Exception as exc:  # as in _apply: the dry run's error result
                    return _fault(self.id, slot, exc)

            return slot, await self._call(run)

    async def snapshot(self) -> tuple[int, bytes]:
        slot, _ = await self.now()
        async with self._lock:
            runtime = await self._live_at(slot)
            return slot, await self._call(runtime.snapshot)

    async def _load(self, slot: int) -> None:
        """A runtime at the newest snapshot ``<= slot``, else a fresh one."""
        if self._runtime is not None:
            runtime = self._runtime
            await self._call(runtime.close)
            self._runtime = None
        self._ahead = []
        snap = await self._store.latest_snapshot(self.id, slot)
        self.state = {}
        if snap is not None and snap.snapshot is not None:
            data = snap.snapshot
            stored = await self._store.get_result(self.id, snap.slot)
            if stored is not None:
                self.state = dict(orjson.loads(stored.results).get("state") or {})
            self._runtime = await self._call(lambda: self._factory(data))
            self.at_slot = snap.slot
            self.resumed_from = snap.slot
            log.info("process %s resumed from the snapshot at slot %d", self.id, snap.slot)
        else:
            self._runtime = await self._call(lambda: self._factory(None))
            self.at_slot = -1

    async def _apply(self, assignments: list[Assignment], want: int) -> Results:
        """Apply consecutive assignments in one trip to the compute thread; the
        results of slot ``want`` among them.

        Each slot is recorded as it would be alone: a runtime fault is that slot's
        error result and the next ones apply.  Anything else that stops the trip
        (converting a message, a snapshot) keeps the slots before it; it is raised
        if it stopped at or before ``want``, and the runtime is reloaded if it may
        have gone past the last slot recorded."""
        runtime = self._runtime
        assert runtime is not None
        first = assignments[0].slot
        assert first == self.at_slot + 1, f"applying slot {first} after {self.at_slot}"
        env = self._env
        every = self._snapshot_slots
        last_slot = assignments[-1].slot
        overdue = time.monotonic() - self._last_snapshot >= self._snapshot_seconds
        process = self.process

        def run() -> tuple[list[tuple[Results, bytes | None]], Exception | None, bool]:
            out: list[tuple[Results, bytes | None]] = []
            applied = False  # the runtime is past the last slot in ``out``
            try:
                for a in assignments:
                    msg = aosmsg.from_assignment(a, process)
                    applied = True
                    try:
                        results = runtime.boot(msg, env) if a.slot == 0 else runtime.apply(msg, env)
                    except Exception as exc:  # a runtime fault: this slot's error, not a 500
                        results = _fault(process.id, a.slot, exc)
                    snap = None
                    if a.slot % every == 0 or (overdue and a.slot == last_slot):
                        try:
                            snap = runtime.snapshot()
                        except NotImplementedError:
                            snap = None
                    out.append((results, snap))
                    applied = False
            except Exception as exc:
                return out, exc, applied
            return out, None, False

        try:
            done, failure, dirty = await self._call(run)
        except asyncio.CancelledError:  # the trip goes on without this worker knowing
            self._runtime, self._ahead = None, []  # where it ends: reload when next asked
            raise
        if dirty:  # stopped between applying a slot and recording it: reload when asked
            self._runtime, self._ahead = None, []
            await self._call(runtime.close)
        if self._patching:
            done = [(self._patch(r), snap) for r, snap in done]
        snapshotted = False
        for a, (results, snap) in zip(assignments, done, strict=False):
            self._record(a, results, snap)
            if snap is not None:
                self._last_snapshot = time.monotonic()
                snapshotted = True
        if done:
            if not self._async_cache:
                await self._writer.write_now()
            else:
                self._writer.soon(urgent=snapshotted)
            self.at_slot = first + len(done) - 1
            self.replayed += len(done)
            if self.on_applied is not None:
                self.on_applied(len(done))
        if failure is not None and first + len(done) <= want:
            raise failure
        return done[want - first][0]

    def _patch(self, results: Results) -> Results:
        """Move PATCH messages out of the outbox and apply them to ``state``."""
        results = patching.patched(results, self.state)
        return replace(results, extra={**results.extra, "state": dict(self.state)})

    def _record(self, assignment: Assignment, results: Results, snap: bytes | None) -> None:
        slot = assignment.slot
        doc_json: dict[str, Any] = {"process": self.id, "slot": slot, "results": results.to_json()}
        if self._patching:
            doc_json["state"] = dict(self.state)
        doc = orjson.dumps(doc_json)
        self._fresh[slot] = results
        self._writer.add(ResultRecord(self.id, slot, assignment.header.message, doc, snap))

    async def unload(self) -> int | None:
        """Store a snapshot of the live state, then drop it (idle workers free memory).

        Returns the slot of the snapshot, or ``None`` when there was nothing live
        or the state cannot be snapshotted (then it stays loaded).
        """
        async with self._lock:
            runtime = self._runtime
            if runtime is None or self.at_slot < 0:
                return None
            await self._writer.flush()
            try:
                snap = await self._call(runtime.snapshot)
            except NotImplementedError:
                return None
            slot = self.at_slot
            cached = self._fresh.get(slot)
            doc = orjson.dumps(
                {"process": self.id, "slot": slot, "results": (cached or Results()).to_json()}
            )
            latest = await self._store.slots(self.id, slot, slot, 1)
            message = latest[0].assignment.message if latest else ""
            await self._store.put_result(ResultRecord(self.id, slot, message, doc, snap))
            self._runtime = None
            self._ahead = []
            await self._call(runtime.close)
            return slot

    async def close(self) -> None:
        await self._writer.flush()
        async with self._lock:
            if self._runtime is not None:
                runtime = self._runtime
                self._runtime = None
                await self._call(runtime.close)


def _fault(pid: str, slot: int, exc: Exception) -> Results:
    """The result of a message whose runtime raised instead of answering.

    The assignment is durable already, so the slot must get a result: the
    client sees the failure as that message's error (as aos reports one),
    never as a 500 that hides which slot it took."""
    log.error("process %s slot %d: the runtime failed: %r", pid, slot, exc, exc_info=exc)
    return Results(data="", error=f"aonode: the runtime failed at slot {slot}: {exc}")


def _results(doc: bytes) -> Results:
    parsed = orjson.loads(doc)
    results = Results.from_json(parsed["results"])
    if "state" in parsed:
        results = replace(results, extra={"state": parsed["state"]})
    return results
