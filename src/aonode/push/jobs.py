"""Async pushes that survive restarts: accepted durably, walked in the background.

``accept`` stores a ``push-job`` record before the caller answers 202; the
node resumes every such record when it starts.  A walk that meets a
transient failure (a remote node unreachable, a full queue) waits with
exponential backoff and walks again — the ledger makes a re-walk deliver
only what is still missing — so a job is never dropped; it is deleted when
a walk completes.  Stopping the node cancels running jobs: their records
stay, and the next start resumes them.
"""

from __future__ import annotations

import asyncio
import logging
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


class Pusher:
    """A node's ``~push@1.0``: sync walks, durable async jobs, remote delivery."""

    def __init__(self, node: PushHost, limits: PushLimits) -> None:
        self.limits = limits
        self.ledger = Ledger(node.store, node.wallets[0])
        self.remote = Remote(node, limits)
        self.failures = Failures(node.store, node.instruments.push_failed)
        self.walker = Walker(node, self.ledger, self.remote, limits, self.failures)
        self._jobs: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        """Open the remote client and resume the jobs a previous run left pending."""
        await self.remote.start()
        await self.failures.load()
        for job in await self.ledger.jobs():
            self._run(job)

    async def stop(self) -> None:
        tasks = list(self._jobs.values())
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
        """Record an async push durably, then start it; returns once it is recorded."""
        job = PushJob(pid, slot)
        await self.ledger.put_job(job)
        self._run(job)
        return job

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
