"""The scheduler server: one asyncio actor per AO process.

It is the deliberate bottleneck that makes slots gap-free: only the actor
task ever reads or advances ``current`` and ``hash_chain``.  Work is split in
two stages so that slow RSA signatures do not serialise the schedule:

1. the **actor** takes requests in arrival order, drops those past their
   abort time, answers re-posts of a known message with its existing
   assignment, and fixes slot, hash chain and timestamps; it hands signing to
   a thread pool (RSA) or signs inline (ed25519), then queues the entry;
2. the **committer** takes entries in slot order, awaits each signature and
   calls ``store.append`` without awaiting the previous append, so many
   assignments share one group commit while the store applies them in order.

Clients are answered per mode: ``aggressive`` once signed,
``local_confirmation`` once the store made the assignment durable, and
``remote_confirmation`` once the upload target accepted it; which stage
answers is decided in one place, :class:`~aonode.scheduler.confirm.Confirmation`.

A re-post (a message that already has a slot) gets its slot back, never a
second one.  Two lookups find it, both here: :meth:`SchedulerServer.schedule`
asks the store (durable slots, also those of earlier runs and of other nodes
on a shared store), and the actor asks ``_recent`` (slots given but not yet
durable, which the store cannot know yet; a re-post racing its first post is
caught there because the actor takes requests one at a time).  If an
append fails the server stops assigning, lets every in-flight entry settle
(the store's gap guard fails the later ones), and resumes from the latest
stored slot: the schedule never has a gap, at the cost of failing the
requests that were in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import orjson

from aonode.config import Mode
from aonode.errors import Expired, Overloaded, SchedulerError, StoreError
from aonode.instrument import Instrument
from aonode.logs import lifecycle, where
from aonode.message import Message
from aonode.scheduler.assignment import Assignment, Header, commit
from aonode.scheduler.confirm import Confirmation, Stage, complete, relay
from aonode.scheduler.core import ScheduleState
from aonode.scheduler.timestamp import TimestampSource
from aonode.scheduler.upload import Uploader
from aonode.store.base import AssignmentRecord, MessageRecord, ScheduleLog
from aonode.store.shared import append_submitter
from aonode.wallet import RSAWallet, Wallet

log = logging.getLogger("aonode.scheduler")

_RECENT = 8192  # message ids remembered for re-post detection while not yet durable
_INFLIGHT = 8192  # assigned-but-not-durable entries allowed before the actor waits
_DURABLE_KEPT = 512  # durable assignments kept for the process worker (a compute batch is 256)


@dataclass(frozen=True, slots=True)
class ServerOptions:
    mode: Mode = Mode.LOCAL_CONFIRMATION
    queue_size: int = 1024


@dataclass(slots=True)
class _Request:
    message: Message
    path: str
    deadline: float
    reply: asyncio.Future[Assignment]
    received: float = field(default_factory=time.perf_counter)


@dataclass(slots=True)
class _Entry:
    header: Header
    body: Message
    signed: asyncio.Future[Assignment]
    reply: asyncio.Future[Assignment]  # the request that got the slot (not re-posts)
    received: float
    durable: asyncio.Future[Assignment]
    # only a mode that waits for the upload reads it; the others share ``durable``
    # (one future fewer per message)
    uploaded: asyncio.Future[Assignment]


class SchedulerServer:
    """Assigns slots for one process; see the module docstring."""

    def __init__(
        self,
        process: Message,
        *,
        wallets: Sequence[Wallet],
        store: ScheduleLog,
        timestamps: TimestampSource,
        options: ServerOptions,
        signer: Executor | None = None,
        uploads: Uploader | None = None,
    ) -> None:
        if not wallets:
            raise SchedulerError("a scheduler server needs at least one commitment wallet")
        self.process = process
        self.id = process.id
        self.wallets = tuple(wallets)
        self._store = store
        # queue an append and get its future without a task per append, when the store can
        self._submit = append_submitter(store)
        self._timestamps = timestamps
        self.options = options
        # the one decision of which stage answers a client; ``uploads``: durable
        # slots go to the upload target
        self.confirmation = Confirmation(options.mode, uploads)
        # the mode answers at ``durable``: _settle completes the request's reply itself
        # (what Confirmation.answer would relay one callback later)
        self._answers_at_settle = self.confirmation.stage is Stage.DURABLE
        self._signer = signer if any(isinstance(w, RSAWallet) for w in wallets) else None
        self._state = ScheduleState(process.id)
        self._queue: asyncio.Queue[_Request | None] = asyncio.Queue(options.queue_size)
        self._pipeline: asyncio.Queue[_Entry | None] = asyncio.Queue(1024)
        self._recent: OrderedDict[str, _Entry] = OrderedDict()
        # slots given and not yet settled (durable or failed): what wait_durable awaits
        self._unsettled: dict[int, asyncio.Future[Assignment]] = {}
        # The newest durable assignments by slot: the process worker computes from
        # these instead of reading and re-parsing what was just stored.
        self._durable: OrderedDict[int, Assignment] = OrderedDict()
        self._pending = 0  # slots given and not yet settled; at most _INFLIGHT
        self._room: asyncio.Future[None] | None = None  # the actor waits on it when full
        self._settled = asyncio.Event()
        self._settled.set()
        self._broken = False
        self._tasks: list[asyncio.Task[None]] = []
        self._appends: set[asyncio.Future[Any]] = set()
        self._stopping = False
        self.assigned = 0
        self.observer: Instrument | None = None

    @property
    def uploads(self) -> Uploader | None:
        return self.confirmation.uploads

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        """Resume from the latest stored assignment, then start the actor."""
        await self._resume()
        self._tasks = [
            asyncio.create_task(self._actor(), name=f"scheduler:{self.id}"),
            asyncio.create_task(self._committer(), name=f"committer:{self.id}"),
        ]
        lifecycle.info("scheduler started", extra=where(self.id, self.current))

    async def stop(self) -> None:
        """Assign what is queued, wait until it is durable, then end."""
        if self._stopping:
            return
        self._stopping = True
        await self._queue.put(None)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._appends:
            await asyncio.gather(*self._appends, return_exceptions=True)
        lifecycle.info("scheduler stopped", extra=where(self.id, self.current))

    @property
    def current(self) -> int:
        """The last slot given (-1 before slot 0)."""
        return self._state.current

    @property
    def running(self) -> bool:
        return bool(self._tasks) and not all(t.done() for t in self._tasks)

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "current": self.current,
            "hash_chain": self._state.hash_chain,
            "wallets": [w.address for w in self.wallets],
            "mode": self.options.mode.value,
            "queue": self._queue.qsize(),
            "inflight": self._pending,
            "running": self.running,
        }

    # -- requests --------------------------------------------------------

    def submit(self, message: Message, *, path: str, deadline: float) -> asyncio.Future[Assignment]:
        """Queue ``message``; the future completes when the mode says so.

        Raises :class:`Overloaded` at once when the queue is full, so the
        caller can answer 503 instead of waiting.
        """
        if self._stopping:
            raise Overloaded("the scheduler for this process is stopping", retry_after=1)
        reply: asyncio.Future[Assignment] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Request(message, path, deadline, reply))
        except asyncio.QueueFull:
            raise Overloaded(
                f"the queue of process {self.id} is full ({self.options.queue_size})",
                retry_after=1,
            ) from None
        return reply

    async def schedule(
        self, message: Message, *, path: str = "compute", deadline: float | None = None
    ) -> Assignment:
        """Admit ``message``: its existing slot if it has one, else the next slot.

        The one place a scheduling request is answered.  A re-post of a
        message already durable gets its stored assignment (one not yet
        durable is recognised by the actor), never a second slot.  The answer
        comes when the server's mode says so (:attr:`confirmation`).
        """
        if deadline is None:
            deadline = asyncio.get_running_loop().time() + 10.0
        mid = message.id
        stored = await self._store.by_message(self.id, mid)
        if stored is not None:
            assignment = Assignment.from_stored(stored)
            return await self.confirmation.stored(
                assignment, deadline=deadline, process=self.id, message=mid
            )
        reply = self.submit(message, path=path, deadline=deadline)
        return await self.confirmation.wait(reply, deadline=deadline, process=self.id, message=mid)

    # -- the actor -------------------------------------------------------

    async def _actor(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while (req := await self._queue.get()) is not None:
                if req.reply.done():  # the caller went away: never assign it
                    continue
                if loop.time() > req.deadline:
                    req.reply.set_exception(
                        Expired("the request waited past its abort time and was not assigned")
                    )
                    continue
                try:
                    await self._assign(req)
                except Exception as exc:  # keep serving; the request gets the error
                    log.exception("assignment failed for process %s", self.id, extra=where(self.id))
                    if not req.reply.done():
                        req.reply.set_exception(exc)
        finally:
            await self._pipeline.put(None)

    async def _assign(self, req: _Request) -> None:
        if self._broken:
            await self._recover()
        known = self._recent.get(req.message.id)
        if known is not None and not (known.durable.done() and known.durable.exception()):
            self.confirmation.answer(known, req.reply)
            return
        while self._pending >= _INFLIGHT:
            self._room = asyncio.get_running_loop().create_future()
            await self._room
        header = self._state.assign(
            req.message.id,
            req.message.id_bytes,
            path=req.path,
            block=self._timestamps.current(),
            now_ms=time.time_ns() // 1_000_000,
        )
        signed = self._sign(header, req.message)
        self.assigned += 1
        loop = asyncio.get_running_loop()
        durable: asyncio.Future[Assignment] = loop.create_future()
        uploaded = loop.create_future() if self.confirmation.waits_for_upload else durable
        entry = _Entry(header, req.message, signed, req.reply, req.received, durable, uploaded)
        self._recent[req.message.id] = entry
        self._unsettled[header.slot] = entry.durable
        if len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
        self._pending += 1
        self._settled.clear()
        if not self._answers_at_settle:  # else _settle answers it
            self.confirmation.answer(entry, req.reply)
            if self.observer is not None:  # timed when the reply completes
                req.reply.add_done_callback(functools.partial(self._answered, req.received))
        if self._signer is None:
            self._commit(entry)  # signed inline: nothing to wait for, no hand-off
        else:
            await self._pipeline.put(entry)

    def _sign(self, header: Header, body: Message) -> asyncio.Future[Assignment]:
        loop = asyncio.get_running_loop()
        wallets, observer = self.wallets, self.observer

        def work() -> Assignment:
            started = time.perf_counter()
            assignment = Assignment(header, commit(header, wallets), body)
            if observer is not None:
                observer.signed(time.perf_counter() - started)
            return assignment

        if self._signer is None:
            fut: asyncio.Future[Assignment] = loop.create_future()
            try:
                fut.set_result(work())
            except Exception as exc:
                fut.set_exception(exc)
            return fut
        return asyncio.wrap_future(self._signer.submit(work), loop=loop)

    def _upload(self, entry: _Entry, durable: asyncio.Future[Assignment]) -> None:
        """A durable slot is in the upload backlog; ``uploaded`` completes on acceptance."""
        remote = self.confirmation.waits_for_upload
        if durable.cancelled() or durable.exception() is not None:
            if remote:  # the reply waits on ``uploaded``: fail it like the write
                relay(durable, entry.uploaded)
            return
        assert self.uploads is not None
        assignment = durable.result()
        self.uploads.stored(self.id, assignment.slot)
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

        self.uploads.wait(self.id, assignment.slot).add_done_callback(accepted)

    def _answered(self, received: float, reply: asyncio.Future[Assignment]) -> None:
        if self.observer is not None and not reply.cancelled() and reply.exception() is None:
            self.observer.assigned(self.options.mode.value, False, time.perf_counter() - received)

    def _settle(
        self, entry: _Entry, assignment: Assignment | None, exc: BaseException | None = None
    ) -> None:
        """``entry`` is durable (``assignment``) or failed (``exc``): the server's
        bookkeeping, done before anyone awaiting ``durable`` runs, then the future."""
        durable = entry.durable
        if durable.done():
            return
        self._unsettled.pop(entry.header.slot, None)
        self._pending -= 1
        if (room := self._room) is not None and not room.done():
            room.set_result(None)
        if exc is not None:
            self._broken = True
        if self._pending == 0:
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
                timed = self._answers_at_settle and not entry.reply.done()
                latency = time.perf_counter() - entry.received if timed else None
                observer.assigned(self.options.mode.value, True, latency)
        if self._answers_at_settle:
            complete(durable, entry.reply)
        if self.uploads is not None:
            self._upload(entry, durable)

    async def _recover(self) -> None:
        """After a failed write: let in-flight work settle, resume from the store."""
        await self._settled.wait()
        for key in [k for k, e in self._recent.items() if e.durable.exception() is not None]:
            del self._recent[key]
        await self._resume()
        self._broken = False
        log.warning(
            "scheduler for %s resumed at slot %d after a failed write",
            self.id,
            self.current,
            extra=where(self.id, self.current),
        )

    async def _resume(self) -> None:
        latest = await self._store.latest(self.id)
        if latest is None:
            self._state.resume(None)
        else:
            stamped = orjson.loads(latest.document).get("timestamp", 0)
            self._state.resume(latest.slot, latest.hash_chain, int(stamped))

    # -- the committer ---------------------------------------------------

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

    async def _committer(self) -> None:
        """Entries signed on the thread pool, in slot order (inline-signed ones never
        come here: :meth:`_assign` commits them at once)."""
        while (entry := await self._pipeline.get()) is not None:
            with contextlib.suppress(Exception):  # _commit reports a failed signature
                await entry.signed
            self._commit(entry)

    def _commit(self, entry: _Entry) -> None:
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

    def _appended(self, entry: _Entry, assignment: Assignment, queued: asyncio.Future[Any]) -> None:
        self._appends.discard(queued)
        if queued.cancelled():
            self._settle(entry, None, self._store_failed(entry, StoreError("append cancelled")))
        elif (exc := queued.exception()) is not None:
            self._settle(entry, None, self._store_failed(entry, exc))
        else:
            self._settle(entry, assignment)

    async def _append(
        self, entry: _Entry, assignment: Assignment, record: AssignmentRecord, body: MessageRecord
    ) -> None:
        try:
            await self._store.append(record, body)
        except Exception as exc:
            self._settle(entry, None, self._store_failed(entry, exc))
        else:
            self._settle(entry, assignment)

    def _store_failed(self, entry: _Entry, exc: BaseException) -> StoreError:
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
