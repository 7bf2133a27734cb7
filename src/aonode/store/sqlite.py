"""The embedded SQLite store: WAL, ``synchronous=FULL``, one group-committing writer.

Why it is shaped this way:

* **One writer thread, group commit.**  A commit costs one fsync whether it
  holds one row or 64 (research/perf.md: 2.7k rows/s at one row per commit,
  22.8k at 64), so every append queued while a commit is in flight is written
  by the *next* transaction, all of it under one fsync.  A lone append
  at low load commits at once: the writer never waits for company.  The writer
  is a dedicated thread that owns the write connection and pulls its batches
  from a thread-safe FIFO itself, so there is no event-loop round trip between
  two commits; the loop is woken once per batch to resolve its futures.
* **Call order is commit order.**  ``append`` enqueues in the coroutine's first
  step (no ``await`` before it), and the FIFO is drained in order, so appends for
  one process are applied in the order they were called, even if the caller
  pipelines them without awaiting each one.
* **The gap guard lives in the writer.**  It keeps ``next slot per process`` in
  memory (a cache of the database, loaded lazily, updated only after a commit
  succeeded and cleared when one failed).  The cache can only lag the database
  (rows are never deleted), so it is used as a fast-path hint: when every item
  of a batch agrees with it, the batch goes in with ``executemany``; when any
  item disagrees or hits a UNIQUE constraint, the batch is redone item by item
  (one SAVEPOINT each) against the database itself, under the write lock, so
  the bad items are rejected alone and nothing else in the batch fails.
* **Writers of several processes take turns on a lock file.**  A cluster
  (``serve --workers N``) has one writer per worker on one file.  SQLite's own
  busy handler polls with sleeps (1, 2, 5, 10 … ms), which under contention
  turns every commit into a wait of milliseconds; the writer thread therefore
  holds an exclusive ``flock`` on ``<file>-writer.lock`` around each
  transaction, so the next writer wakes the moment the lock is free (its
  batch grows meanwhile: group commit across processes).
* **Reads never queue behind the writer.**  They use their own read-only
  connections (WAL readers run beside the writer).  Single-row lookups
  (``latest``, ``by_message``, ``get_message``) run inline on the event loop:
  measured at 5-7 µs, against ~36 µs for the same lookup through a thread.
  Reads that return lists (``slots``: up to a page of 1 KiB documents, ~65 µs
  for 10 rows; ``processes``) go to a two-thread read pool, one connection per
  thread, so a big page never stalls the loop.
* **No commit checkpoints.**  The WAL is copied into the file by a thread of
  its own (``store/sqlite_checkpoint.py``); SQLite's automatic checkpoint ran
  inside the commit that filled the log and held every waiting reply 50-100 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

from aonode.errors import StoreError
from aonode.store.base import (
    AssignmentRecord,
    LocationRecord,
    MessageRecord,
    Record,
    ResultRecord,
    Snapshot,
    StoredSlot,
    check_pairing,
)
from aonode.store.shared import (
    MAX_SLOT,
    Op,
    QueuedWriter,
    RecordWrite,
    remember_next,
    stored_slot,
)
from aonode.store.sqlite_batch import (
    Item,
    Outcome,
    write_careful,
    write_fast,
)
from aonode.store.sqlite_checkpoint import EVERY as CHECKPOINT_EVERY
from aonode.store.sqlite_checkpoint import Checkpointer

T = TypeVar("T")

SCHEMA_VERSION: Final = 4
"""``PRAGMA user_version`` written by the last migration below."""

# _MIGRATIONS[n] moves a database from user_version n to n + 1.
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        "CREATE TABLE messages (id TEXT PRIMARY KEY, codec TEXT NOT NULL, raw BLOB NOT NULL)",
        "CREATE TABLE assignments (process TEXT NOT NULL, slot INTEGER NOT NULL,"
        " message TEXT NOT NULL, hash_chain TEXT NOT NULL, document BLOB NOT NULL,"
        " PRIMARY KEY (process, slot))",
        "CREATE UNIQUE INDEX assignments_process_message ON assignments (process, message)",
        # processes() must list processes in order of first storing; seq is that order.
        "CREATE TABLE processes (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE)",
    ),
    (
        "CREATE TABLE locations (address TEXT PRIMARY KEY, nonce INTEGER NOT NULL,"
        " message TEXT NOT NULL)",
    ),
    (
        "CREATE TABLE computed (process TEXT NOT NULL, slot INTEGER NOT NULL,"
        " message TEXT NOT NULL, results BLOB NOT NULL, snapshot BLOB,"
        " PRIMARY KEY (process, slot))",
        "CREATE INDEX computed_message ON computed (process, message)",
        "CREATE INDEX computed_snapshots ON computed (process, slot) WHERE snapshot IS NOT NULL",
    ),
    (
        "CREATE TABLE records (kind TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,"
        " PRIMARY KEY (kind, key)) WITHOUT ROWID",
    ),
)
assert len(_MIGRATIONS) == SCHEMA_VERSION

_LOCATION: Final = (
    "SELECT l.address, l.nonce, l.message, m.raw, m.codec FROM locations AS l"
    " JOIN messages AS m ON m.id = l.message WHERE l.address = ?"
)
_RESULT: Final = (
    "SELECT process, slot, message, results FROM computed WHERE process = ? AND slot = ?"
)
_RESULT_BY_MESSAGE: Final = (
    "SELECT process, slot, message, results FROM computed WHERE process = ? AND message = ?"
)
_LATEST_SNAPSHOT: Final = (
    "SELECT process, slot, message, results, snapshot FROM computed"
    " WHERE process = ? AND slot <= ? AND snapshot IS NOT NULL ORDER BY slot DESC LIMIT 1"
)
_RECORD: Final = "SELECT kind, key, value FROM records WHERE kind = ? AND key = ?"
_RECORDS: Final = (
    "SELECT kind, key, value FROM records WHERE kind = ? AND substr(key, 1, ?) = ? ORDER BY key"
)
_LATEST: Final = (
    "SELECT process, slot, message, hash_chain, document FROM assignments"
    " WHERE process = ? ORDER BY slot DESC LIMIT 1"
)
_JOINED: Final = (
    "SELECT a.process, a.slot, a.message, a.hash_chain, a.document, m.raw, m.codec"
    " FROM assignments AS a JOIN messages AS m ON m.id = a.message"
)
_SLOTS: Final = _JOINED + " WHERE a.process = ? AND a.slot BETWEEN ? AND ? ORDER BY a.slot LIMIT ?"
_BY_MESSAGE: Final = _JOINED + " WHERE a.process = ? AND a.message = ?"
_MESSAGE: Final = "SELECT id, raw, codec FROM messages WHERE id = ?"
_PROCESSES: Final = "SELECT id FROM processes ORDER BY seq"

_INLINE_ROWS: Final = 4  # reads of at most this many rows run on the loop
_BUSY_TIMEOUT_MS: Final = 10_000  # another process holding the write lock (e.g. a backup)
_WAL_LIMIT: Final = 64 * 1024 * 1024  # bytes a reset WAL file keeps on disk at most

_Future = asyncio.Future[None]


class SQLiteStore(QueuedWriter):
    """:class:`aonode.store.base.Store` on one SQLite file (see module docstring).

    Single-use: ``open()`` once, ``close()`` once, on one event loop.
    """

    # Test seam: the class of the writer's connection (a subclass can inject faults).
    _connection_factory: type[sqlite3.Connection] = sqlite3.Connection

    def __init__(
        self, path: Path, *, max_batch: int = 512, checkpoint_every: float = CHECKPOINT_EVERY
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self._path = Path(path).absolute()
        self._max_batch = max_batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()  # None = stop
        self._writer: threading.Thread | None = None
        self._stopped: _Future | None = None
        self._next: dict[str, int] = {}  # writer thread only
        self._turn = -1  # the writer-turn lock file (writer thread only)
        self._pragmas: dict[str, object] = {}
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._read_pool: ThreadPoolExecutor | None = None
        self._checkpointer = Checkpointer(self._path, checkpoint_every)

    @property
    def url(self) -> str:
        return f"sqlite://{self._path}"

    @property
    def pragmas(self) -> Mapping[str, object]:
        """The writer connection's settings as SQLite reported them back at ``open()``."""
        return dict(self._pragmas)

    # -- lifecycle -------------------------------------------------------------

    async def open(self) -> None:
        self._check_new()
        self._loop = loop = asyncio.get_running_loop()
        ready: _Future = loop.create_future()
        self._stopped = loop.create_future()
        self._writer = threading.Thread(
            target=self._writer_main, args=(ready,), name="aonode-store-writer", daemon=True
        )
        self._writer.start()
        await ready
        self._checkpointer.start()
        self._read_pool = ThreadPoolExecutor(2, thread_name_prefix="aonode-store-read")
        self._state = "open"

    async def _wait_stopped(self) -> None:
        if self._stopped is not None:
            await asyncio.shield(self._stopped)

    async def _shut_down(self) -> None:
        assert self._read_pool is not None and self._stopped is not None
        self._checkpointer.stop()  # at most one checkpoint in flight; its connection closes
        self._read_pool.shutdown(wait=True)  # only in-flight point reads; short
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        # The writer closes last, so SQLite checkpoints and removes the WAL.
        self._queue.put(None)
        await self._stopped
        assert self._writer is not None
        self._writer.join()  # it has posted its last callback; this returns at once

    async def snapshot(self) -> Snapshot:
        """A read-only view of the file as of now (see ``store/snapshot.py``)."""
        from aonode.store.export_view import SQLiteSnapshot  # only export needs it

        return SQLiteSnapshot(self._path)

    # -- writes ----------------------------------------------------------------

    async def put_location(self, location: LocationRecord, message: MessageRecord) -> bool:
        check_pairing(location, message)
        await self._enqueue(location, message)
        stored = await self.get_location(location.address)
        return stored is not None and stored[0].message == message.id

    async def get_location(self, address: str) -> tuple[LocationRecord, MessageRecord] | None:
        rows = self._query(_LOCATION, (address,))
        if not rows:
            return None
        a, nonce, mid, raw, codec = rows[0]
        return LocationRecord(a, nonce, mid), MessageRecord(mid, raw, codec)

    async def get_result(self, process: str, slot: int) -> ResultRecord | None:
        rows = self._query(_RESULT, (process, slot))
        return ResultRecord(*rows[0]) if rows else None

    async def result_by_message(self, process: str, message: str) -> ResultRecord | None:
        rows = self._query(_RESULT_BY_MESSAGE, (process, message))
        return ResultRecord(*rows[0]) if rows else None

    async def latest_snapshot(self, process: str, at_most: int) -> ResultRecord | None:
        rows = await self._in_read_pool(_LATEST_SNAPSHOT, (process, min(at_most, MAX_SLOT)))
        return ResultRecord(*rows[0]) if rows else None

    async def delete_record(self, kind: str, key: str) -> bool:
        existed = bool(self._query(_RECORD, (kind, key)))
        await self._enqueue(RecordWrite(kind, key, None), None)
        return existed

    async def get_record(self, kind: str, key: str) -> Record | None:
        rows = self._query(_RECORD, (kind, key))
        return Record(*rows[0]) if rows else None

    async def records(self, kind: str, prefix: str = "") -> list[Record]:
        rows = await self._in_read_pool(_RECORDS, (kind, len(prefix), prefix))
        return [Record(*row) for row in rows]

    def _enqueue(self, op: Op, body: MessageRecord | None) -> asyncio.Future[Any]:
        # Synchronous on purpose: the item is queued before the caller's first await.
        self._check_open("write")
        assert self._loop is not None
        future = self._loop.create_future()
        self._queue.put((op, body, future))
        return future

    # -- reads -----------------------------------------------------------------

    async def latest(self, process: str) -> AssignmentRecord | None:
        rows = self._query(_LATEST, (process,))
        return AssignmentRecord(*rows[0]) if rows else None

    async def slots(self, process: str, first: int, last: int, limit: int) -> list[StoredSlot]:
        last = min(last, MAX_SLOT)
        if limit <= 0 or first > last:  # SQLite reads a negative LIMIT as "no limit"
            return []
        params = (process, max(first, 0), last, limit)
        if min(limit, last - first + 1) <= _INLINE_ROWS:
            rows = self._query(_SLOTS, params)  # a point read: cheaper than a thread hop
        else:
            rows = await self._in_read_pool(_SLOTS, params)
        return [stored_slot(row) for row in rows]

    async def by_message(self, process: str, message: str) -> StoredSlot | None:
        rows = self._query(_BY_MESSAGE, (process, message))
        return stored_slot(rows[0]) if rows else None

    async def get_message(self, message_id: str) -> MessageRecord | None:
        rows = self._query(_MESSAGE, (message_id,))
        return MessageRecord(*rows[0]) if rows else None

    async def processes(self) -> list[str]:
        return [row[0] for row in await self._in_read_pool(_PROCESSES, ())]

    def _query(self, sql: str, params: Sequence[object]) -> list[Any]:
        """Run one read on this thread's read-only connection (WAL: never waits for the writer)."""
        self._check_open("read")
        try:
            return self._reader().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _as_store_error(self.url, exc) from exc

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            uri = self._path.as_uri() + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            with self._readers_lock:
                self._readers.append(conn)
            self._local.conn = conn
        return conn

    async def _in_read_pool(self, sql: str, params: Sequence[object]) -> list[Any]:
        self._check_open("read")
        assert self._loop is not None
        return await self._loop.run_in_executor(self._read_pool, self._query, sql, params)

    # -- the writer thread -------------------------------------------------------

    def _post(self, callback: Callable[..., object], *args: object) -> None:
        assert self._loop is not None
        # RuntimeError: the loop was closed under us; nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, *args)

    def _writer_main(self, ready: _Future) -> None:
        try:
            conn = self._connect_writer()
        except BaseException as exc:
            self._post(_settle, ready, _as_store_error(self.url, exc))
            self._post(_settle, self._stopped, None)
            return
        self._post(_settle, ready, None)
        stopping = False
        try:
            while not stopping:
                first = self._queue.get()
                if first is None:
                    break
                batch = [first]
                while len(batch) < self._max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stopping = True
                        break
                    batch.append(item)
                self._post(_deliver, batch, self._commit(conn, batch))
        finally:
            conn.close()
            os.close(self._turn)
            self._post(_settle, self._stopped, None)

    def _connect_writer(self) -> sqlite3.Connection:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        turn = self._path.with_name(self._path.name + "-writer.lock")
        self._turn = os.open(turn, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            conn = sqlite3.connect(
                self._path, isolation_level=None, factory=self._connection_factory
            )
        except BaseException:
            os.close(self._turn)
            raise
        try:
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            self._check_version(conn)  # before touching a file a newer aonode wrote
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpointer's job
            conn.execute(f"PRAGMA journal_size_limit = {_WAL_LIMIT}")
            sync = conn.execute("PRAGMA synchronous").fetchone()[0]
            if mode != "wal" or sync != 2:
                # Durability on return is the store's promise; refuse to run without it.
                raise StoreError(f"{self.url}: SQLite refused WAL/FULL (got {mode}/{sync})")
            version = self._migrate(conn)
        except BaseException:
            conn.close()
            os.close(self._turn)
            raise
        checkpoints = conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        self._pragmas = {
            "journal_mode": mode,
            "synchronous": sync,
            "user_version": version,
            "wal_autocheckpoint": checkpoints,
        }
        return conn

    def _check_version(self, conn: sqlite3.Connection) -> int:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.url}: schema version {version} is newer than this aonode"
                f" understands ({SCHEMA_VERSION})"
            )
        return version

    def _migrate(self, conn: sqlite3.Connection) -> int:
        conn.execute("BEGIN IMMEDIATE")  # two processes opening one file migrate once
        try:
            version = self._check_version(conn)
            for statements in _MIGRATIONS[version:]:
                for sql in statements:
                    conn.execute(sql)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return SCHEMA_VERSION

    def _commit(self, conn: sqlite3.Connection, batch: list[Item]) -> list[Outcome]:
        """Write ``batch`` in one transaction; an outcome per item (None = stored)."""
        fcntl.flock(self._turn, fcntl.LOCK_EX)  # our turn among the file's writers
        try:
            return self._transaction(conn, batch)
        finally:
            fcntl.flock(self._turn, fcntl.LOCK_UN)

    def _transaction(self, conn: sqlite3.Connection, batch: list[Item]) -> list[Outcome]:
        try:
            conn.execute("BEGIN IMMEDIATE")
            written = write_fast(conn, batch, self._next)
            if written is None:
                conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                written = write_careful(conn, batch)
            outcomes, staged = written
            started = time.perf_counter()
            conn.execute("COMMIT")
            took = time.perf_counter() - started
        except Exception as exc:  # disk, I/O, lock timeout: the whole batch failed
            if conn.in_transaction:  # a failing ROLLBACK: the next BEGIN will tell
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            self._next.clear()  # what is durable is whatever the database says now
            return [_as_store_error(self.url, exc) for _ in batch]
        remember_next(self._next, staged)
        self._checkpointer.dirty = True
        appended = sum(
            1
            for (a, _, _), out in zip(batch, outcomes, strict=True)
            if isinstance(a, AssignmentRecord) and out is None
        )
        self._counted(len(batch), appended, took)
        return outcomes


def _as_store_error(url: str, exc: BaseException) -> BaseException:
    if isinstance(exc, StoreError) or not isinstance(exc, Exception):
        return exc
    error = StoreError(f"{url}: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def _settle(future: _Future | None, outcome: Outcome) -> None:
    if future is None or future.done():  # done = the caller was cancelled
        return
    if outcome is None:
        future.set_result(None)
    else:
        future.set_exception(outcome)


def _deliver(batch: list[Item], outcomes: list[Outcome]) -> None:
    for (_, _, future), outcome in zip(batch, outcomes, strict=True):
        _settle(future, outcome)
