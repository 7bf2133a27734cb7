"""``GET /~scheduler@1.0/status`` of a cluster: the parts each worker holds, merged.

Most of the status is the node's whatever worker answers (address, processes,
mode, store, nodes, timestamp source, version).  Three parts live in one
worker's memory: the compute ``workers`` (process runtimes loaded there), the
async ``push-jobs`` it is walking and its ``upload`` queue.  A status request
lands on one worker, which asks every peer for those parts (one ``status``
call each) and merges: runtimes by owner (:mod:`aonode.cluster.shard`), jobs
and upload counts summed.  ``cluster`` says how many workers answered, of how
many, and which one served the request; a worker restarting at that moment is
left out of that one answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from aonode.cluster.channel import Handler, Link, ask_all
from aonode.cluster.shard import shard_of

Json = dict[str, Any]
_PARTS = ("workers", "push-jobs", "upload")
_UPLOAD_SUMS = ("pending", "processes-behind", "uploaded", "bundles")


def share_of(status: Json) -> Json:
    """The parts of one worker's status that only that worker knows."""
    return {part: status.get(part) for part in _PARTS}


def merge(status: Json, shares: Mapping[int, Json], *, here: int, of: int) -> Json:
    """``status`` (the answering worker's) with the parts of every share merged in."""
    runtimes: Json = {}
    for index in sorted(shares):
        for pid, info in (shares[index].get("workers") or {}).items():
            if pid not in runtimes or shard_of(pid, of) == index:
                runtimes[pid] = info
    uploads = [u for i in sorted(shares) if (u := shares[i].get("upload"))]
    upload: Json | None = None
    if uploads:
        own = shares.get(here, {}).get("upload") or uploads[0]
        upload = dict(own)
        for key in _UPLOAD_SUMS:
            upload[key] = sum(int(u.get(key) or 0) for u in uploads)
        for key in ("last-tx", "last-error"):
            upload[key] = own.get(key) or next((u[key] for u in uploads if u.get(key)), None)
    return {
        **status,
        "workers": runtimes,
        "push-jobs": sum(int(s.get("push-jobs") or 0) for s in shares.values()),
        "upload": upload,
        "cluster": {"answered": len(shares), "of": of, "here": here},
    }


class ClusterStatus:
    """The status of worker ``index`` of ``count``, its peers' parts merged in."""

    def __init__(
        self,
        local: Callable[[], Awaitable[Json]],
        index: int,
        count: int,
        peers: Mapping[int, Link],
    ) -> None:
        self.local = local
        self.index = index
        self.count = count
        self.peers = peers

    async def __call__(self) -> Json:
        mine, answers = await asyncio.gather(
            self.local(), ask_all(self.peers, "status", "this answer")
        )
        shares = {self.index: share_of(mine)}
        shares.update((i, orjson.loads(a)) for i, a in answers.items())
        return merge(mine, shares, here=self.index, of=self.count)


def handlers(local: Callable[[], Awaitable[Json]]) -> dict[str, Handler]:
    """A worker's own parts, for the peer a status request landed on."""

    async def status(payload: bytes) -> bytes:
        return orjson.dumps(share_of(await local()))

    return {"status": status}
