"""The commit stage of a scheduler server: signed entries to durable assignments.

The :class:`~aonode.scheduler.server.SchedulerServer` actor fixes each slot
and hands the entry here (:meth:`Committer.hand`).  The committer takes
entries in slot order, awaits each signature and calls ``store.append``
without awaiting the previous append, so many assignments share one group
commit while the store applies them in order.  It settles every entry once:
durable (``durable`` completes with the assignment; the upload backlog is
told) or failed (the error; the committer is then :attr:`~Committer.broken`
and the actor recovers before the next slot).  It keeps the server's
bookkeeping of that stage: the slots given and not yet settled (what
:meth:`Committer.wait_durable` awaits, and at most ``_INFLIGHT`` of them) and
the newest durable assignments (what :meth:`Committer.durable` returns).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from aonode.errors import Overloaded, StoreError
from aonode.instrument import Instrument
from aonode.logs import where
from aonode.message import Message
from aonode.scheduler.assignment import Assignment, Header
from aonode.scheduler.confirm import Confirmation, Stage, complete, relay
from aonode.store.base import AssignmentRecord, MessageRecord, ScheduleLog
from aonode.store.shared import append_submitter

log = logging.getLogger("aonode.scheduler")

_INFLIGHT = 8192  # assigned-but-not-durable entries allowed before the actor waits
# Signed entries held while the next one is still being signed (thread-signed, RSA):
# they then share one commit.  One waits at most for the next _HOLD - 1 slots'
# signatures, already submitted to the signing pool (RSA-4096 on two threads here:
# ~2.5 ms each, so at most ~18 ms, against a queue that is already that long).
# 4 -> 8 took the writer's CPU a message from ~150 to ~95 µs (bench/schedule.py RSA).
_HOLD = 8
_DURABLE_KEPT = 512  # durable assignments kept for the process worker (a compute batch is 256)


@dataclass(slots=True)
class Entry:
    header: Header
    body: Message
    signed: asyncio.Future[Assignment]
    reply: asyncio.Future[Assignment]  # the request that got the slot (not re-posts)
    received: float
    durable: asyncio.Future[Assignment]
    # only a mode that waits for the upload reads it; the others share ``durable``
    # (one future fewer per message)
    uploaded: asyncio.Future[Assignment]


class Committer:
    """The commit/settle stage of one process's scheduler; see the module docstring."""

    def __init__(self, process_id: str, store: ScheduleLog, confirmation: Confirmation) -> None:
        self.id = process_id
        self._store = store
        # queue an append and get its future without a task per append, when the store can
        self._submit = append_submitter(store)
        self.confirmation = confirmation
        # the mode answers at ``durable``: _settle completes the request's reply itself
        # (what Confirmation.answer would relay one callback later)
        self.answers_at_settle = confirmation.stage is Stage.DURABLE
        self._pipeline: asyncio.Queue[Entry | None] = asyncio.Queue(1024)
        # slots given and not yet settled (durable or failed): what wait_durable awaits
        self._unsettled: dict[int, asyncio.Future[Assignment]] = {}
        # The newest durable assignments by slot: the process worker computes from
        # these instead of reading and re-parsing what was just stored.
        self._durable: OrderedDict[int, Assignment] = OrderedDict()
        self.pending = 0  # slots given and not yet settled; at most _INFLIGHT
        self._room: asyncio.Future[None] | None = None  # the actor waits on it when full
        self._settled = asyncio.Event()
        self._settled.set()
        self.broken = False  # a write failed: the actor recovers before the next slot
        self._appends: set[asyncio.Future[Any]] = set()
        self.observer: Instrument | None = None

    # -- the actor's side ------------------------------------------------

    async def room(self) -> None:
        """Return once fewer than ``_INFLIGHT`` slots are unsettled."""
        while self.pending >= _INFLIGHT:
            self._room = asyncio.get_running_loop().create_future()
            await self._room

    def open(
        self,
        header: Header,
        body: Message,
        signed: asyncio.Future[Assignment],
        reply: asyncio.Future[Assignment],
        received: float,
    ) -> Entry:
        """A new unsettled entry for the slot ``header`` just gave."""
        loop = asyncio.get_running_loop()
        durable: asyncio.Future[Assignment] = loop.create_future()
        uploaded = loop.create_future() if self.confirmation.waits_for_upload else durable
        entry = Entry(header, body, signed, reply, received, durable, uploaded)
        self._unsettled[header.slot] = entry.durable
        self.pending += 1
        self._settled.clear()
        return entry

    async def hand(self, entry: Entry, *, inline: bool) -> None:
        """Commit ``entry``: at once if it was signed ``inline``, else in slot order."""
        if inline:
            self._commit(entry)  # signed inline: nothing to wait for, no hand-off
        else:
            await self._pipeline.put(entry)

    async def settled(self) -> None:
        """Return once every entry given so far is settled (durable or failed)."""
        await self._settled.wait()

    async def close(self) -> None:
        """No more entries: :meth:`run` ends after those queued."""
        await self._pipeline.put(None)

    async def drain(self) -> None:
        """Wait for the appends still queued in the store."""
        if self._appends:
            await asyncio.gather(*self._appends, return_exceptions=True)

    # -- readers ---------------------------------------------------------

    async def wait_durable(self, slot: int) -> None:
        """Return once ``slot`` is durable; at once if it is, or was never given here.

        A failed write raises its error (the slot will be given again).
        """
        pending = self._unsettled.get(slot)
        if pending is not None:
            await asyncio.shield(pending)

    def durable(self, first: int, last: int) -> list[Assignment]:
        """The consecutive durable assignments ``first..last`` still in memory (maybe none)."""
        out: list[Assignment] = []
        while first <= last and (a := self._durable.get(first)) is not None:
            out.append(a)
            first += 1
        return out

    # -- the committer task ----------------------------------------------

    async def run(self) -> None:
        """Entries signed on the thread pool, in slot order (inline-signed ones never
        come here: :meth:`hand` commits them at once).

        While the next entry is still being signed, up to ``_HOLD`` signed entries
        wait for it and then reach the store together: one commit (one ``fsync``)
        for several slots instead of one each, where signatures are slow (RSA) and
        come one every few milliseconds.  With nothing more in flight, they go at once.
        """
        held: list[Entry] = []
        while True:
            if held and (len(held) >= _HOLD or self._pipeline.empty()):
                self._commit_all(held)
            entry = await self._pipeline.get()
            if entry is None:
                break
            with contextlib.suppress(Exception):  # _commit reports a failed signature
                await entry.signed
            held.append(entry)
        self._commit_all(held)

    def _commit_all(self, held: list[Entry]) -> None:
        """Commit the ``held`` entries in slot order, and empty the list."""
        for entry in held:
            self._commit(entry)
        held.clear()

    def _commit(self, entry: Entry) -> None:
        """Queue the signed ``entry``'s append now (call order is commit order)."""
        signed = entry.signed
        if (failed := signed.exception()) is not None:
            log.error(
                "signing slot %d of %s failed: %s",
                entry.header.slot,
                self.id,
                failed,
                extra=where(self.id, entry.header.slot),
            )
            self._settle(entry, None, failed)
            return
        assignment = signed.result()
        records = (assignment.record(), entry.body.record())
        if self._submit is None:  # a store without a synchronous submit
            task = asyncio.get_running_loop().create_task(self._append(entry, assignment, *records))
            self._appends.add(task)
            task.add_done_callback(self._appends.discard)
            return
        try:
            queued = self._submit(*records)
        except Exception as exc:
            self._settle(entry, None, self._store_failed(entry, exc))
            return
        self._appends.add(queued)
        queued.add_done_callback(functools.partial(self._appended, entry, assignment))

    def _appended(self, entry: Entry, assignment: Assignment, queued: asyncio.Future[Any]) -> None:
        self._appends.discard(queued)
        if queued.cancelled():
            self._settle(entry, None, self._store_failed(entry, StoreError("append cancelled")))
        elif (exc := queued.exception()) is not None:
            self._settle(entry, None, self._store_failed(entry, exc))
        else:
            self._settle(entry, assignment)

    async def _append(
        self, entry: Entry, assignment: Assignment, record: AssignmentRecord, body: MessageRecord
    ) -> None:
        try:
            await self._store.append(record, body)
        except Exception as exc:
            self._settle(entry, None, self._store_failed(entry, exc))
        else:
            self._settle(entry, assignment)

    def _store_failed(self, entry: Entry, exc: BaseException) -> StoreError:
        """Log a failed append once; the error its clients get."""
        if isinstance(exc, StoreError):
            log.error(
                "storing slot %d of %s failed: %s",
                entry.header.slot,
                self.id,
                exc,
                extra=where(self.id, entry.header.slot),
            )
            return exc
        log.error(
            "storing slot %d of %s failed",
            entry.header.slot,
            self.id,
            exc_info=exc,
            extra=where(self.id, entry.header.slot),
        )
        return StoreError(f"store failed: {exc}")

    # -- settling --------------------------------------------------------

    def _settle(
        self, entry: Entry, assignment: Assignment | None, exc: BaseException | None = None
    ) -> None:
        """``entry`` is durable (``assignment``) or failed (``exc``): the server's
        bookkeeping, done before anyone awaiting ``durable`` runs, then the future."""
        durable = entry.durable
        if durable.done():
            return
        self._unsettled.pop(entry.header.slot, None)
        self.pending -= 1
        if (room := self._room) is not None and not room.done():
            room.set_result(None)
        if exc is not None:
            self.broken = True
        if self.pending == 0:
            self._settled.set()
        if assignment is None or exc is not None:
            durable.set_exception(exc if exc is not None else StoreError("store failed"))
        else:
            self._durable[assignment.slot] = assignment
            while len(self._durable) > _DURABLE_KEPT:
                self._durable.popitem(last=False)
            durable.set_result(assignment)
            if (observer := self.observer) is not None:
                # counted once durable; at the durable stage its client is answered now
                timed = self.answers_at_settle and not entry.reply.done()
                latency = time.perf_counter() - entry.received if timed else None
                observer.assigned(self.confirmation.mode.value, True, latency)
        if self.answers_at_settle:
            complete(durable, entry.reply)
        if self.confirmation.uploads is not None:
            self._upload(entry, durable)

    def _upload(self, entry: Entry, durable: asyncio.Future[Assignment]) -> None:
        """A durable slot is in the upload backlog; ``uploaded`` completes on acceptance."""
        remote = self.confirmation.waits_for_upload
        if durable.cancelled() or durable.exception() is not None:
            if remote:  # the reply waits on ``uploaded``: fail it like the write
                relay(durable, entry.uploaded)
            return
        uploads = self.confirmation.uploads
        assert uploads is not None
        assignment = durable.result()
        uploads.stored(self.id, assignment.slot)
        if not remote:
            return

        def accepted(fut: asyncio.Future[None]) -> None:
            if entry.uploaded.done():
                return
            if fut.cancelled():
                entry.uploaded.set_exception(
                    Overloaded(
                        f"the node stopped before slot {assignment.slot} was uploaded; "
                        "it is stored and will be uploaded when the node runs again"
                    )
                )
            else:
                entry.uploaded.set_result(assignment)

        uploads.wait(self.id, assignment.slot).add_done_callback(accepted)
