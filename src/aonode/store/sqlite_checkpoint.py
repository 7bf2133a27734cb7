"""Checkpoints of the embedded store's write-ahead log, off the commit path.

SQLite's default (``wal_autocheckpoint = 1000``) makes the commit that fills the
WAL past 1,000 pages copy them into the database file and fsync it, inside that
commit: on this project's machine one commit in a few thousand then took 50-100
ms instead of ~0.3, and every ``local_confirmation`` reply waiting for it waited
as long (the p99 of ``bench/schedule.py``'s half-load run was that one commit).

So the writer connection never checkpoints (``wal_autocheckpoint = 0``) and this
thread does, on its own connection: about once a second when something was
committed since, a ``PASSIVE`` checkpoint, which copies what no reader still
needs and never blocks the writer (a WAL writer appends while a checkpoint
copies older frames).  SQLite starts the log again from its beginning at the
next commit after a checkpoint that copied everything.  Several processes on
one file (a cluster) each run one; two at once is harmless (one is told busy).
The last connection to close still checkpoints and removes the WAL.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("aonode.store")

EVERY = 1.0  # seconds between checkpoints while commits keep coming


class Checkpointer:
    """A thread that checkpoints ``path``'s WAL when commits happened since the last."""

    def __init__(self, path: Path, every: float = EVERY) -> None:
        self._path = path
        self._every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dirty = False  # set by the writer after each commit (one attribute store)
        self.runs = 0  # checkpoints made
        self.ran = threading.Event()  # set after each one (tests wait on it)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._main, name="aonode-store-checkpoint", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop and close the connection (before the writer's, which closes last)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def checkpoint(self, conn: sqlite3.Connection) -> tuple[int, int, int]:
        """One ``PASSIVE`` checkpoint: (busy, frames in the log, frames checkpointed)."""
        busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.runs += 1
        self.ran.set()
        return int(busy), int(frames), int(copied)

    def _main(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:  # the writer's own checkpoints are gone: say so
            log.warning("WAL checkpoints of %s cannot run: %s", self._path, exc)
            return
        try:
            while not self._stop.wait(self._every):
                if not self.dirty:
                    continue
                self.dirty = False
                try:
                    self.checkpoint(conn)
                except sqlite3.Error as exc:  # a full disk, a busy file: next time
                    log.warning("WAL checkpoint of %s failed: %s", self._path, exc)
        finally:
            conn.close()
