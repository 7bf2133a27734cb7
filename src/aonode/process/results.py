"""A computed slot: the reply ``/{pid}/compute`` and ``/now`` serve, and its way to the
result cache."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aonode.process.runtime.base import Results
from aonode.store.base import ResultCache, ResultRecord

log = logging.getLogger("aonode.process")


def results_doc(process: str, slot: int, results: Results) -> dict[str, Any]:
    """The reply for a computed slot; patch@1.0 state keys sit beside the results."""
    doc: dict[str, Any] = {"process": process, "slot": slot, "results": results.to_json()}
    state = results.extra.get("state")
    if isinstance(state, dict):
        for key, value in state.items():
            doc.setdefault(key, value)
    return doc


# Computed results go to the store in groups: after this many slots, a snapshot, or
# this many seconds after the first one waiting.
WRITE_BATCH = 32
WRITE_DELAY = 0.05


class ResultWriter:
    """A worker's computed results on their way to the result cache, a group at a time.

    Results are derived data: the worker serves them from ``fresh`` until they are
    stored, and a crash only costs recomputing them.  Sending them a group at a
    time (``WRITE_BATCH`` slots, a snapshot, or ``WRITE_DELAY`` seconds after the
    first one waiting) puts a slot-by-slot walk's rows in one commit instead of a
    commit, and an fsync, per slot.  Groups are sent in slot order and each put
    enqueues in its first step, so the stored results stay a prefix of the schedule.
    """

    def __init__(self, store: ResultCache, fresh: dict[int, Results]) -> None:
        self._store = store
        self._fresh = fresh  # slot → results not yet stored; a stored slot leaves it
        self._pending: list[ResultRecord] = []
        self._timer: asyncio.TimerHandle | None = None
        self._writes: set[asyncio.Task[None]] = set()

    def add(self, record: ResultRecord) -> None:
        self._pending.append(record)

    def soon(self, *, urgent: bool = False) -> None:
        """Send what waits now if ``urgent`` (a snapshot) or a group is full, else soon."""
        if urgent or len(self._pending) >= WRITE_BATCH:
            self._send()
        elif self._timer is None and self._pending:
            self._timer = asyncio.get_running_loop().call_later(WRITE_DELAY, self._send)

    async def write_now(self) -> None:
        """Store what waits before returning; a store error is the caller's."""
        self._cancel_timer()
        records, self._pending = self._pending, []
        await asyncio.gather(*(self._store.put_result(r) for r in records))
        for record in records:
            self._fresh.pop(record.slot, None)

    async def flush(self) -> None:
        """Every result sent and its write finished (a failure is logged)."""
        self._send()
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _send(self) -> None:
        self._cancel_timer()
        records, self._pending = self._pending, []
        if records:
            task = asyncio.create_task(self._write(records))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def _write(self, records: list[ResultRecord]) -> None:
        outcomes = await asyncio.gather(
            *(self._store.put_result(r) for r in records), return_exceptions=True
        )
        for record, outcome in zip(records, outcomes, strict=True):
            if outcome is None:
                self._fresh.pop(record.slot, None)
            else:  # kept in fresh: served from memory, recomputed after a restart
                log.warning(
                    "process %s slot %d: caching the results failed: %r",
                    record.process,
                    record.slot,
                    outcome,
                )
