"""The dashboard of a cluster: every worker's live state, merged, wherever a poll lands.

A process's scheduler actor and compute worker run on the worker that owns it
(:mod:`aonode.cluster.shard`), and each worker keeps the push failures it
reported in its memory.  A poll lands on one worker, which asks every peer for
its share (one ``live`` call each) and merges: the active processes are the
union, in worker order; a process's row is its owner's; the open push failures
are the union by delivery key (each worker also holds those a previous run
left), ``reported`` is the sum (a failure is first reported by one worker
only, the store deciding), ``recent`` the newest of the union.  A worker that is
restarting at that moment is left out of that one answer, which says so:
``answered`` counts the workers whose state it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from aonode.cluster.channel import Handler, Link, ask_all
from aonode.cluster.shard import shard_of
from aonode.live import Live, LocalLive
from aonode.push.failures import RECENT
from aonode.push.ledger import delivery_key


def merge(shares: Mapping[int, Live], *, here: int, of: int) -> Live:
    """One view of the shares of the workers (by index) that answered."""
    actors: dict[str, tuple[int, int]] = {}
    computed: dict[str, int | None] = {}
    keys: set[str] = set()
    recent: dict[str, dict[str, Any]] = {}
    reported = 0
    for index in sorted(shares):
        share = shares[index]
        for pid, actor in share.actors.items():
            if pid not in actors or shard_of(pid, of) == index:
                actors[pid] = actor
        for pid, at in share.computed.items():
            if pid not in computed or shard_of(pid, of) == index:
                computed[pid] = at
        keys |= share.failure_keys
        reported += int(share.push_failures.get("reported", 0))
        for failure in share.push_failures.get("recent", []):
            recent.setdefault(_key(failure), failure)
    newest = sorted(recent.values(), key=lambda f: int(f.get("time", 0)), reverse=True)
    failures = {"open": len(keys), "reported": reported, "recent": newest[:RECENT]}
    return Live(actors, computed, failures, frozenset(keys), here, len(shares), of)


def _key(failure: dict[str, Any]) -> str:
    """The delivery key of a failure as summary() lists it."""
    return delivery_key(str(failure["process"]), int(failure["slot"]), int(failure["outbox-index"]))


class ClusterLive:
    """:class:`~aonode.live.LiveView` of worker ``index`` of ``count``: its peers' merged in."""

    def __init__(self, local: LocalLive, index: int, count: int, peers: Mapping[int, Link]) -> None:
        self.local = local
        self.index = index
        self.count = count
        self.peers = peers

    async def live(self) -> Live:
        answers = await ask_all(self.peers, "live", "this answer")
        shares = {self.index: self.local.now()}
        shares.update((i, Live.from_json(orjson.loads(a))) for i, a in answers.items())
        return merge(shares, here=self.index, of=self.count)


def handlers(local: LocalLive) -> dict[str, Handler]:
    """A worker's own live state, for the peer a dashboard poll landed on."""

    async def live(payload: bytes) -> bytes:
        return orjson.dumps(local.now().to_json())

    return {"live": live}
