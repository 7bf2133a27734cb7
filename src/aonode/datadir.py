"""One node per data directory: an exclusive lock held for the node's lifetime.

Two nodes on one embedded store would each run their own scheduler actors over
the same SQLite file: their schedules diverge (clients then see
``integrity-error``) and every cron task fires twice.  A node therefore takes
an exclusive ``flock`` on ``aonode.lock`` in its data directory before it opens
the store, writes its pid there, and keeps the lock until it stops; the kernel
drops it if the process dies, so a crash never leaves a stale lock.  ``flock``
(not ``lockf``) so that two nodes in one process exclude each other too.

The directory is made private (0700) and the store's files owner-only (0600);
SQLite gives the ``-wal`` and ``-shm`` files it creates the database file's
permissions, so creating that file 0600 first covers all three.

A cluster (``serve --workers N``, :mod:`aonode.cluster`) is one node in N
processes: its supervisor takes the lock and each worker *adopts* it through the
descriptor it inherits (the same open file, so the same ``flock``).  A worker
outliving a killed supervisor still holds the lock until it has drained and
exited (it stops when it sees the supervisor gone): a node started meanwhile
finds the lock held while the pid written in it is dead, and waits (at most
:data:`ORPHAN_WAIT` seconds) instead of refusing to start.  A lock whose writer
is alive is another node: refused at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path

from aonode.errors import ConfigError, DataDirLocked

LOCK_NAME = "aonode.lock"
ORPHAN_WAIT = 60.0  # seconds: a killed supervisor's workers drain (30 s grace) and exit
_POLL = 0.05

log = logging.getLogger("aonode.datadir")


class DataDirLock:
    """The exclusive lock of one data directory (``acquire`` … ``release``)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).absolute()
        self._fd: int | None = None
        self._adopted = False

    @property
    def held(self) -> bool:
        return self._fd is not None

    @property
    def fd(self) -> int | None:
        """The descriptor holding the lock (a supervisor hands it to its workers)."""
        return self._fd

    def adopt(self, fd: int) -> None:
        """Hold the lock through ``fd``, inherited from the supervisor that took it.

        ``fd`` must be this directory's lock file, opened and locked by the
        supervisor: a ``flock`` on the same open file succeeds, while one on any
        other open of the file would fail.  :meth:`release` then only closes the
        worker's copy (the supervisor's lock stays).
        """
        if self._fd is not None:
            return
        path = self.data_dir / LOCK_NAME
        try:
            mine, theirs = os.stat(path), os.fstat(fd)
            if (mine.st_dev, mine.st_ino) != (theirs.st_dev, theirs.st_ino):
                raise ConfigError(f"descriptor {fd} is not the lock file {path}")
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataDirLocked(
                f"data directory {self.data_dir} is locked by another open of its lock file",
                path=str(self.data_dir),
                pid=_read_pid(fd),
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot adopt the lock of {self.data_dir}: {exc}") from None
        self._fd = os.dup(fd)
        self._adopted = True

    def acquire(self) -> None:
        """Take the lock (raises :class:`DataDirLocked` naming the holder's pid)."""
        if self._fd is not None:
            return
        make_private(self.data_dir)
        path = self.data_dir / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConfigError(f"cannot open the lock file {path}: {exc}") from None
        holder = self._take(fd)
        if holder is not None:
            os.close(fd)
            who = f"pid {holder}" if holder else "an unknown process"
            raise DataDirLocked(
                f"data directory {self.data_dir} is in use by another aonode ({who}); "
                "one node per data directory",
                path=str(self.data_dir),
                pid=holder or None,
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def _take(self, fd: int, wait: float = ORPHAN_WAIT) -> int | None:
        """Lock ``fd``: None once locked, else the live holder's pid (0: unknown).

        While the pid written in the file is dead, the lock is held by workers
        of a killed supervisor that are draining: wait for them (bounded).
        """
        deadline = time.monotonic() + wait
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return None
            except BlockingIOError:
                holder = _read_pid(fd)
            if holder is not None and not _alive(holder) and time.monotonic() < deadline:
                if not said:
                    said = True
                    log.warning(
                        "data directory %s: the aonode that locked it (pid %d) is gone; "
                        "waiting for its workers to finish",
                        self.data_dir,
                        holder,
                    )
                time.sleep(_POLL)  # bounded: the orphans exit within their drain grace
                continue
            return holder if holder is not None else 0

    def release(self) -> None:
        """Drop the lock (the file stays: removing it would race a new holder)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self._adopted:  # the supervisor's lock: only our copy of the descriptor goes
            self._adopted = False
            os.close(fd)
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def make_private(data_dir: Path) -> None:
    """Create ``data_dir`` if needed and make it 0700."""
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(data_dir, 0o700)
    except OSError as exc:
        raise ConfigError(f"cannot use data directory {data_dir}: {exc}") from None


def sqlite_path(store_url: str) -> Path | None:
    """The database file of an embedded store URL (``sqlite://PATH``); None otherwise."""
    if not store_url.startswith("sqlite://"):
        return None
    return Path(store_url.removeprefix("sqlite://"))


def secure_sqlite(db: Path) -> None:
    """Make the database file and its ``-wal``/``-shm`` companions 0600 (created if absent)."""
    try:
        fd = os.open(db, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.close(fd)
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(path, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot use the store file {db}: {exc}") from None
