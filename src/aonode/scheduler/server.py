"""The scheduler server: one asyncio actor per AO process.

It is the deliberate bottleneck that makes slots gap-free: only the actor
task ever reads or advances ``current`` and ``hash_chain``.  Work is split in
two stages so that slow RSA signatures do not serialise the schedule:

1. the **actor** takes requests in arrival order, drops those past their
   abort time, answers re-posts of a known message with its existing
   assignment, and fixes slot, hash chain and timestamps; it hands signing to
   a thread pool (RSA) or signs inline (ed25519), then queues the entry;
2. the **committer** (:class:`~aonode.scheduler.commit.Committer`, which the
   server owns) takes entries in slot order, awaits each signature and
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
from aonode.errors import Expired, Overloaded, SchedulerError
from aonode.instrument import Instrument
from aonode.logs import lifecycle, where
from aonode.message import Message
from aonode.scheduler.assignment import Assignment, Header, commit
from aonode.scheduler.commit import Committer, Entry
from aonode.scheduler.confirm import Confirmation
from aonode.scheduler.core import ScheduleState
from aonode.scheduler.timestamp import TimestampSource
from aonode.scheduler.upload import Uploader
from aonode.store.base import ScheduleLog
from aonode.wallet import RSAWallet, Wallet

log = logging.getLogger("aonode.scheduler")

_RECENT = 8192  # message ids remembered for re-post detection while not yet durable


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
        self._timestamps = timestamps
        self.options = options
        # the one decision of which stage answers a client; ``uploads``: durable
        # slots go to the upload target
        self.confirmation = Confirmation(options.mode, uploads)
        # the commit/settle stage: appends, durable futures, upload notification
        self._commits = Committer(process.id, store, self.confirmation)
        self._signer = signer if any(isinstance(w, RSAWallet) for w in wallets) else None
        self._state = ScheduleState(process.id)
        self._queue: asyncio.Queue[_Request | None] = asyncio.Queue(options.queue_size)
        self._recent: OrderedDict[str, Entry] = OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.assigned = 0

    @property
    def observer(self) -> Instrument | None:
        """The metrics hooks (set by the service once built), shared with the commit stage."""
        return self._commits.observer

    @observer.setter
    def observer(self, observer: Instrument | None) -> None:
        self._commits.observer = observer

    @property
    def uploads(self) -> Uploader | None:
        return self.confirmation.uploads

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        """Resume from the latest stored assignment, then start the actor."""
        await self._resume()
        self._tasks = [
            asyncio.create_task(self._actor(), name=f"scheduler:{self.id}"),
            asyncio.create_task(self._commits.run(), name=f"committer:{self.id}"),
        ]
        lifecycle.info("scheduler started", extra=where(self.id, self.current))

    async def stop(self) -> None:
        """Assign what is queued, wait until it is durable, then end."""
        if self._stopping:
            return
        self._stopping = True
        await self._queue.put(None)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._commits.drain()
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
            "inflight": self._commits.pending,
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
            await self._commits.close()

    async def _assign(self, req: _Request) -> None:
        if self._commits.broken:
            await self._recover()
        known = self._recent.get(req.message.id)
        if known is not None and not (known.durable.done() and known.durable.exception()):
            self.confirmation.answer(known, req.reply)
            return
        await self._commits.room()
        header = self._state.assign(
            req.message.id,
            req.message.id_bytes,
            path=req.path,
            block=self._timestamps.current(),
            now_ms=time.time_ns() // 1_000_000,
        )
        signed = self._sign(header, req.message)
        self.assigned += 1
        entry = self._commits.open(header, req.message, signed, req.reply, req.received)
        self._recent[req.message.id] = entry
        if len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
        if not self._commits.answers_at_settle:  # else the commit stage answers it
            self.confirmation.answer(entry, req.reply)
            if self.observer is not None:  # timed when the reply completes
                req.reply.add_done_callback(functools.partial(self._answered, req.received))
        await self._commits.hand(entry, inline=self._signer is None)

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

    def _answered(self, received: float, reply: asyncio.Future[Assignment]) -> None:
        if self.observer is not None and not reply.cancelled() and reply.exception() is None:
            self.observer.assigned(self.options.mode.value, False, time.perf_counter() - received)

    async def _recover(self) -> None:
        """After a failed write: let in-flight work settle, resume from the store."""
        await self._commits.settled()
        for key in [k for k, e in self._recent.items() if e.durable.exception() is not None]:
            del self._recent[key]
        await self._resume()
        self._commits.broken = False
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

    # -- the commit stage (scheduler/commit.py) --------------------------

    async def wait_durable(self, slot: int) -> None:
        """Return once ``slot`` is durable; at once if it is, or was never given here.

        A failed write raises its error (the slot will be given again).
        """
        await self._commits.wait_durable(slot)

    def durable(self, first: int, last: int) -> list[Assignment]:
        """The consecutive durable assignments ``first..last`` still in memory (maybe none)."""
        return self._commits.durable(first, last)
