"""Failed deliveries: reported once, counted, kept where clients and operators look.

A delivery to another node that fails (no route to the target, the remote
answers 404 or another 4xx, the remote is unreachable) used to show only as
an entry deep in a push tree, or, in an async push, as a re-walk.  Here each
failed outbox entry ``(sender, slot, outbox index)`` becomes a durable
``push-failure`` record.  The first report of an entry — not each retry of it,
and not again after a restart — logs one WARNING with the process, slot,
outbox index and reason, and counts it (``aonode_push_failed_total{reason}``).
The open failures stay in memory for the dashboard and for the legacy
result route (``PushFailures``); a delivery that later succeeds (an async
push re-walking past an outage) closes its record.

Reasons: ``no-route`` (no node is known to schedule the target),
``not-found`` (the target's node answered 404), ``refused`` (another 4xx),
``unreachable`` (no answer, a timeout or a 5xx, after the retries),
``error`` (anything else).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import orjson

from aonode.errors import AONodeError, NotFound, RemoteError, RemoteRefused, Unreachable
from aonode.logs import where
from aonode.push.ledger import delivery_key
from aonode.store.base import Record, Store

log = logging.getLogger("aonode.push")

FAILURE = "push-failure"
REASONS = ("no-route", "not-found", "refused", "unreachable", "error")
RECENT = 20  # failures the dashboard shows


def reason_of(exc: AONodeError, *, routing: bool = False) -> str:
    """The reason label of a failure (see the module docstring)."""
    if isinstance(exc, Unreachable):
        return "unreachable"
    if isinstance(exc, RemoteRefused):
        return "not-found" if exc.status == 404 else "refused"
    if routing and isinstance(exc, NotFound):
        return "no-route"
    return "error"


@dataclass(frozen=True, slots=True)
class Failure:
    """One outbox entry that could not be delivered."""

    process: str  # the sender
    slot: int
    index: int  # 1-based outbox index
    target: str
    reason: str  # one of REASONS
    message: str  # human text: what failed, where
    status: int
    node: str | None = None  # the remote node's URL, when one was tried
    time: int = 0  # Unix ms of the first report

    @property
    def key(self) -> str:
        return delivery_key(self.process, self.slot, self.index)

    def to_json(self) -> dict[str, object]:
        doc = asdict(self)
        doc["outbox-index"] = doc.pop("index")
        return doc

    @classmethod
    def from_record(cls, record: Record) -> Failure:
        doc = orjson.loads(record.value)
        doc["index"] = doc.pop("outbox-index")
        return cls(**doc)

    @classmethod
    def of(
        cls, process: str, slot: int, index: int, target: str, exc: AONodeError, reason: str
    ) -> Failure:
        node = exc.node if isinstance(exc, RemoteError) else None
        status = (
            exc.status if isinstance(exc, RemoteError) else (404 if reason == "no-route" else 500)
        )
        return cls(process, slot, index, target, reason, exc.message, status, node)


class Failures:
    """The open failures of one node, durable in its store (see the module docstring)."""

    def __init__(self, store: Store, counted: Callable[[str], None]) -> None:
        self._store = store
        self._counted = counted
        self._open: dict[str, Failure] = {}
        self.reported = 0  # failures first reported by this run

    async def load(self) -> None:
        """Take the open failures a previous run left (they are not reported again)."""
        for record in await self._store.records(FAILURE):
            failure = Failure.from_record(record)
            self._open[failure.key] = failure

    async def report(self, failure: Failure) -> bool:
        """Record ``failure``; log and count it if it is the entry's first. True if first."""
        if failure.key in self._open:
            return False
        stamped = Failure(**{**asdict(failure), "time": time.time_ns() // 1_000_000})
        value = orjson.dumps(stamped.to_json())
        kept = await self._store.add_record(Record(FAILURE, stamped.key, value))
        if kept.value != value:  # another run (or node on this store) reported it first
            self._open[stamped.key] = Failure.from_record(kept)
            return False
        self._open[stamped.key] = stamped
        self.reported += 1
        self._counted(stamped.reason)
        log.warning(
            "push of %s slot %d outbox %d to %s failed (%s): %s",
            stamped.process,
            stamped.slot,
            stamped.index,
            stamped.target,
            stamped.reason,
            stamped.message,
            extra=where(stamped.process, stamped.slot),
        )
        return True

    async def delivered(self, process: str, slot: int, index: int) -> None:
        """An entry got through: close its failure, if it had one."""
        key = delivery_key(process, slot, index)
        failure = self._open.pop(key, None)
        if failure is None:
            return
        await self._store.delete_record(FAILURE, key)
        log.info(
            "push of %s slot %d outbox %d to %s delivered after failing (%s)",
            process,
            slot,
            index,
            failure.target,
            failure.reason,
            extra=where(process, slot),
        )

    def of_slot(self, process: str, slot: int) -> list[Failure]:
        """The open failures of one computed slot, by outbox index."""
        found = [f for f in self._open.values() if f.process == process and f.slot == slot]
        return sorted(found, key=lambda f: f.index)

    def open_keys(self) -> frozenset[str]:
        """The delivery keys of the open failures (a cluster's dashboard merges by key)."""
        return frozenset(self._open)

    def summary(self) -> dict[str, object]:
        """For the dashboard: how many are open, and the newest ones."""
        newest = sorted(self._open.values(), key=lambda f: f.time, reverse=True)[:RECENT]
        return {
            "open": len(self._open),
            "reported": self.reported,
            "recent": [f.to_json() for f in newest],
        }
