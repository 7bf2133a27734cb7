"""A consistent read-only snapshot of a whole store, for ``aonode export``.

The :class:`~aonode.store.base.Store` protocol reads one process or one key at
a time and each read sees whatever is committed at that moment.  An export
wants more: everything (also messages no schedule assigns, every location,
result and record) as of *one* instant, even while a node keeps writing.  Both
backends have the same table and column names, so one set of queries serves
both; what differs is only how a snapshot is held:

* **SQLite**: a read-only connection with one open read transaction (WAL
  readers see the database as of their first read, beside a live writer);
* **PostgreSQL**: one ``REPEATABLE READ READ ONLY`` transaction; rows are
  streamed through server-side cursors.

Queries use ``?`` placeholders; the PostgreSQL reader renumbers them.  A backend
hands its kind out from ``Store.snapshot()``; ``aonode.store.open_snapshot(url)``
opens one by URL.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import asyncpg

from aonode.errors import ConfigError, StoreError

_PAGE: Final = 256

PROCESSES: Final = (
    "SELECT p.id, max(a.slot), count(*) FROM processes AS p"
    " JOIN assignments AS a ON a.process = p.id GROUP BY p.seq, p.id ORDER BY p.seq"
)
CHAIN_AT: Final = "SELECT hash_chain FROM assignments WHERE process = ? AND slot = ?"
ASSIGNMENTS: Final = (
    "SELECT a.slot, a.message, a.hash_chain, a.document, m.codec, m.raw"
    " FROM assignments AS a JOIN messages AS m ON m.id = a.message"
    " WHERE a.process = ? AND a.slot <= ? ORDER BY a.slot"
)
# Messages that neither a schedule nor a location holds.  Each engine needs its own
# spelling to avoid a scan per message (no index on assignments.message alone):
# SQLite indexes a NOT IN list once; PostgreSQL plans NOT EXISTS as a hash anti-join.
_LOOSE_SQLITE: Final = (
    " FROM messages AS m WHERE m.id NOT IN (SELECT message FROM assignments)"
    " AND m.id NOT IN (SELECT message FROM locations)"
)
_LOOSE_POSTGRES: Final = (
    " FROM messages AS m WHERE NOT EXISTS (SELECT 1 FROM assignments AS a WHERE a.message = m.id)"
    " AND NOT EXISTS (SELECT 1 FROM locations AS l WHERE l.message = m.id)"
)
LOCATIONS: Final = (
    "SELECT l.address, l.nonce, l.message, m.codec, m.raw FROM locations AS l"
    " JOIN messages AS m ON m.id = l.message ORDER BY l.address"
)
RESULTS: Final = (
    "SELECT process, slot, message, results, snapshot FROM computed ORDER BY process, slot"
)
RECORDS: Final = "SELECT kind, key, value FROM records ORDER BY kind, key"
COUNTS: Final = {
    "L": "SELECT count(*) FROM locations",
    "R": "SELECT count(*) FROM computed",
    "K": "SELECT count(*) FROM records",
}


class SQLiteSnapshot:
    """:class:`~aonode.store.base.Snapshot` of a SQLite file: one read transaction."""

    loose_messages = "SELECT m.id, m.codec, m.raw" + _LOOSE_SQLITE + " ORDER BY m.id"
    loose_count = "SELECT count(*)" + _LOOSE_SQLITE

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise ConfigError(f"no SQLite store at {path}")
        try:
            self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
            self._conn.execute("BEGIN")
            self._conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()  # snapshot now
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {path}: {exc}") from exc

    async def value(self, sql: str, *args: object) -> Any:
        row = self._conn.execute(sql, args).fetchone()
        return None if row is None else row[0]

    async def rows(self, sql: str, *args: object) -> AsyncIterator[tuple[Any, ...]]:
        cursor = self._conn.execute(sql, args)
        while page := cursor.fetchmany(_PAGE):
            for row in page:
                yield tuple(row)

    async def close(self) -> None:
        self._conn.close()


class PostgresSnapshot:
    """:class:`~aonode.store.base.Snapshot` of a PostgreSQL schema: one REPEATABLE READ
    transaction."""

    loose_messages = "SELECT m.id, m.codec, m.raw" + _LOOSE_POSTGRES + " ORDER BY m.id"
    loose_count = "SELECT count(*)" + _LOOSE_POSTGRES

    def __init__(self, conn: asyncpg.Connection, transaction: Any) -> None:
        self._conn = conn
        self._transaction = transaction

    @classmethod
    async def open(cls, dsn: str, schema: str, url: str) -> PostgresSnapshot:
        """A snapshot of ``schema`` (``url``, the store's password-free URL, names it in
        errors)."""
        try:
            return await cls._open(dsn, schema)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise StoreError(f"{url}: cannot read: {exc}") from exc

    @classmethod
    async def _open(cls, dsn: str, schema: str) -> PostgresSnapshot:
        conn = await asyncpg.connect(dsn, timeout=10, server_settings={"search_path": schema})
        try:
            if await conn.fetchval("SELECT to_regclass('assignments')") is None:
                raise ConfigError(f"the database has no aonode tables in schema {schema!r}")
            transaction = conn.transaction(isolation="repeatable_read", readonly=True)
            await transaction.start()
        except BaseException:
            conn.terminate()
            raise
        return cls(conn, transaction)

    async def value(self, sql: str, *args: object) -> Any:
        return await self._conn.fetchval(_numbered(sql), *args)

    async def rows(self, sql: str, *args: object) -> AsyncIterator[tuple[Any, ...]]:
        async for row in self._conn.cursor(_numbered(sql), *args, prefetch=_PAGE):
            yield tuple(row)

    async def close(self) -> None:
        try:
            await self._transaction.rollback()
            await self._conn.close(timeout=10)
        except Exception:
            self._conn.terminate()


def _numbered(sql: str) -> str:
    count = 0

    def number(_: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"${count}"

    return re.sub(r"\?", number, sql)


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:`` URL, without creating it (None for other URLs)."""
    scheme, _, rest = url.partition(":")
    if scheme.lower() != "sqlite":
        return None
    if rest.startswith("//"):
        return Path(unquote(urlsplit(url).path) or "/")
    return Path(unquote(rest)).absolute()
