"""Persistence behind one protocol; callers name a backend by URL and get a :class:`Store`.

The URL is the only place a backend is chosen, so configuration (``--store``)
stays a plain string and nothing above this package imports a backend module.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from aonode.errors import ConfigError
from aonode.store.base import (
    AssignmentRecord,
    LocationRecord,
    MessageRecord,
    MessageStore,
    Ownership,
    Record,
    RecordStore,
    ResultCache,
    ResultRecord,
    ScheduleLog,
    ScheduleReader,
    Snapshot,
    Store,
    StoredSlot,
)

__all__ = [
    "AssignmentRecord",
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
    "Store",
    "StoredSlot",
    "open_snapshot",
    "open_store",
]

_ACCEPTED = (
    "sqlite:///absolute/path, sqlite:relative/path,"
    " postgresql://user[:password]@host[:port]/database[?schema=name]"
)


def open_store(url: str) -> Store:
    """The store ``url`` names, not yet opened (the caller awaits ``open()``).

    ``sqlite:///abs/path`` is an absolute path (``sqlite:////abs/path``, the
    SQLAlchemy spelling, names the same file); ``sqlite:rel/path`` is relative
    to the current directory, resolved now so the store's ``url`` is absolute.
    Percent-escapes are decoded.  ``postgresql://…`` (or ``postgres://…``) is a
    libpq-style URL handed to asyncpg as is, except ``schema=`` (the schema
    holding aonode's tables, default ``aonode``) and ``lease_seconds=`` (how
    long a node owns a process without renewing, default 5), which are aonode's.
    """
    scheme, sep, rest = url.partition(":")
    scheme = scheme.lower()
    if sep and scheme == "sqlite":
        return _sqlite(url, rest)
    if sep and scheme in ("postgres", "postgresql"):
        return _postgres(url)
    raise ConfigError(f"unsupported store URL {url!r}; accepted forms: {_ACCEPTED}")


async def open_snapshot(url: str) -> Snapshot:
    """A consistent read-only view of the whole store ``url`` names (``aonode export``).

    The store is opened and closed first, so an older schema is migrated as a node
    would; a ``sqlite:`` URL must name an existing file (an export creates nothing).
    """
    from aonode.store.export_view import sqlite_path

    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise ConfigError(f"no SQLite store at {path}")
    store = open_store(url)  # validates the URL
    await store.open()
    await store.close()
    return await store.snapshot()


def _sqlite(url: str, rest: str) -> Store:
    from aonode.store.sqlite import SQLiteStore  # only the chosen backend is imported

    if rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        if authority or not slash:
            raise ConfigError(
                f"store URL {url!r} names a host; SQLite files are local."
                f" Accepted forms: {_ACCEPTED}"
            )
        path = "/" + path.lstrip("/")
    else:
        path = rest
    path = unquote(path)
    if path.strip("/") in ("", ":memory:") or "\x00" in path:
        raise ConfigError(f"store URL {url!r} names no database file; accepted forms: {_ACCEPTED}")
    return SQLiteStore(Path(path).absolute())


def _postgres(url: str) -> Store:
    from aonode.store.postgres import DEFAULT_SCHEMA, PostgresStore

    parts = urlsplit(url)
    if not parts.path.strip("/") and not parts.netloc:
        raise ConfigError(f"store URL {url!r} names no database; accepted forms: {_ACCEPTED}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    if len(schemas) > 1:
        raise ConfigError(f"store URL {url!r} names more than one schema")
    leases = [value for key, value in query if key == "lease_seconds"]
    try:
        lease_seconds = float(leases[-1]) if leases else 5.0
    except ValueError:
        lease_seconds = 0.0
    if not 0 < lease_seconds < 3600:
        raise ConfigError(f"store URL {url!r}: lease_seconds must be a number of seconds > 0")
    ours = ("schema", "lease_seconds")
    rest = urlencode([(key, value) for key, value in query if key not in ours])
    dsn = urlunsplit(("postgresql", parts.netloc, parts.path, rest, ""))
    return PostgresStore(
        dsn, schema=schemas[0] if schemas else DEFAULT_SCHEMA, lease_seconds=lease_seconds
    )
