"""The scheduling use cases: admit a message, read a schedule, report a slot.

:class:`Scheduling` is what HTTP, the CLI, push and cron call to schedule and
to read schedules.  It owns the whole admission decision before a message
reaches its process's actor (``server.py``):

1. the message names a process (its own id, its target, the ``target`` query
   parameter, or ``assign_to``), else 400;
2. a running server whose lease this node lost is stopped (its writes would
   be fenced off anyway);
3. a spawn passes the ``spawn_check`` it was given (the node wires the
   process device's checks, so this package never imports ``process/``) and
   names a scheduler; any other message needs a process this node knows (404);
4. the process names one of this node's wallets (else :class:`NotOurProcess`),
   and on a shared store this node takes its lease (else a redirect to the
   owner, or 503 while an earlier run of this node still holds it).

Whether the message already has a slot, and when the client is answered, is
the server's (``server.py``, ``confirm.py``).  Everything it needs comes at
construction; it reads no configuration and no globals.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from aonode.config import Mode
from aonode.errors import (
    BadParameter,
    InvalidMessage,
    NotFound,
    NotOurProcess,
    NotOwner,
    Overloaded,
)
from aonode.instrument import Instrument
from aonode.message import Message
from aonode.scheduler.assignment import Assignment
from aonode.scheduler.registry import Registry
from aonode.scheduler.server import SchedulerServer, ServerOptions
from aonode.scheduler.timestamp import TimestampSource
from aonode.scheduler.upload import Uploader
from aonode.store.base import Ownership, Store
from aonode.wallet import Wallet

SpawnCheck = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SchedulingOptions:
    mode: Mode = Mode.LOCAL_CONFIRMATION
    queue_size: int = 1024  # per process; a full queue answers 503
    abort_seconds: float = 10.0  # a request waiting longer is never assigned
    page_limit: int = 1000  # the most assignments one schedule page holds
    url: str = ""  # this node's advertised URL: a lease held under it is ours


@dataclass(frozen=True, slots=True)
class SchedulePage:
    process: str
    assignments: list[Assignment]
    continues: bool
    next: int | None


class Scheduling:
    """The scheduling and schedule-reading use cases (see the module docstring)."""

    def __init__(
        self,
        wallets: Sequence[Wallet],
        store: Store,
        timestamps: TimestampSource,
        *,
        spawn_check: SpawnCheck,
        options: SchedulingOptions,
        leases: Ownership | None = None,
        uploads: Uploader | None = None,
        signer: Executor | None = None,
        instruments: Instrument | None = None,
    ) -> None:
        self.wallets = list(wallets)
        self.store = store
        self.timestamps = timestamps
        self.options = options
        self.leases = leases
        self.uploads = uploads
        self._spawn_check = spawn_check
        self._signer = signer
        self._instruments = instruments
        self.registry = Registry(self._make_server)

    @property
    def addresses(self) -> list[str]:
        return [w.address for w in self.wallets]

    async def stop(self) -> None:
        """Drain every process's queue: what was accepted is assigned and durable."""
        await self.registry.stop_all()

    # -- scheduling ------------------------------------------------------

    async def schedule(
        self,
        message: Message,
        *,
        path: str = "compute",
        query_target: str | None = None,
        assign_to: str | None = None,
    ) -> Assignment:
        """Give ``message`` a slot on its process's schedule (or its existing one).

        ``assign_to`` names the process outright, whatever the message's own
        target: the legacy SU's assignment of an existing message.
        """
        pid = assign_to or message.process_id(query_target)
        if pid is None:
            raise InvalidMessage(
                "the message names no process: it is not Type: Process, has no target, "
                "and no target query parameter was given",
                code="missing-target",
            )
        server = self.registry.find(pid)
        if server is not None and self.leases is not None and not self.leases.holds(pid):
            await self.registry.stop(pid)  # its lease was lost: the fence refuses its writes
            server = None
        if server is None:  # else the fast path: a running server already vetted its process
            server = await self.registry.find_or_start(await self._admit(message, pid, assign_to))
        deadline = asyncio.get_running_loop().time() + self.options.abort_seconds
        return await server.schedule(message, path=path, deadline=deadline)

    async def _admit(self, message: Message, pid: str, assign_to: str | None) -> Message:
        """The process ``message`` goes to, once it may be scheduled here."""
        process: Message | None
        if message.is_process and assign_to is None:
            await self._spawn_check(message)  # 400 (bad spawn, module, image) now, not later
            if not message.schedulers():
                raise InvalidMessage(
                    "the process names no scheduler (tag Scheduler or Scheduler-Location)",
                    code="missing-scheduler",
                )
            process = message
        else:
            process = await self.process_message(pid)
            if process is None:
                raise NotFound(f"unknown process {pid}", code="unknown-process")
        if not self.commitment_wallets(process):
            raise NotOurProcess(
                f"process {pid} names scheduler(s) {', '.join(process.schedulers())}, "
                f"none of which this node holds ({', '.join(self.addresses)})"
            )
        return process

    def commitment_wallets(self, process: Message) -> list[Wallet]:
        """This node's wallets that ``process`` names as its scheduler."""
        named = process.schedulers()
        return [w for w in self.wallets if w.address in named]

    async def _make_server(self, process: Message) -> SchedulerServer:
        wallets = self.commitment_wallets(process)
        if not wallets:
            raise NotOurProcess(
                f"process {process.id} names scheduler(s) {process.schedulers()} "
                f"and this node holds {self.addresses}"
            )
        await self._claim(process.id)
        server = SchedulerServer(
            process,
            wallets=wallets,
            store=self.store,
            timestamps=self.timestamps,
            options=ServerOptions(mode=self.options.mode, queue_size=self.options.queue_size),
            signer=self._signer,
            uploads=self.uploads,
        )
        server.observer = self._instruments
        if self.uploads is not None:
            self.uploads.watch(process.id)  # e.g. a process taken over from another node
        return server

    async def _claim(self, pid: str) -> None:
        """Take ``pid``'s lease before serving it; raise where another node owns it."""
        if self.leases is None:
            return
        owner = await self.leases.claim(pid)
        if owner is None:
            return
        if owner.rstrip("/") == self.options.url.rstrip("/"):  # a previous run of this node
            raise Overloaded(
                f"process {pid} is still leased to an earlier run of this node",
                retry_after=math.ceil(self.leases.lease_seconds),
            )
        raise NotOwner(f"process {pid} is served by {owner}", location=owner)

    def durable_assignments(self, pid: str, first: int, last: int) -> list[Assignment]:
        """What this node's scheduler of ``pid`` just made durable (workers compute from it)."""
        server = self.registry.find(pid)
        return server.durable(first, last) if server is not None else []

    def queue_depths(self) -> list[tuple[int, str]]:
        """(queued requests, process) for every running server."""
        depths = []
        for pid in self.registry.processes():
            server = self.registry.find(pid)
            if server is not None:
                depths.append((int(server.info()["queue"]), pid))
        return depths

    # -- reading ---------------------------------------------------------

    async def process_message(self, process_id: str) -> Message | None:
        """The process definition (slot 0's body), from memory or the store."""
        server = self.registry.find(process_id)
        if server is not None:
            return server.process
        first = await self.store.slots(process_id, 0, 0, 1)
        if not first:
            return None
        return Message.from_record(first[0].body)

    async def require_process(self, process_id: str) -> Message:
        process = await self.process_message(process_id)
        if process is None:
            raise NotFound(f"unknown process {process_id}", code="unknown-process")
        return process

    async def process_owner(self, process_id: str) -> str | None:
        """The address that signed the process (None: no such process here)."""
        process = await self.process_message(process_id)
        return process.signer if process is not None else None

    async def schedule_page(
        self, process_id: str, first: int = 0, last: int | None = None, limit: int | None = None
    ) -> SchedulePage:
        await self.require_process(process_id)
        if first < 0:
            first = 0
        page_limit = self.options.page_limit
        cap = page_limit if limit is None else min(limit, page_limit)
        if cap < 1:
            raise BadParameter("limit must be at least 1")
        if last is None:
            latest = await self.store.latest(process_id)
            last = latest.slot if latest is not None else -1
        if last < first:
            return SchedulePage(process_id, [], False, None)
        rows = await self.store.slots(process_id, first, last, cap + 1)
        continues = len(rows) > cap
        rows = rows[:cap]
        assignments = [Assignment.from_stored(r) for r in rows]
        nxt = assignments[-1].slot + 1 if continues and assignments else None
        return SchedulePage(process_id, assignments, continues, nxt)

    async def slot_info(self, process_id: str) -> dict[str, Any]:
        process = await self.require_process(process_id)
        server = self.registry.find(process_id)
        if server is not None:
            current, chain = server.current, server.info()["hash_chain"]
        else:
            latest = await self.store.latest(process_id)
            current = latest.slot if latest else -1
            chain = latest.hash_chain if latest else ""
        block = self.timestamps.current()
        committers = [w.address for w in self.commitment_wallets(process)]
        return {
            "process": process_id,
            "current": current,
            "hash-chain": chain,
            "timestamp": time.time_ns() // 1_000_000,
            "block-height": block.height,
            "block-hash": block.hash,
            "addresses": committers,
            "wallet-address": committers[0] if committers else self.wallets[0].address,
        }

    async def known_processes(self) -> list[str]:
        """Every process in the store, then those only running here."""
        stored = await self.store.processes()
        seen = set(stored)
        return stored + [p for p in self.registry.processes() if p not in seen]
