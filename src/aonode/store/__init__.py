"""Persistence behind one protocol; callers name a backend by URL and get a :class:`Store`.

The URL is the only place a backend is chosen, so configuration (``--store``)
stays a plain string and nothing above this package imports a backend module.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from aonode.errors import ConfigError
from aonode.store.base import (
    AssignmentRecord,
    LocationRecord,
    MessageRecord,
    Record,
    ResultRecord,
    Store,
    StoredSlot,
)

__all__ = [
    "AssignmentRecord",
    "LocationRecord",
    "MessageRecord",
    "Record",
    "ResultRecord",
    "Store",
    "StoredSlot",
    "open_store",
]

_ACCEPTED = "sqlite:///absolute/path, sqlite:relative/path (or postgresql://… later)"


def open_store(url: str) -> Store:
    """The store ``url`` names, not yet opened (the caller awaits ``open()``).

    ``sqlite:///abs/path`` is an absolute path (``sqlite:////abs/path``, the
    SQLAlchemy spelling, names the same file); ``sqlite:rel/path`` is relative
    to the current directory, resolved now so the store's ``url`` is absolute.
    Percent-escapes are decoded.
    """
    scheme, sep, rest = url.partition(":")
    scheme = scheme.lower()
    if sep and scheme == "sqlite":
        return _sqlite(url, rest)
    if sep and scheme.startswith(("postgres", "postgresql")):
        raise ConfigError("PostgreSQL store comes in a later release")
    raise ConfigError(f"unsupported store URL {url!r}; accepted forms: {_ACCEPTED}")


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
