"""The SQLite writer's batch: what one group-commit transaction does.

``write_fast`` checks every item against the writer's next-slot hint and
writes the batch with ``executemany``; when any item disagrees or hits a
constraint it answers None and the writer redoes the batch with
``write_careful``: item by item against the database itself, one SAVEPOINT
each, so a bad item is rejected alone (see :mod:`aonode.store.sqlite`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping
from typing import Final

from aonode.errors import IntegrityError, StoreError
from aonode.store.base import AssignmentRecord, LocationRecord, MessageRecord, ResultRecord
from aonode.store.shared import Op, RecordWrite

_Future = asyncio.Future[None]


_INSERT_ASSIGNMENT: Final = (
    "INSERT INTO assignments (process, slot, message, hash_chain, document) VALUES (?, ?, ?, ?, ?)"
)
_INSERT_MESSAGE: Final = "INSERT OR IGNORE INTO messages (id, codec, raw) VALUES (?, ?, ?)"
_INSERT_PROCESS: Final = "INSERT INTO processes (id) VALUES (?)"
_UPSERT_LOCATION: Final = (
    "INSERT INTO locations (address, nonce, message) VALUES (?, ?, ?)"
    " ON CONFLICT (address) DO UPDATE SET nonce = excluded.nonce, message = excluded.message"
    " WHERE excluded.nonce > locations.nonce"
)
_INSERT_RESULT: Final = (
    "INSERT INTO computed (process, slot, message, results, snapshot) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (process, slot) DO UPDATE SET snapshot = excluded.snapshot"
    " WHERE excluded.snapshot IS NOT NULL AND computed.snapshot IS NULL"
)
_UPSERT_RECORD: Final = (
    "INSERT INTO records (kind, key, value) VALUES (?, ?, ?)"
    " ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value"
)
_ADD_RECORD: Final = "INSERT OR IGNORE INTO records (kind, key, value) VALUES (?, ?, ?)"
_DELETE_RECORD: Final = "DELETE FROM records WHERE kind = ? AND key = ?"
_NEXT_SLOT: Final = "SELECT max(slot) FROM assignments WHERE process = ?"
ITEM_ERRORS: Final = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError)


# (assignment, or a location, or None for put_message; message; future of the caller)
Item = tuple[
    Op,
    MessageRecord | None,
    _Future,
]
Outcome = BaseException | None
# Errors that concern one item's values (binding), not the connection or the disk.


def write_fast(
    conn: sqlite3.Connection, batch: list[Item], hint: Mapping[str, int]
) -> tuple[list[Outcome], dict[str, int]] | None:
    """Every item checked against the cache, then ``executemany``; None = redo carefully."""
    staged: dict[str, int] = {}
    assignments: list[tuple[str, int, str, str, bytes]] = []
    new_processes: list[tuple[str]] = []
    messages: list[tuple[str, str, bytes]] = []
    locations: list[tuple[str, int, str]] = []
    results: list[tuple[str, int, str, bytes, bytes | None]] = []
    records: list[RecordWrite] = []
    for a, m, _ in batch:
        if isinstance(a, ResultRecord):
            results.append((a.process, a.slot, a.message, a.results, a.snapshot))
            continue
        if isinstance(a, RecordWrite):
            records.append(a)
            continue
        assert m is not None
        messages.append((m.id, m.codec, m.raw))
        if a is None:
            continue
        if isinstance(a, LocationRecord):
            locations.append((a.address, a.nonce, a.message))
            continue
        expected = staged.get(a.process)
        if expected is None:
            expected = hint.get(a.process)
            if expected is None:
                expected = next_slot(conn, a.process)
        if a.slot != expected:
            return None
        staged[a.process] = expected + 1
        assignments.append((a.process, a.slot, a.message, a.hash_chain, a.document))
        if a.slot == 0:
            new_processes.append((a.process,))
    try:
        conn.executemany(_INSERT_ASSIGNMENT, assignments)
        conn.executemany(_INSERT_PROCESS, new_processes)
        conn.executemany(_INSERT_MESSAGE, messages)
        conn.executemany(_UPSERT_LOCATION, locations)
        conn.executemany(_INSERT_RESULT, results)
        for r in records:  # in call order: a put then a delete of one key must stay so
            write_record(conn, r)
    except ITEM_ERRORS:
        return None  # e.g. a (process, message) duplicate: find it item by item
    return [None] * len(batch), staged


def write_careful(
    conn: sqlite3.Connection, batch: list[Item]
) -> tuple[list[Outcome], dict[str, int]]:
    """Item by item against the database itself; a bad item is rejected alone."""
    staged: dict[str, int] = {}
    outcomes: list[Outcome] = []
    for a, m, _ in batch:
        if isinstance(a, RecordWrite):
            try:
                write_record(conn, a)
            except ITEM_ERRORS as exc:
                outcomes.append(StoreError(f"record {a.kind}/{a.key}: {exc}"))
            else:
                outcomes.append(None)
            continue
        if isinstance(a, ResultRecord):
            try:
                conn.execute(_INSERT_RESULT, (a.process, a.slot, a.message, a.results, a.snapshot))
            except ITEM_ERRORS as exc:
                outcomes.append(StoreError(f"result {a.process}/{a.slot}: {exc}"))
            else:
                outcomes.append(None)
            continue
        assert m is not None
        if a is None or isinstance(a, LocationRecord):
            try:
                conn.execute(_INSERT_MESSAGE, (m.id, m.codec, m.raw))
                if a is not None:
                    conn.execute(_UPSERT_LOCATION, (a.address, a.nonce, a.message))
            except ITEM_ERRORS as exc:
                outcomes.append(StoreError(f"message {m.id!r} cannot be stored: {exc}"))
            else:
                outcomes.append(None)
            continue
        expected = staged.get(a.process)
        if expected is None:
            expected = staged[a.process] = next_slot(conn, a.process)
        if a.slot != expected:
            kind = "is already assigned" if a.slot < expected else "would leave a gap"
            outcomes.append(
                IntegrityError(
                    f"process {a.process}: slot {a.slot} {kind} (next slot is {expected})"
                )
            )
            continue
        conn.execute("SAVEPOINT item")
        try:
            conn.execute(
                _INSERT_ASSIGNMENT, (a.process, a.slot, a.message, a.hash_chain, a.document)
            )
            if a.slot == 0:
                conn.execute(_INSERT_PROCESS, (a.process,))
            conn.execute(_INSERT_MESSAGE, (m.id, m.codec, m.raw))
        except ITEM_ERRORS as exc:
            conn.execute("ROLLBACK TO item")
            conn.execute("RELEASE item")
            outcomes.append(_item_error(a, exc))
            continue
        conn.execute("RELEASE item")
        staged[a.process] = expected + 1
        outcomes.append(None)
    return outcomes, staged


def write_record(conn: sqlite3.Connection, r: RecordWrite) -> None:
    if r.value is None:
        conn.execute(_DELETE_RECORD, (r.kind, r.key))
    else:
        conn.execute(_ADD_RECORD if r.only_new else _UPSERT_RECORD, (r.kind, r.key, r.value))


def next_slot(conn: sqlite3.Connection, process: str) -> int:
    top: int | None = conn.execute(_NEXT_SLOT, (process,)).fetchone()[0]
    return 0 if top is None else top + 1


def _item_error(a: AssignmentRecord, exc: sqlite3.Error) -> StoreError:
    if not isinstance(exc, sqlite3.IntegrityError):
        return StoreError(f"process {a.process}: slot {a.slot} cannot be stored: {exc}")
    if "assignments.message" in str(exc):
        return IntegrityError(f"process {a.process}: message {a.message} already has a slot")
    return IntegrityError(f"process {a.process}: slot {a.slot} rejected: {exc}")
