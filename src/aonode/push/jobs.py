"""Async pushes that survive restarts: accepted durably, walked in the background.

``accept`` stores a ``push-job`` record before the caller answers 202; the
node resumes every such record when it starts.  In a cluster (``serve
--workers N``) every job belongs to the worker that owns its process
(``owns``): that worker alone resumes it after a restart, and a job accepted
on another worker is handed to it (``hand_off``) rather than walked where it
landed, so one job is walked by one worker at a time, whichever worker
restarts.  A walk that meets a
transient failure (a remote node unreachable, a full queue) waits with
exponential backoff and walks again — the ledger makes a re-walk deliver
only what is still missing — so a job is never dropped; it is deleted when
a walk completes.  Stopping the node cancels running jobs: their records
stay, and the next start resumes them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aonode.errors import AONodeError, RemoteError
from aonode.logs import where
from aonode.push.failures import Failures
from aonode.push.ledger import Ledger, PushJob
from aonode.push.limits import PushLimits
from aonode.push.remote import Remote
from aonode.push.tree import TRANSIENT, Walker

if TYPE_CHECKING:
    from aonode.push.host import PushHost

log = logging.getLogger("aonode.push")

Json = dict[str, Any]
Owns = Callable[[str], bool]
HandOff = Callable[[PushJob], Awaitable[None]]


def _everything(process: str) -> bool:
    return True


class Pusher:
    """A node's ``~push@1.0``: sync walks, durable async jobs, remote delivery."""

    def __init__(self, node: PushHost, limits: PushLimits) -> None:
        self.limits = limits
        self.ledger = Ledger(node.store, node.wallets[0])
        self.remote = Remote(node, limits)
        self.failures = Failures(node.store, node.instruments.push_failed)
        self.walker = Walker(node, self.ledger, self.remote, limits, self.failures)
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self._handing: set[asyncio.Task[None]] = set()  # hand-offs still trying the owner
        self._owns: Owns = _everything
        self._hand_off: HandOff | None = None
        self._started = False

    async def start(self, *, owns: Owns | None = None, hand_off: HandOff | None = None) -> None:
        """Open the remote client and resume the pending jobs of the processes it ``owns``.

        ``owns`` (default: every process) says which jobs are this node's: a
        cluster worker resumes only its own processes' jobs, so each job left
        by a previous run is resumed once per cluster.  ``hand_off`` sends a
        job accepted here for a process this node does not own to its owner.
        """
        self._owns = owns if owns is not None else _everything
        self._hand_off = hand_off
        await self.remote.start()
        await self.failures.load()
        # before the records are read: a job handed over from now on is either
        # in what is read below or run by adopt() (its record is durable first)
        self._started = True
        for job in await self.ledger.jobs():
            if self._owns(job.process):
                self._run(job)

    async def stop(self) -> None:
        self._started = False
        tasks = [*self._jobs.values(), *self._handing]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.remote.close()

    async def push(
        self,
        pid: str,
        slot: int,
        *,
        result_depth: int = 1,
        depth: int = 0,
        budget: int | None = None,
    ) -> Json:
        """A sync push: the whole tree (see :mod:`aonode.push.tree`)."""
        return await self.walker.push(
            pid, slot, result_depth=result_depth, depth=depth, budget=budget
        )

    async def accept(self, pid: str, slot: int) -> PushJob:
        """Record an async push durably, then start it; returns once it is recorded.

        A job for a process another worker owns is handed to that worker,
        which walks it (and would resume it after a restart).
        """
        job = PushJob(pid, slot)
        await self.ledger.put_job(job)
        if self._hand_off is None or self._owns(pid):
            self._run(job)
        else:
            task = asyncio.create_task(self._hand(job), name=f"hand off push {job.key}")
            self._handing.add(task)
            task.add_done_callback(self._handing.discard)
        return job

    def adopt(self, job: PushJob) -> None:
        """Walk ``job``, which another worker recorded for a process this node owns.

        Before :meth:`start` read the records it does nothing: the record is
        durable before the hand-off is sent, so start() resumes it.
        """
        if self._started:
            self._run(job)

    def pending(self) -> int:
        """Async pushes accepted and not yet complete."""
        return len(self._jobs)

    async def idle(self) -> None:
        """Wait until no async push is running (for callers in this process)."""
        while self._jobs:
            await asyncio.gather(*self._jobs.values(), return_exceptions=True)

    def _run(self, job: PushJob) -> None:
        if job.key in self._jobs:
            return  # already walking; its completion covers this acceptance too
        task = asyncio.create_task(self._complete(job), name=f"push {job.key}")
        self._jobs[job.key] = task
        task.add_done_callback(lambda t: self._forget(job.key, t))

    async def _hand(self, job: PushJob) -> None:
        """Tell the owner of ``job.process`` to walk it, until it has been told.

        The owner's adopt() is idempotent (one walk per job key), so telling
        it twice is harmless; a restarting owner resumes the record anyway.
        """
        assert self._hand_off is not None
        delay = self.limits.retry_seconds
        while True:
            try:
                await self._hand_off(job)
            except Exception as exc:
                log.info(
                    "async push of %s slot %d: its owner was not told (%s); again in %.1fs",
                    job.process,
                    job.slot,
                    exc,
                    delay,
                    extra=where(job.process, job.slot),
                )
            else:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.limits.retry_max_seconds)

    def _forget(self, key: str, task: asyncio.Task[None]) -> None:
        if self._jobs.get(key) is task:
            del self._jobs[key]

    async def _complete(self, job: PushJob) -> None:
        delay = self.limits.retry_seconds
        while True:
            try:
                await self.walker.push(job.process, job.slot, result_depth=0, background=True)
            except TRANSIENT as exc:
                # a failed delivery was reported once (WARNING) by Failures: not per re-walk
                log.log(
                    logging.INFO if isinstance(exc, RemoteError) else logging.WARNING,
                    "async push of %s slot %d: %s; walking again in %.1fs",
                    job.process,
                    job.slot,
                    exc.message,
                    delay,
                    extra=where(job.process, job.slot),
                )
            except AONodeError as exc:
                log.error(
                    "async push of %s slot %d failed: %s",
                    job.process,
                    job.slot,
                    exc,
                    extra=where(job.process, job.slot),
                )
                break  # permanent (e.g. the slot's process is gone): retrying cannot help
            except Exception:
                log.exception(
                    "async push of %s slot %d failed; walking again",
                    job.process,
                    job.slot,
                    extra=where(job.process, job.slot),
                )
            else:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.limits.retry_max_seconds)
        await self.ledger.finish_job(job)
