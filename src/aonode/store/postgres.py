"""The PostgreSQL store (asyncpg): the scale-out backend several nodes can share.

Shaped like the SQLite store, for the same reasons, with what a server adds:

* **One writer task, group commit.**  A commit costs one WAL flush whether it
  holds one row or hundreds, so everything queued while a commit is in flight
  goes into the *next* transaction.  The writer is one asyncio task owning one
  connection (``synchronous_commit = on``: a commit has reached the server's
  disk before ``append`` returns); a lone append at low load commits at once.
* **Call order is commit order.**  ``append`` enqueues in the coroutine's first
  step (no ``await`` before it) and the writer drains the queue in order, so a
  process's appends are applied in the order they were called, even pipelined.
* **The gap guard runs inside the transaction.**  The writer keeps ``next slot
  per process`` as a hint (loaded in one query for a batch's unknown processes,
  updated only after a commit, cleared after a failure).  Rows are never
  deleted, so the hint can only lag the database, never lead it; a batch that
  agrees with it goes in with one multi-row ``INSERT``, and the database's
  ``UNIQUE (process, slot)`` / ``UNIQUE (process, message)`` catch a lagging
  hint (another node wrote meanwhile).  Otherwise the batch is redone item by
  item, one SAVEPOINT each, with the next slot read from the database inside
  the transaction, so a bad item is rejected alone.  An insert at ``max + 1``
  of what this transaction sees can never leave a gap: committed rows only
  grow, and a concurrent insert of the same slot meets the unique index.
* **Whole-batch failures** (connection lost, server restarting, a deadlock):
  every item of the batch gets a :class:`StoreError`, the connection is
  dropped, and the next batch connects afresh, so the store recovers by itself
  when the database comes back.  A connection lost during ``COMMIT`` leaves the
  outcome unknown to the client; it is reported as a failure, and the schedule
  stays gap-free and unique either way.
* **Reads use a pool** of their own connections and never queue behind the
  writer (MVCC: they see the last committed state).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg

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
from aonode.store.export_view import PostgresSnapshot
from aonode.store.pg_lease import LeaseBook
from aonode.store.pg_schema import check_schema_name, migrate
from aonode.store.pg_writer import (
    BatchWriter,
    Failed,
    Item,
    as_store_error,
    deliver,
    settle,
)
from aonode.store.shared import MAX_SLOT, Op, QueuedWriter, RecordWrite, stored_slot

DEFAULT_SCHEMA: Final = "aonode"

log = logging.getLogger("aonode.store.postgres")

_LATEST: Final = (
    "SELECT process, slot, message, hash_chain, document FROM assignments"
    " WHERE process = $1 ORDER BY slot DESC LIMIT 1"
)
_JOINED: Final = (
    "SELECT a.process, a.slot, a.message, a.hash_chain, a.document, m.raw, m.codec"
    " FROM assignments AS a JOIN messages AS m ON m.id = a.message"
)
_SLOTS: Final = (
    _JOINED + " WHERE a.process = $1 AND a.slot BETWEEN $2 AND $3 ORDER BY a.slot LIMIT $4"
)
_BY_MESSAGE: Final = _JOINED + " WHERE a.process = $1 AND a.message = $2"
_MESSAGE: Final = "SELECT id, raw, codec FROM messages WHERE id = $1"
_PROCESSES: Final = "SELECT id FROM processes ORDER BY seq"
_LOCATION: Final = (
    "SELECT l.address, l.nonce, l.message, m.raw, m.codec FROM locations AS l"
    " JOIN messages AS m ON m.id = l.message WHERE l.address = $1"
)
_RESULT: Final = (
    "SELECT process, slot, message, results FROM computed WHERE process = $1 AND slot = $2"
)
_RESULT_BY_MESSAGE: Final = (
    "SELECT process, slot, message, results FROM computed WHERE process = $1 AND message = $2"
    " ORDER BY slot LIMIT 1"
)
_LATEST_SNAPSHOT: Final = (
    "SELECT process, slot, message, results, snapshot FROM computed"
    " WHERE process = $1 AND slot <= $2 AND snapshot IS NOT NULL ORDER BY slot DESC LIMIT 1"
)
_RECORD: Final = "SELECT kind, key, value FROM records WHERE kind = $1 AND key = $2"
_RECORDS: Final = (
    "SELECT kind, key, value FROM records WHERE kind = $1 AND key >= $2"
    " AND starts_with(key, $2) ORDER BY key"
)


class PostgresStore(QueuedWriter):
    """:class:`aonode.store.base.Store` on a PostgreSQL database (see module docstring).

    ``dsn`` is a libpq-style URL (``postgresql://user:password@host:port/db``);
    the tables live in ``schema`` (created if missing).  Single-use: ``open()``
    once, ``close()`` once, on one event loop.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        max_batch: int = 512,
        read_pool: int = 4,
        connect_timeout: float = 10.0,
        lease_seconds: float = 5.0,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self._dsn = dsn
        self._schema = check_schema_name(schema)
        self._max_batch = max_batch
        self._read_pool_size = read_pool
        self._connect_timeout = connect_timeout
        self._lease_seconds = lease_seconds
        self._queue: asyncio.Queue[Item | None] = asyncio.Queue()  # None = stop
        self._writer: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None  # the writer's, until it starts
        self._batches: BatchWriter | None = None
        self._leases: LeaseBook | None = None
        self._renewer: asyncio.Task[None] | None = None
        self.renewals = 0  # background renewals done (status, tests)
        self._renewed = asyncio.Condition()
        self._pool: asyncpg.Pool | None = None
        self._settings: dict[str, object] = {}

    @property
    def url(self) -> str:
        """The DSN without its password, plus ``?schema=`` when not the default."""
        parts = urlsplit(self._dsn)
        netloc = parts.netloc.rpartition("@")
        userinfo = netloc[0].partition(":")[0]
        host = f"{userinfo}@{netloc[2]}" if netloc[1] else netloc[2]
        query = parts.query
        if self._schema != DEFAULT_SCHEMA:
            query = "&".join(q for q in (query, f"schema={self._schema}") if q)
        return urlunsplit((parts.scheme, host, parts.path, query, ""))

    @property
    def schema(self) -> str:
        return self._schema

    @property
    def dsn(self) -> str:
        """The connection URL as given (with its password), for tools that read the tables."""
        return self._dsn

    @property
    def settings(self) -> Mapping[str, object]:
        """The writer session's settings as the server reported them at ``open()``."""
        return dict(self._settings)

    # -- lifecycle -------------------------------------------------------------

    async def open(self) -> None:
        self._check_new()
        self._state = "opening"
        try:
            self._conn = conn = await self._connect()
            version = await migrate(conn, self._schema)
            sync = await conn.fetchval("SHOW synchronous_commit")
            if sync != "on":  # durability on return is the store's promise
                raise StoreError(f"{self.url}: server refused synchronous_commit=on ({sync})")
            self._settings = {
                "synchronous_commit": sync,
                "fsync": await conn.fetchval("SHOW fsync"),
                "server_version": await conn.fetchval("SHOW server_version"),
                "schema_version": version,
            }
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self._read_pool_size,
                timeout=self._connect_timeout,
                server_settings=self._server_settings(),
            )
        except BaseException as exc:
            await self._release()
            self._state = "closed"
            if isinstance(exc, Exception):
                raise as_store_error(self.url, exc, "cannot open") from exc
            raise
        self._batches = BatchWriter(self.url, conn, self._connect, self._leases, self._counted)
        self._conn = None  # the batch writer owns it now
        self._writer = asyncio.create_task(
            self._writer_main(self._batches), name="aonode-pg-writer"
        )
        if self._leases is not None:
            await self._leases.renew(self._pool)  # the node's first heartbeat
            self._renewer = asyncio.create_task(
                self._renew_main(self._leases), name="aonode-pg-leases"
            )
        self._state = "open"

    async def _wait_stopped(self) -> None:
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def _shut_down(self) -> None:
        self._queue.put_nowait(None)
        assert self._writer is not None
        await asyncio.shield(self._writer)
        await self._stop_leases()
        await self._release()
        if self._batches is not None:
            await self._batches.close()

    async def _release(self) -> None:
        pool, self._pool = self._pool, None
        conn, self._conn = self._conn, None
        if pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pool.close(), self._connect_timeout)
            pool.terminate()
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), self._connect_timeout)
            conn.terminate()

    def _server_settings(self) -> dict[str, str]:
        return {
            "search_path": self._schema,
            "synchronous_commit": "on",
            "application_name": "aonode",
        }

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            self._dsn, timeout=self._connect_timeout, server_settings=self._server_settings()
        )

    async def snapshot(self) -> Snapshot:
        """One REPEATABLE READ transaction of its own (see ``store/snapshot.py``)."""
        return await PostgresSnapshot.open(self._dsn, self._schema, self.url)

    # -- writes ----------------------------------------------------------------

    async def put_location(self, location: LocationRecord, message: MessageRecord) -> bool:
        check_pairing(location, message)
        return bool(await self._enqueue(location, message))

    async def delete_record(self, kind: str, key: str) -> bool:
        return bool(await self._enqueue(RecordWrite(kind, key, None), None))

    def _enqueue(self, op: Op, body: MessageRecord | None) -> asyncio.Future[Any]:
        # Synchronous on purpose: the item is queued before the caller's first await.
        self._check_open("write")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((op, body, future))
        return future

    # -- ownership across nodes (store/pg_lease.py) -------------------------------

    def use_leases(self, owner: str, url: str, seconds: float | None = None) -> None:
        """Fence every append by a per-process lease held by ``owner`` (before ``open``).

        ``owner`` names this node incarnation (fresh at every start), ``url`` is
        where other nodes send clients (307), ``seconds`` the lease length
        (default: the store URL's ``lease_seconds``, else 5).
        """
        if self._state != "new":
            raise StoreError(f"{self.url}: use_leases() must come before open()")
        self._leases = LeaseBook(owner, url, seconds or self._lease_seconds)

    @property
    def lease_seconds(self) -> float:
        return self._lease_seconds if self._leases is None else self._leases.seconds

    def holds(self, process: str) -> bool:
        """Whether this node holds ``process``'s lease (as far as it knows)."""
        return self._leases is None or process in self._leases.held

    async def claim(self, process: str) -> str | None:
        """Take or keep ``process``'s lease: ``None`` when ours, else the owner's URL."""
        if self._leases is None:
            return None
        try:
            return await self._leases.claim(self._read_pool(), process)
        except StoreError:
            raise
        except Exception as exc:
            raise as_store_error(self.url, exc) from exc

    async def release(self, process: str) -> None:
        """Give ``process``'s lease up now (e.g. its scheduler stopped)."""
        if self._leases is not None and process in self._leases.held:
            try:
                await self._leases.release(self._read_pool(), [process])
            except StoreError:
                raise
            except Exception as exc:
                raise as_store_error(self.url, exc) from exc

    async def nodes(self) -> list[dict[str, object]]:
        """The nodes that use this database and their last heartbeat (status output)."""
        if self._leases is None:
            return []
        try:
            found = await self._leases.nodes(self._read_pool())
        except Exception as exc:
            raise as_store_error(self.url, exc) from exc
        return [
            {
                "url": n.url,
                "owner": n.owner,
                "heartbeat": n.heartbeat,
                "live": n.live,
                "self": n.owner == self._leases.owner,
            }
            for n in found
        ]

    async def _renew_main(self, leases: LeaseBook) -> None:
        while True:
            await asyncio.sleep(leases.seconds / 3)  # a period, not a synchronisation
            try:
                await leases.renew(self._read_pool())
            except Exception as exc:  # the database is away: the fence keeps writes safe
                log.warning("renewing leases failed: %s", exc)
                continue
            async with self._renewed:
                self.renewals += 1
                self._renewed.notify_all()

    async def renewed(self, count: int) -> None:
        """Return once ``count`` background renewals have been made since open."""
        async with self._renewed:
            await self._renewed.wait_for(lambda: self.renewals >= count)

    async def _stop_leases(self) -> None:
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        if self._leases is not None and self._pool is not None:
            with contextlib.suppress(Exception):  # a clean handover; expiry covers a failure
                await self._leases.leave(self._pool)

    # -- reads -----------------------------------------------------------------

    async def latest(self, process: str) -> AssignmentRecord | None:
        row = await self._fetchrow(_LATEST, process)
        return AssignmentRecord(*row) if row else None

    async def slots(self, process: str, first: int, last: int, limit: int) -> list[StoredSlot]:
        last = min(last, MAX_SLOT)
        if limit <= 0 or first > last:
            return []
        rows = await self._fetch(_SLOTS, process, max(first, 0), last, min(limit, MAX_SLOT))
        return [stored_slot(row) for row in rows]

    async def by_message(self, process: str, message: str) -> StoredSlot | None:
        row = await self._fetchrow(_BY_MESSAGE, process, message)
        return stored_slot(row) if row else None

    async def get_message(self, message_id: str) -> MessageRecord | None:
        row = await self._fetchrow(_MESSAGE, message_id)
        return MessageRecord(*row) if row else None

    async def processes(self) -> list[str]:
        return [row[0] for row in await self._fetch(_PROCESSES)]

    async def get_location(self, address: str) -> tuple[LocationRecord, MessageRecord] | None:
        row = await self._fetchrow(_LOCATION, address)
        if row is None:
            return None
        a, nonce, mid, raw, codec = row
        return LocationRecord(a, nonce, mid), MessageRecord(mid, raw, codec)

    async def get_result(self, process: str, slot: int) -> ResultRecord | None:
        if not 0 <= slot <= MAX_SLOT:
            return None
        row = await self._fetchrow(_RESULT, process, slot)
        return ResultRecord(*row) if row else None

    async def result_by_message(self, process: str, message: str) -> ResultRecord | None:
        row = await self._fetchrow(_RESULT_BY_MESSAGE, process, message)
        return ResultRecord(*row) if row else None

    async def latest_snapshot(self, process: str, at_most: int) -> ResultRecord | None:
        if at_most < 0:
            return None
        row = await self._fetchrow(_LATEST_SNAPSHOT, process, min(at_most, MAX_SLOT))
        return ResultRecord(*row) if row else None

    async def get_record(self, kind: str, key: str) -> Record | None:
        row = await self._fetchrow(_RECORD, kind, key)
        return Record(*row) if row else None

    async def records(self, kind: str, prefix: str = "") -> list[Record]:
        return [Record(*row) for row in await self._fetch(_RECORDS, kind, prefix)]

    def _read_pool(self) -> asyncpg.Pool:
        self._check_open("read")
        if self._pool is None:
            raise StoreError(f"{self.url}: store is {self._state}; cannot read")
        return self._pool

    async def _fetch(self, sql: str, *args: object) -> list[Any]:
        pool = self._read_pool()
        try:
            return list(await pool.fetch(sql, *args, timeout=self._connect_timeout))
        except Exception as exc:
            raise as_store_error(self.url, exc) from exc

    async def _fetchrow(self, sql: str, *args: object) -> Any:
        pool = self._read_pool()
        try:
            return await pool.fetchrow(sql, *args, timeout=self._connect_timeout)
        except Exception as exc:
            raise as_store_error(self.url, exc) from exc

    # -- the writer task ---------------------------------------------------------

    async def _writer_main(self, writer: BatchWriter) -> None:
        """Drain the queue in call order, a batch per transaction, until the stop mark."""
        stopping = False
        try:
            while not stopping:
                first = await self._queue.get()
                if first is None:
                    break
                batch = [first]
                while len(batch) < self._max_batch and not self._queue.empty():
                    item = self._queue.get_nowait()
                    if item is None:
                        stopping = True
                        break
                    batch.append(item)
                deliver(batch, await writer.commit(batch))
        finally:  # only on a bug or cancellation: nobody may wait forever
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if item is not None:
                    settle(item[2], Failed(StoreError(f"{self.url}: store writer stopped")))
