"""The registry: at most one running scheduler server per process id.

``find`` never starts anything; ``find_or_start`` starts a server on first
use and is safe under concurrency (two requests for a new process share one
start); ``start`` refuses a second server for a process that has one.

A server being stopped still counts: a new one for its process starts only
once it has drained (its last writes are durable, so the new one resumes from
the true latest slot), and after ``stop_all`` began no server starts at all
(``Overloaded``: a late request of a stopping node — a cluster peer's forwarded
call, a push — is retried elsewhere or later).  Either way one process never
has two servers giving slots at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aonode.errors import AlreadyRunning, Overloaded
from aonode.message import Message
from aonode.scheduler.server import SchedulerServer

Factory = Callable[[Message], Awaitable[SchedulerServer]]


class Registry:
    def __init__(self, factory: Factory) -> None:
        self._factory = factory
        self._servers: dict[str, SchedulerServer] = {}
        self._starting: dict[str, asyncio.Future[SchedulerServer]] = {}
        self._stopping: dict[str, asyncio.Future[None]] = {}
        self._closed = False

    def find(self, process_id: str) -> SchedulerServer | None:
        return self._servers.get(process_id)

    async def start(self, process: Message) -> SchedulerServer:
        """Start the server for ``process``; raise if one exists or is starting."""
        pid = process.id
        if pid in self._servers or pid in self._starting:
            raise AlreadyRunning(f"a scheduler server for process {pid} is already running")
        return await self._start(process)

    async def find_or_start(self, process: Message) -> SchedulerServer:
        pid = process.id
        if (server := self._servers.get(pid)) is not None:
            return server
        if (starting := self._starting.get(pid)) is not None:
            return await asyncio.shield(starting)
        return await self._start(process)

    async def _start(self, process: Message) -> SchedulerServer:
        pid = process.id
        while (draining := self._stopping.get(pid)) is not None:
            await asyncio.shield(draining)  # its last slots become durable first
        if self._closed:
            raise Overloaded("the node is stopping; retry", retry_after=1)
        if (server := self._servers.get(pid)) is not None:  # started while we waited
            return server
        if (starting := self._starting.get(pid)) is not None:
            return await asyncio.shield(starting)
        fut: asyncio.Future[SchedulerServer] = asyncio.get_running_loop().create_future()
        self._starting[pid] = fut
        try:
            server = await self._factory(process)
            await server.start()
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: the error is re-raised below
            raise
        finally:
            del self._starting[pid]
        self._servers[pid] = server
        fut.set_result(server)
        return server

    def processes(self) -> list[str]:
        return list(self._servers)

    async def stop(self, process_id: str) -> None:
        server = self._servers.pop(process_id, None)
        if server is not None:
            await self._drain(process_id, server)

    async def stop_all(self) -> None:
        self._closed = True
        servers = list(self._servers.items())
        self._servers.clear()
        await asyncio.gather(*(self._drain(p, s) for p, s in servers), return_exceptions=True)

    async def _drain(self, pid: str, server: SchedulerServer) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stopping[pid] = done
        try:
            await server.stop()
        finally:
            del self._stopping[pid]
            done.set_result(None)
