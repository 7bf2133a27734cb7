"""The PostgreSQL store's schema: versioned migrations, applied by the node at open.

There is no manual SQL step: every node runs :func:`migrate` when its store
opens.  Several nodes may start at once against one database, so the whole
migration runs in one transaction holding a transaction-level advisory lock
keyed by the schema name: the first node migrates, the others wait on the
lock and then find nothing left to do.  DDL is transactional in PostgreSQL,
so a migration that fails leaves the previous version intact.

Each applied version is a row of ``schema_migrations``; a database migrated
by a newer aonode (a version this one does not know) is refused rather than
written with an older idea of the schema.
"""

from __future__ import annotations

import re
from typing import Final

import asyncpg

from aonode.errors import ConfigError, StoreError

# MIGRATIONS[n] moves a schema from version n to n + 1.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        "CREATE TABLE messages (id text PRIMARY KEY, codec text NOT NULL, raw bytea NOT NULL)",
        "CREATE TABLE assignments (process text NOT NULL, slot bigint NOT NULL,"
        " message text NOT NULL, hash_chain text NOT NULL, document bytea NOT NULL,"
        " PRIMARY KEY (process, slot),"
        " CONSTRAINT assignments_process_message UNIQUE (process, message))",
        # processes() lists processes in order of first storing; seq is that order.
        "CREATE TABLE processes (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " id text NOT NULL UNIQUE)",
        "CREATE TABLE locations (address text PRIMARY KEY, nonce bigint NOT NULL,"
        " message text NOT NULL)",
        "CREATE TABLE computed (process text NOT NULL, slot bigint NOT NULL,"
        " message text NOT NULL, results bytea NOT NULL, snapshot bytea,"
        " PRIMARY KEY (process, slot))",
        "CREATE INDEX computed_message ON computed (process, message)",
        "CREATE INDEX computed_snapshots ON computed (process, slot) WHERE snapshot IS NOT NULL",
        # "C": records() is in key order byte by byte, as in SQLite, whatever the
        # database's default collation.
        'CREATE TABLE records (kind text COLLATE "C" NOT NULL, key text COLLATE "C" NOT NULL,'
        " value bytea NOT NULL, PRIMARY KEY (kind, key))",
    ),
    (
        # Ownership across nodes (store/pg_lease.py).  A lease row is never deleted:
        # its token only grows, so a fenced-out owner can never match it again.
        "CREATE TABLE leases (process text PRIMARY KEY, owner text NOT NULL,"
        " url text NOT NULL, token bigint NOT NULL, expires_at timestamptz NOT NULL)",
        "CREATE TABLE nodes (owner text PRIMARY KEY, url text NOT NULL,"
        " started_at timestamptz NOT NULL, heartbeat timestamptz NOT NULL)",
    ),
)

SCHEMA_VERSION: Final = len(MIGRATIONS)

_LOCK_CLASS: Final = 0x616F6E6F  # "aono": the advisory-lock namespace of aonode
_SCHEMA_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def check_schema_name(schema: str) -> str:
    """``schema`` if it is a plain lower-case identifier (used unquoted in DDL)."""
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ConfigError(
            f"PostgreSQL schema name {schema!r}: use lower-case letters, digits and _"
            " (at most 63, not starting with a digit)"
        )
    return schema


async def migrate(conn: asyncpg.Connection, schema: str) -> int:
    """Create or upgrade ``schema`` to :data:`SCHEMA_VERSION`; the version now in force.

    ``conn`` must have ``search_path`` set to ``schema`` alone.
    """
    check_schema_name(schema)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _LOCK_CLASS, schema)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")
        assert isinstance(current, int)
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"schema {schema!r} is at version {current}, newer than this aonode"
                f" understands ({SCHEMA_VERSION}); upgrade aonode"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for sql in MIGRATIONS[version - 1]:
                await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
    return SCHEMA_VERSION


async def applied_versions(conn: asyncpg.Connection) -> list[int]:
    """Every version recorded in ``schema_migrations``, ascending (for status and tests)."""
    rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    return [int(row[0]) for row in rows]
