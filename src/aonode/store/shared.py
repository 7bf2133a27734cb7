"""What the SQLite and PostgreSQL stores share, written once.

Both backends are one group-committing writer with a next-slot hint in front of
the database's own guard (their module docstrings say why); the bookkeeping
around a commit and the shape of a stored slot are the same in both.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from aonode.errors import StoreError, StoreUnavailable
from aonode.store.base import (
    AssignmentRecord,
    CommitObserver,
    LocationRecord,
    MessageRecord,
    Record,
    ResultRecord,
    StoredSlot,
    check_pairing,
)

MAX_SLOT: Final = 2**63 - 1
"""The largest slot either engine stores (a 64-bit integer); larger bounds match nothing."""

NEXT_CACHE_SIZE: Final = 65_536
"""Processes whose next slot a writer remembers (the least recently written are dropped)."""


class RecordWrite:
    """A queued put (``value`` set; ``only_new``: unless the key holds one) or delete
    (``value`` None) of one record."""

    __slots__ = ("key", "kind", "only_new", "value")

    def __init__(self, kind: str, key: str, value: bytes | None, only_new: bool = False) -> None:
        self.kind, self.key, self.value, self.only_new = kind, key, value, only_new


Op = AssignmentRecord | LocationRecord | ResultRecord | RecordWrite | None
"""One queued write: an append (with its body), a location (with its message), a
result, a record write; ``None`` with a message: ``put_message``."""


class CommitCounts:
    """The counters of a store's writer, and the observer told of each commit (metrics).

    ``appends / commits`` is the batching factor (bench/store_append.py, the tests
    of group commit).  Updated only by the writer, after a commit succeeded.
    """

    _commits: int = 0
    _appends: int = 0
    commit_observer: CommitObserver | None = None  # may be called on a writer thread

    @property
    def commits(self) -> int:
        """Transactions committed so far: ``appends / commits`` is the batching factor."""
        return self._commits

    @property
    def appends(self) -> int:
        """Assignments durably appended so far (rejected ones are not counted)."""
        return self._appends

    def _counted(self, items: int, appended: int, seconds: float) -> None:
        """One batch of ``items`` committed, ``appended`` of them assignments, its COMMIT
        having taken ``seconds``."""
        self._commits += 1
        self._appends += appended
        if (observer := self.commit_observer) is not None:
            with contextlib.suppress(Exception):  # metrics never stop a writer
                observer(items, seconds)


class QueuedWriter(CommitCounts):
    """The part of a store both backends write the same way: the lifecycle states and
    the writes that are one queued item each (a backend provides ``_enqueue``).

    States: ``new`` -> (``opening``) -> ``open`` -> ``closing`` -> ``closed``.  Every
    write is queued in the caller's first step (no ``await`` before ``_enqueue``), so
    call order is commit order.
    """

    _state: str = "new"

    @property
    def url(self) -> str:
        raise NotImplementedError

    def _check_new(self) -> None:
        if self._state != "new":
            raise StoreError(f"{self.url}: open() called on a store that is {self._state}")

    def _check_open(self, doing: str) -> None:
        if self._state in ("closing", "closed"):
            # The node is shutting down: a retry (on its next start) can succeed.
            raise StoreUnavailable(f"{self.url}: store is {self._state}; cannot {doing}")
        if self._state != "open":
            raise StoreError(f"{self.url}: store is {self._state}; cannot {doing}")

    async def close(self) -> None:
        """Commit every queued write, then release everything; a second call waits for
        the first; closing a store never opened just marks it closed."""
        if self._state in ("closing", "closed"):
            await self._wait_stopped()
            return
        if self._state == "new":
            self._state = "closed"
            return
        self._state = "closing"  # from here on writes raise; queued items still commit
        await self._shut_down()
        self._state = "closed"

    async def _wait_stopped(self) -> None:
        """Wait until the writer of a closing store has committed its last item."""
        raise NotImplementedError

    async def _shut_down(self) -> None:
        """Drain the writer and release every connection (the state is ``closing``)."""
        raise NotImplementedError

    def _enqueue(self, op: Op, body: MessageRecord | None) -> asyncio.Future[Any]:
        """Queue one write now (synchronously); the future settles after its commit."""
        raise NotImplementedError

    async def get_record(self, kind: str, key: str) -> Record | None:
        raise NotImplementedError

    async def append(self, assignment: AssignmentRecord, body: MessageRecord) -> None:
        await self.submit_append(assignment, body)

    def submit_append(
        self, assignment: AssignmentRecord, body: MessageRecord
    ) -> asyncio.Future[Any]:
        """:meth:`append` without the coroutine: queued now, the future settles after
        the commit.  A scheduler attaches a done-callback instead of running a task
        per append (:func:`append_submitter`)."""
        check_pairing(assignment, body)
        return self._enqueue(assignment, body)

    async def put_message(self, message: MessageRecord) -> None:
        await self._enqueue(None, message)

    async def put_result(self, result: ResultRecord) -> None:
        await self._enqueue(result, None)

    async def put_record(self, record: Record) -> None:
        await self._enqueue(RecordWrite(record.kind, record.key, bytes(record.value)), None)

    async def add_record(self, record: Record) -> Record:
        value = bytes(record.value)
        await self._enqueue(RecordWrite(record.kind, record.key, value, only_new=True), None)
        stored = await self.get_record(record.kind, record.key)
        return stored if stored is not None else Record(record.kind, record.key, value)


def append_submitter(
    store: object,
) -> Callable[[AssignmentRecord, MessageRecord], asyncio.Future[Any]] | None:
    """``store.submit_append`` when ``store.append`` is exactly the queued writer's own
    (so a subclass that overrides ``append``, e.g. to gate or fail it, keeps being
    called); None for any other store, whose ``append`` is then awaited."""
    if isinstance(store, QueuedWriter) and type(store).append is QueuedWriter.append:
        return store.submit_append
    return None


def remember_next(hint: dict[str, int], staged: Mapping[str, int]) -> None:
    """Update a writer's next-slot hint after a commit wrote ``staged`` (process -> next)."""
    for process, slot in staged.items():
        hint.pop(process, None)  # re-insert: the dict's order is recency
        hint[process] = slot
    while len(hint) > NEXT_CACHE_SIZE:
        del hint[next(iter(hint))]


def stored_slot(row: Sequence[Any]) -> StoredSlot:
    """A row of the assignment-joined-to-message query both backends run."""
    process, slot, message, hash_chain, document, raw, codec = row
    return StoredSlot(
        AssignmentRecord(process, slot, message, hash_chain, document),
        MessageRecord(message, raw, codec),
    )
