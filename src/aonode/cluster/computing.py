"""The compute use cases of one cluster worker: its own processes here, the rest forwarded.

A process computes on the worker that owns it (:func:`~aonode.cluster.shard.shard_of`),
where its scheduler actor runs too, so one runtime per process exists on the
node and aggressive mode's not-yet-durable slots are known where they are
computed.  A request for a process owned elsewhere reads the process definition
from the shared store where it landed (a 404 costs no hop) and forwards only the
use-case call — compute a slot, now, a dry run, a snapshot — with the process id;
the owner answers with the results as JSON.  ``wait-durable`` is push's: a walk
reaching another worker's process waits there for the slot to be durable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

import orjson

from aonode.cluster.channel import Handler, Link
from aonode.cluster.shard import shard_of
from aonode.message import Message
from aonode.process.device import ProcessDevice
from aonode.process.runtime.base import Json, Results
from aonode.process.worker import ProcessWorker
from aonode.services import Computing, Scheduling

Wait = Callable[[str, int], Awaitable[None]]  # (process, slot): returns once it is durable


def results_json(results: Results) -> Json:
    """Results as they cross the channel (with ``extra``, which to_json leaves out)."""
    doc = results.to_json()
    if results.extra:
        doc["extra"] = dict(results.extra)
    return doc


def results_from(doc: Json) -> Results:
    """The results :func:`results_json` sent."""
    results = Results.from_json(doc)
    extra = doc.get("extra")
    return replace(results, extra=extra) if extra else results


class RemoteWorker:
    """:class:`~aonode.services.Computing` of a process owned by another worker."""

    def __init__(self, process_id: str, link: Link) -> None:
        self.process_id = process_id
        self.link = link

    async def compute(self, slot: int) -> Results:
        doc = await self.link.call_json("compute", [self.process_id, slot])
        return results_from(doc)

    async def now(self) -> tuple[int, Results]:
        slot, doc = await self.link.call_json("now", self.process_id)
        return int(slot), results_from(doc)

    async def dryrun(self, msg: Json) -> tuple[int, Results]:
        slot, doc = await self.link.call_json("dryrun", [self.process_id, msg])
        return int(slot), results_from(doc)

    async def snapshot(self) -> tuple[int, bytes]:
        reply = await self.link.call("snapshot", self.process_id.encode())
        slot, _, image = reply.partition(b"\n")
        return int(slot), image


class ShardedProcesses:
    """:class:`~aonode.services.Processes` for worker ``index`` of ``count``."""

    def __init__(
        self, local: ProcessDevice, index: int, count: int, peers: Mapping[int, Link]
    ) -> None:
        self.local = local
        self.index = index
        self.count = count
        self.peers = peers

    async def worker(self, process: Message) -> Computing:
        owner = shard_of(process.id, self.count)
        if owner == self.index:
            return await self.local.worker(process)
        return RemoteWorker(process.id, self.peers[owner])

    def info(self) -> dict[str, Any]:
        return self.local.info()


class ShardedWaits:
    """Push's wait for a slot to be durable, on the worker whose actor gave it."""

    def __init__(self, local: Wait, index: int, count: int, peers: Mapping[int, Link]) -> None:
        self.local = local  # the node's own wait_durable
        self.index = index
        self.count = count
        self.peers = peers

    async def wait_durable(self, process_id: str, slot: int) -> None:
        owner = shard_of(process_id, self.count)
        if owner == self.index:
            await self.local(process_id, slot)
        else:
            await self.peers[owner].call_json("wait-durable", [process_id, slot])


def handlers(
    processes: ProcessDevice, scheduling: Scheduling, wait_durable: Wait
) -> dict[str, Handler]:
    """What an owner answers to the calls :class:`RemoteWorker` forwards."""

    async def worker(pid: str) -> ProcessWorker:
        return await processes.worker(await scheduling.require_process(pid))

    async def compute(payload: bytes) -> bytes:
        pid, slot = orjson.loads(payload)
        return orjson.dumps(results_json(await (await worker(pid)).compute(int(slot))))

    async def now(payload: bytes) -> bytes:
        slot, results = await (await worker(orjson.loads(payload))).now()
        return orjson.dumps([slot, results_json(results)])

    async def dryrun(payload: bytes) -> bytes:
        pid, msg = orjson.loads(payload)
        slot, results = await (await worker(pid)).dryrun(msg)
        return orjson.dumps([slot, results_json(results)])

    async def snapshot(payload: bytes) -> bytes:
        slot, image = await (await worker(payload.decode())).snapshot()
        return str(slot).encode() + b"\n" + image

    async def wait(payload: bytes) -> bytes:
        pid, slot = orjson.loads(payload)
        await wait_durable(pid, int(slot))
        return b"null"

    return {
        "compute": compute,
        "now": now,
        "dryrun": dryrun,
        "snapshot": snapshot,
        "wait-durable": wait,
    }
