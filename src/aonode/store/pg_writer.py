"""The PostgreSQL store's batch writer: one transaction per batch, the gap guard inside.

Used by :class:`aonode.store.postgres.PostgresStore`, whose docstring explains
the design (group commit, the next-slot hint, the item-by-item redo).  This
module is the part that talks SQL for writes: :meth:`BatchWriter.commit` takes
a batch of queued operations and returns one outcome per operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import asyncpg

from aonode.errors import IntegrityError, LeaseLost, StoreError, StoreUnavailable
from aonode.store.base import (
    AssignmentRecord,
    MessageRecord,
    ResultRecord,
)
from aonode.store.pg_lease import LEASES_FOR_SHARE, LeaseBook
from aonode.store.shared import Op, RecordWrite, remember_next

_NEXT_SLOTS: Final = (
    "SELECT process, max(slot) FROM assignments WHERE process = any($1::text[]) GROUP BY process"
)
_NEXT_SLOT: Final = "SELECT max(slot) FROM assignments WHERE process = $1"
_INSERT_ASSIGNMENTS: Final = (
    "INSERT INTO assignments (process, slot, message, hash_chain, document)"
    " SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bytea[])"
)
_INSERT_ASSIGNMENT: Final = (
    "INSERT INTO assignments (process, slot, message, hash_chain, document)"
    " VALUES ($1, $2, $3, $4, $5)"
)
_INSERT_MESSAGES: Final = (
    "INSERT INTO messages (id, codec, raw)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]) ON CONFLICT (id) DO NOTHING"
)
_INSERT_MESSAGE: Final = (
    "INSERT INTO messages (id, codec, raw) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING"
)
_INSERT_PROCESS: Final = "INSERT INTO processes (id) VALUES ($1)"
_UPSERT_LOCATION: Final = (
    "INSERT INTO locations AS l (address, nonce, message) VALUES ($1, $2, $3)"
    " ON CONFLICT (address) DO UPDATE SET nonce = excluded.nonce, message = excluded.message"
    " WHERE excluded.nonce > l.nonce RETURNING true"
)
_INSERT_RESULT: Final = (
    "INSERT INTO computed AS c (process, slot, message, results, snapshot)"
    " VALUES ($1, $2, $3, $4, $5)"
    " ON CONFLICT (process, slot) DO UPDATE SET snapshot = excluded.snapshot"
    " WHERE excluded.snapshot IS NOT NULL AND c.snapshot IS NULL"
)
_UPSERT_RECORD: Final = (
    "INSERT INTO records (kind, key, value) VALUES ($1, $2, $3)"
    " ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value"
)
_ADD_RECORD: Final = (
    "INSERT INTO records (kind, key, value) VALUES ($1, $2, $3) ON CONFLICT (kind, key) DO NOTHING"
)
_DELETE_RECORD: Final = "DELETE FROM records WHERE kind = $1 AND key = $2"

# Errors that concern one item's values, not the connection or the server.
_ITEM_ERRORS: Final = (
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.DataError,
    OverflowError,
)


# (operation, or None for put_message; message; the caller's future)
Item = tuple[Op, MessageRecord | None, "asyncio.Future[Any]"]


class Failed:
    """An outcome that is an error (outcomes are otherwise the future's value)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class BatchWriter:
    """Owns the write connection; :meth:`commit` writes one batch in one transaction."""

    def __init__(
        self,
        url: str,
        conn: asyncpg.Connection,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        leases: LeaseBook | None = None,
        counted: Callable[[int, int, float], None] | None = None,
    ) -> None:
        self._url = url
        self._conn: asyncpg.Connection | None = conn
        self._connect = connect
        self._leases = leases  # set: every append is fenced by its process's lease
        self._next: dict[str, int] = {}  # the next-slot hint per process
        # told (items in the batch, assignments appended, seconds of COMMIT) per commit
        self._counted = counted
        self._commit_seconds = 0.0

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 10)
            conn.terminate()

    async def commit(self, batch: list[Item]) -> list[object]:
        """Write ``batch`` in one transaction; an outcome per item."""
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await self._connect()
            conn = self._conn
            written = await self._transaction(conn, batch, careful=False)
            if written is None:
                written = await self._transaction(conn, batch, careful=True)
            assert written is not None
            outcomes, staged = written
        except Exception as exc:  # connection, server, deadlock: the whole batch failed
            self._next.clear()  # what is durable is whatever the database says now
            conn_, self._conn = self._conn, None
            if conn_ is not None:
                conn_.terminate()  # the next batch starts on a fresh connection
            error = as_store_error(self._url, exc)
            return [Failed(error) for _ in batch]
        remember_next(self._next, staged)
        if self._counted is not None:
            appended = sum(
                1
                for (op, _, _), out in zip(batch, outcomes, strict=True)
                if isinstance(op, AssignmentRecord) and not isinstance(out, Failed)
            )
            self._counted(len(batch), appended, self._commit_seconds)
        return outcomes

    async def _transaction(
        self, conn: asyncpg.Connection, batch: list[Item], *, careful: bool
    ) -> tuple[list[object], dict[str, int]] | None:
        transaction = conn.transaction()
        await transaction.start()
        written: tuple[list[object], dict[str, int]] | None
        try:
            if careful:
                written = await self._write_careful(conn, batch)
            else:
                written = await self._write_fast(conn, batch)
        except BaseException:
            with contextlib.suppress(Exception):
                await transaction.rollback()
            raise
        if written is None:
            await transaction.rollback()
            return None
        started = time.perf_counter()
        await transaction.commit()
        self._commit_seconds = time.perf_counter() - started
        return written

    async def _write_fast(
        self, conn: asyncpg.Connection, batch: list[Item]
    ) -> tuple[list[object], dict[str, int]] | None:
        """Every item checked against the hint, then multi-row inserts; None = redo carefully."""
        unknown = {
            op.process
            for op, _, _ in batch
            if isinstance(op, AssignmentRecord) and op.process not in self._next
        }
        loaded: dict[str, int] = {}
        if unknown:
            try:
                for process, top in await conn.fetch(_NEXT_SLOTS, list(unknown)):
                    loaded[process] = top + 1
            except _ITEM_ERRORS:
                return None
        staged: dict[str, int] = {}
        assignments: list[AssignmentRecord] = []
        new_processes: list[tuple[str]] = []
        messages: dict[str, MessageRecord] = {}
        for op, m, _ in batch:
            if m is not None:
                messages.setdefault(m.id, m)
            if not isinstance(op, AssignmentRecord):
                continue
            expected = staged.get(op.process)
            if expected is None:
                expected = self._next.get(op.process, loaded.get(op.process, 0))
            if op.slot != expected:
                return None
            staged[op.process] = expected + 1
            assignments.append(op)
            if op.slot == 0:
                new_processes.append((op.process,))
        if self._leases is not None and staged:
            try:
                rows_l = await conn.fetch(LEASES_FOR_SHARE, sorted(staged))
                for process in staged:
                    self._leases.check(process, rows_l)
            except (LeaseLost, *_ITEM_ERRORS):
                return None  # the careful path rejects exactly the fenced-out items
        outcomes: list[object] = [None] * len(batch)
        try:
            if assignments:
                # A fixed row order (by key) keeps two nodes' batches from deadlocking.
                rows = sorted(assignments, key=lambda a: (a.process, a.slot))
                await conn.execute(
                    _INSERT_ASSIGNMENTS,
                    [a.process for a in rows],
                    [a.slot for a in rows],
                    [a.message for a in rows],
                    [a.hash_chain for a in rows],
                    [a.document for a in rows],
                )
            if new_processes:
                await conn.executemany(_INSERT_PROCESS, new_processes)  # in call order
            if messages:
                rows_m = sorted(messages.values(), key=lambda m: m.id)
                await conn.execute(
                    _INSERT_MESSAGES,
                    [m.id for m in rows_m],
                    [m.codec for m in rows_m],
                    [m.raw for m in rows_m],
                )
            for index, (op, m, _) in enumerate(batch):  # the rest in call order
                if not isinstance(op, AssignmentRecord) and op is not None:
                    outcomes[index] = await _write_other(conn, op, m)
        except _ITEM_ERRORS:
            return None  # e.g. a (process, message) duplicate: find it item by item
        return outcomes, staged

    async def _write_careful(
        self, conn: asyncpg.Connection, batch: list[Item]
    ) -> tuple[list[object], dict[str, int]]:
        """Item by item against the database itself; a bad item is rejected alone."""
        staged: dict[str, int] = {}
        fenced: set[str] = set()  # processes whose lease this transaction checked
        outcomes: list[object] = []
        for op, m, _ in batch:
            outcome: object = None
            try:
                async with conn.transaction():  # a SAVEPOINT inside the batch's transaction
                    if isinstance(op, AssignmentRecord):
                        assert m is not None
                        if self._leases is not None and op.process not in fenced:
                            rows_l = await conn.fetch(LEASES_FOR_SHARE, [op.process])
                            self._leases.check(op.process, rows_l)
                            fenced.add(op.process)
                        expected = staged.get(op.process)
                        if expected is None:
                            top = await conn.fetchval(_NEXT_SLOT, op.process)
                            expected = staged[op.process] = 0 if top is None else top + 1
                        _check_slot(op, expected)
                        await _write_assignment(conn, op, m)
                    else:
                        outcome = await _write_other(conn, op, m)
            except (IntegrityError, LeaseLost) as exc:  # the gap guard's or the fence's verdict
                outcomes.append(Failed(exc))
                continue
            except _ITEM_ERRORS as exc:
                outcomes.append(Failed(_item_error(op, m, exc)))
                continue
            if isinstance(op, AssignmentRecord):
                staged[op.process] += 1
            outcomes.append(outcome)
        return outcomes, staged


async def _write_assignment(
    conn: asyncpg.Connection, a: AssignmentRecord, m: MessageRecord
) -> None:
    await conn.execute(_INSERT_ASSIGNMENT, a.process, a.slot, a.message, a.hash_chain, a.document)
    if a.slot == 0:
        await conn.execute(_INSERT_PROCESS, a.process)
    await conn.execute(_INSERT_MESSAGE, m.id, m.codec, m.raw)


async def _write_other(conn: asyncpg.Connection, op: Op, m: MessageRecord | None) -> object:
    """Everything but an assignment; returns the caller's value (a bool where it has one)."""
    if isinstance(op, RecordWrite):
        if op.value is None:
            status = await conn.execute(_DELETE_RECORD, op.kind, op.key)
            return status != "DELETE 0"
        sql = _ADD_RECORD if op.only_new else _UPSERT_RECORD
        await conn.execute(sql, op.kind, op.key, op.value)
        return None
    if isinstance(op, ResultRecord):
        await conn.execute(_INSERT_RESULT, op.process, op.slot, op.message, op.results, op.snapshot)
        return None
    assert m is not None and not isinstance(op, AssignmentRecord)
    await conn.execute(_INSERT_MESSAGE, m.id, m.codec, m.raw)
    if op is None:
        return None
    replaced = await conn.fetchval(_UPSERT_LOCATION, op.address, op.nonce, op.message)
    return bool(replaced)


def _check_slot(a: AssignmentRecord, expected: int) -> None:
    if a.slot != expected:
        kind = "is already assigned" if a.slot < expected else "would leave a gap"
        raise IntegrityError(f"process {a.process}: slot {a.slot} {kind} (next slot is {expected})")


def _item_error(op: Op, m: MessageRecord | None, exc: BaseException) -> StoreError:
    if isinstance(op, AssignmentRecord):
        constraint = getattr(exc, "constraint_name", None)
        if constraint == "assignments_process_message":
            return IntegrityError(f"process {op.process}: message {op.message} already has a slot")
        if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
            return IntegrityError(f"process {op.process}: slot {op.slot} rejected: {exc}")
        return StoreError(f"process {op.process}: slot {op.slot} cannot be stored: {exc}")
    if isinstance(op, RecordWrite):
        return StoreError(f"record {op.kind}/{op.key}: {exc}")
    if isinstance(op, ResultRecord):
        return StoreError(f"result {op.process}/{op.slot}: {exc}")
    mid = m.id if m is not None else "?"
    return StoreError(f"message {mid!r} cannot be stored: {exc}")


def as_store_error(url: str, exc: BaseException, doing: str = "") -> BaseException:
    if isinstance(exc, StoreError) or not isinstance(exc, Exception):
        return exc
    what = f"{doing}: " if doing else ""
    kind = StoreUnavailable if isinstance(exc, _UNAVAILABLE) else StoreError
    error = kind(f"{url}: {what}{type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


# The server is away or unreachable (as opposed to refusing what was sent).
_UNAVAILABLE: Final = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


def settle(future: asyncio.Future[Any], outcome: object) -> None:
    if future.done():  # the caller was cancelled
        return
    if isinstance(outcome, Failed):
        future.set_exception(outcome.error)
    else:
        future.set_result(outcome)


def deliver(batch: list[Item], outcomes: list[object]) -> None:
    for (_, _, future), outcome in zip(batch, outcomes, strict=True):
        settle(future, outcome)
