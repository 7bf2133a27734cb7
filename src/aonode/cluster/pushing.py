"""Async pushes on a cluster: each job is walked by the worker that owns its process.

A ``push-mode=async`` request (or a legacy crank) may land on any worker.  The
worker it lands on records the job durably, as a single node does, and hands
it to the owner of the job's process (:func:`~aonode.cluster.shard.shard_of`)
in one channel call instead of walking it itself.  The owner is also the one
worker that resumes the job after a restart (``Pusher.start(owns=...)``), so
whichever worker restarts, no job is ever walked by two workers at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import orjson

from aonode.cluster.channel import Handler, Link
from aonode.cluster.shard import shard_of
from aonode.push import Pusher
from aonode.push.jobs import HandOff
from aonode.push.ledger import PushJob


def owner_test(index: int, count: int) -> Callable[[str], bool]:
    """Whether worker ``index`` of ``count`` owns a process."""

    def owns(process_id: str) -> bool:
        return shard_of(process_id, count) == index

    return owns


def hand_off(count: int, peers: Mapping[int, Link]) -> HandOff:
    """Give a job to the worker that owns its process (never this one: it walks its own)."""

    async def give(job: PushJob) -> None:
        link = peers[shard_of(job.process, count)]
        await link.call("push-job", orjson.dumps({"process": job.process, "slot": job.slot}))

    return give


def handlers(pusher: Pusher) -> dict[str, Handler]:
    """What an owner answers to :func:`hand_off`."""

    async def push_job(payload: bytes) -> bytes:
        doc = orjson.loads(payload)
        pusher.adopt(PushJob(str(doc["process"]), int(doc["slot"])))
        return b""

    return {"push-job": push_job}
