"""The storage protocol every backend implements.

The protocol is deliberately small and backend-neutral: the SQLite backend
(embedded default) and a PostgreSQL backend must both fit it without any
change above the store.  It is split by role (:class:`ScheduleLog`,
:class:`MessageStore`, :class:`ResultCache`, :class:`RecordStore`,
:class:`Ownership`), so each consumer depends only on what it uses; a backend
implements :class:`Store`, all of them but ownership (a shared store's extra).
Every backend runs one conformance case per role (``store/conformance/``).

Rules every backend guarantees (each is a conformance test):

* ``append`` is durable when it returns (fsynced / committed); many
  concurrent appends may share one commit (group commit), but appends for one
  process are applied in the order they were *called*.
* ``(process, slot)`` is unique, and ``(process, message)`` is unique: a
  duplicate raises :class:`aonode.errors.IntegrityError`, never overwrites.
* Slots of a process are gap-free: an append whose slot is not exactly
  ``latest + 1`` (``0`` for a new process) raises ``IntegrityError`` and
  writes nothing.  A failed append never makes a later one for the same
  process succeed out of order.
* Messages are content-addressed by id: storing the same id twice is a no-op.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from aonode.codec.wire import MessageRecord
from aonode.errors import IntegrityError

__all__ = [
    "AssignmentRecord",
    "CommitObservable",
    "CommitObserver",
    "LocationRecord",
    "MessageRecord",
    "MessageStore",
    "Ownership",
    "Record",
    "RecordStore",
    "ResultCache",
    "ResultRecord",
    "ScheduleLog",
    "ScheduleReader",
    "Snapshot",
    "Snapshots",
    "Store",
    "StoreLifecycle",
    "StoredSlot",
    "check_pairing",
]


@dataclass(frozen=True, slots=True)
class AssignmentRecord:
    """One slot of one process's schedule, as stored.

    ``document`` is the serialised assignment (orjson bytes of every
    assignment key except ``body``; the body is the message ``message`` and
    lives in the message table, joined back on read).
    """

    process: str
    slot: int
    message: str
    hash_chain: str
    document: bytes


@dataclass(frozen=True, slots=True)
class LocationRecord:
    """Where scheduler ``address`` can be reached: its newest signed
    ``Scheduler-Location`` message (``message``), ordered by ``nonce``."""

    address: str
    nonce: int
    message: str


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """What computing one slot of a process produced (derived data: recomputable).

    ``results`` is the serialised results of the slot; ``snapshot``, when
    present, is the process state after the slot, to resume from.
    """

    process: str
    slot: int
    message: str
    results: bytes
    snapshot: bytes | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """A piece of the node's own durable bookkeeping, by ``(kind, key)``.

    Used for what must survive a restart but is not part of a schedule: cron
    tasks (kind ``cron``), pending and finished push deliveries (``push…``).
    ``value`` is opaque bytes (JSON by convention); a put replaces the value.
    """

    kind: str
    key: str
    value: bytes


def check_pairing(record: AssignmentRecord | LocationRecord, body: MessageRecord) -> None:
    """Refuse an assignment or location record whose message is not the one given with it."""
    if record.message == body.id:
        return
    if isinstance(record, AssignmentRecord):
        raise IntegrityError(
            f"assignment of {record.process} slot {record.slot} names message"
            f" {record.message} but its body is {body.id}"
        )
    raise IntegrityError(f"location of {record.address} names another message")


@dataclass(frozen=True, slots=True)
class StoredSlot:
    """An assignment together with the body message it assigns."""

    assignment: AssignmentRecord
    body: MessageRecord


# -- the roles -----------------------------------------------------------------
# A consumer types its store as the role(s) it uses; the backends implement them all
# (:class:`Store`).  Each role has its own conformance case in ``store/conformance/``.


@runtime_checkable
class StoreLifecycle(Protocol):
    """What the composition root does with a store: name it, open it, close it."""

    @property
    def url(self) -> str:
        """Where the store lives (``sqlite:///path``), for status output."""
        ...

    async def open(self) -> None:
        """Create or migrate the schema and start background writers."""
        ...

    async def close(self) -> None:
        """Flush every pending write, then release resources."""
        ...


@runtime_checkable
class ScheduleReader(Protocol):
    """The schedules as stored, read-only (what computing a process reads)."""

    async def latest(self, process: str) -> AssignmentRecord | None:
        """The highest-slot assignment of ``process``, or ``None``."""
        ...

    async def slots(self, process: str, first: int, last: int, limit: int) -> list[StoredSlot]:
        """Assignments with ``first <= slot <= last`` in slot order, at most ``limit``."""
        ...

    async def by_message(self, process: str, message: str) -> StoredSlot | None:
        """The assignment of message id ``message`` on ``process``, if any."""
        ...

    async def processes(self) -> list[str]:
        """Every process id that has at least slot 0 stored, oldest first."""
        ...


@runtime_checkable
class ScheduleLog(ScheduleReader, Protocol):
    """The schedule log: gap-free, unique slots per process (see the module rules)."""

    async def append(self, assignment: AssignmentRecord, body: MessageRecord) -> None:
        """Durably store one assignment and its body message (see module rules)."""
        ...


@runtime_checkable
class MessageStore(Protocol):
    """Messages kept by id, scheduled or not (content-addressed: idempotent)."""

    async def put_message(self, message: MessageRecord) -> None:
        """Store a message by id without scheduling it (idempotent, durable)."""
        ...

    async def get_message(self, message_id: str) -> MessageRecord | None:
        """A stored message (scheduled or not) by id."""
        ...


@runtime_checkable
class ResultCache(Protocol):
    """Computed slots and snapshots: derived data, recomputable from the schedule."""

    async def put_result(self, result: ResultRecord) -> None:
        """Store a computed slot; the first results of a (process, slot) win, and a
        snapshot can be added later to a slot stored without one."""
        ...

    async def get_result(self, process: str, slot: int) -> ResultRecord | None:
        """The computed results of one slot (without its snapshot)."""
        ...

    async def result_by_message(self, process: str, message: str) -> ResultRecord | None:
        """The computed results of the slot that assigned ``message``."""
        ...

    async def latest_snapshot(self, process: str, at_most: int) -> ResultRecord | None:
        """The highest computed slot ``<= at_most`` that carries a snapshot."""
        ...


@runtime_checkable
class RecordStore(Protocol):
    """The node's own durable bookkeeping: records by ``(kind, key)`` (cron tasks, the
    push ledger, upload watermarks) and scheduler location records."""

    async def put_record(self, record: Record) -> None:
        """Store ``record`` (replacing the value under its ``(kind, key)``); durable on return."""
        ...

    async def add_record(self, record: Record) -> Record:
        """Store ``record`` unless its ``(kind, key)`` already holds a value (kept as is).

        Returns the stored record: ``record``, or the one that was there first — so
        of several writers (nodes) racing on one key exactly one wins.  Durable on return.
        """
        ...

    async def delete_record(self, kind: str, key: str) -> bool:
        """Remove one record; durable on return.  False when there was none."""
        ...

    async def get_record(self, kind: str, key: str) -> Record | None:
        """One record, or None."""
        ...

    async def records(self, kind: str, prefix: str = "") -> list[Record]:
        """Every record of ``kind`` whose key starts with ``prefix``, in key order."""
        ...

    async def put_location(self, location: LocationRecord, message: MessageRecord) -> bool:
        """Durably record ``message`` as ``location.address``'s location.

        Only a nonce higher than the stored one replaces it; returns whether
        it did (``False``: an equal or newer record is already stored).
        """
        ...

    async def get_location(self, address: str) -> tuple[LocationRecord, MessageRecord] | None:
        """The newest location record of ``address``, if any."""
        ...


class Snapshot(Protocol):
    """Rows of one consistent view of a whole store (``store/snapshot.py``), for export.

    Both backends have the same tables and columns, so one set of queries
    (``?`` placeholders) serves both; ``loose_messages`` / ``loose_count`` are the
    engine's own spelling of "messages no schedule or location holds"."""

    loose_messages: str
    loose_count: str

    async def value(self, sql: str, *args: object) -> Any: ...

    def rows(self, sql: str, *args: object) -> AsyncIterator[tuple[Any, ...]]: ...

    async def close(self) -> None: ...


@runtime_checkable
class Snapshots(Protocol):
    """A store that can hand out a consistent read-only view of all of its data."""

    async def snapshot(self) -> Snapshot:
        """A new snapshot on its own connection, as of now (the caller closes it).

        Works whether or not this store is open: it shares nothing with it."""
        ...


@runtime_checkable
class Store(
    StoreLifecycle, ScheduleLog, MessageStore, ResultCache, RecordStore, Snapshots, Protocol
):
    """Every role at once: what a backend implements (SQLite, PostgreSQL)."""


@runtime_checkable
class Ownership(Protocol):
    """A store shared by several nodes: each process is owned by one node at a time.

    Implemented by the PostgreSQL store (``store/pg_lease.py``).  Once
    :meth:`use_leases` is called, every ``append`` is fenced: it is refused
    (:class:`aonode.errors.LeaseLost`) unless this node holds the process's
    lease, checked in the append's own transaction.
    """

    def use_leases(self, owner: str, url: str, seconds: float | None = None) -> None:
        """Turn ownership on for node incarnation ``owner`` reachable at ``url``."""
        ...

    @property
    def lease_seconds(self) -> float:
        """How long a lease lasts without renewal (a takeover waits at most this)."""
        ...

    def holds(self, process: str) -> bool:
        """Whether this node holds ``process``'s lease, as far as it knows."""
        ...

    async def claim(self, process: str) -> str | None:
        """Take or keep the lease: ``None`` when this node owns it, else the owner's URL."""
        ...

    async def release(self, process: str) -> None:
        """Give the lease up at once (another node may take it)."""
        ...

    async def nodes(self) -> list[dict[str, object]]:
        """Every node using the store, with its URL and last heartbeat."""
        ...


CommitObserver = Callable[[int, float], None]
"""Told ``(items in the batch, seconds the COMMIT took)`` after every committed batch.

It may be called from the store's writer thread, so it must be thread-safe and quick
(``aonode.ops.metrics`` feeds Prometheus histograms with it)."""


@runtime_checkable
class CommitObservable(Protocol):
    """A store whose group commits can be watched (both built-in backends)."""

    commit_observer: CommitObserver | None
