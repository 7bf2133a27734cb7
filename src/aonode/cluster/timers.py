"""Cron on a cluster: the timers run on worker 0 only; the other workers forward to it.

Every worker reading the shared task table and firing would fire each task
once per worker.  So worker 0 alone runs :class:`~aonode.cron.timer.Cron`:
a ``~cron@1.0`` request landing on another worker is checked for its
signature where it landed, and only the use-case call (add, cancel, list,
with the verified caller) travels to worker 0.  A firing goes through worker
0's routes like any request, so a firing for a process owned by another
worker is forwarded there by the scheduling routing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

import orjson

from aonode.cluster.channel import Handler, Link
from aonode.cron.task import Caller, CronTask, TaskType
from aonode.cron.timer import Cron

TIMERS = 0  # the worker that runs the timers


class ForwardedTimers:
    """:class:`~aonode.services.Timers` of a worker that does not run the timers."""

    def __init__(self, cron: Cron, link: Link) -> None:
        self.cron = cron  # the local one, never started: only its operator token is used
        self.link = link

    def is_operator(self, token: str) -> bool:
        return self.cron.is_operator(token)

    async def add(
        self, type_: TaskType, params: Iterable[tuple[str, str]], caller: Caller
    ) -> CronTask:
        body = {"type": type_, "params": [list(p) for p in params], "caller": asdict(caller)}
        return CronTask.from_bytes(await self.link.call("cron-add", orjson.dumps(body)))

    async def cancel(self, task_id: str, caller: Caller) -> None:
        await self.link.call_json("cron-cancel", {"task": task_id, "caller": asdict(caller)})

    async def tasks(self) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = await self.link.call_json("cron-tasks", None)
        return listed


def handlers(cron: Cron) -> dict[str, Handler]:
    """What worker 0 answers to the calls :class:`ForwardedTimers` sends."""

    async def add(payload: bytes) -> bytes:
        body = orjson.loads(payload)
        kind: TaskType = "every" if body["type"] == "every" else "once"
        params = [(str(k), str(v)) for k, v in body["params"]]
        task = await cron.add(kind, params, Caller(**body["caller"]))
        return task.to_bytes()

    async def cancel(payload: bytes) -> bytes:
        body = orjson.loads(payload)
        await cron.cancel(str(body["task"]), Caller(**body["caller"]))
        return b"null"

    async def tasks(payload: bytes) -> bytes:
        return orjson.dumps(await cron.tasks())

    return {"cron-add": add, "cron-cancel": cancel, "cron-tasks": tasks}
