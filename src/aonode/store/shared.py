"""What the SQLite and PostgreSQL stores share, written once.

Both backends are one group-committing writer with a next-slot hint in front of
the database's own guard (their module docstrings say why); the bookkeeping
around a commit and the shape of a stored slot are the same in both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, Final

from aonode.store.base import AssignmentRecord, CommitObserver, MessageRecord, StoredSlot

MAX_SLOT: Final = 2**63 - 1
"""The largest slot either engine stores (a 64-bit integer); larger bounds match nothing."""

NEXT_CACHE_SIZE: Final = 65_536
"""Processes whose next slot a writer remembers (the least recently written are dropped)."""


class CommitCounts:
    """The counters of a store's writer, and the observer told of each commit (metrics).

    ``appends / commits`` is the batching factor (bench/store_append.py, the tests
    of group commit).  Updated only by the writer, after a commit succeeded.
    """

    _commits: int = 0
    _appends: int = 0
    commit_observer: CommitObserver | None = None  # may be called on a writer thread

    @property
    def commits(self) -> int:
        """Transactions committed so far: ``appends / commits`` is the batching factor."""
        return self._commits

    @property
    def appends(self) -> int:
        """Assignments durably appended so far (rejected ones are not counted)."""
        return self._appends

    def _counted(self, items: int, appended: int, seconds: float) -> None:
        """One batch of ``items`` committed, ``appended`` of them assignments, its COMMIT
        having taken ``seconds``."""
        self._commits += 1
        self._appends += appended
        if (observer := self.commit_observer) is not None:
            with contextlib.suppress(Exception):  # metrics never stop a writer
                observer(items, seconds)


def remember_next(hint: dict[str, int], staged: Mapping[str, int]) -> None:
    """Update a writer's next-slot hint after a commit wrote ``staged`` (process -> next)."""
    for process, slot in staged.items():
        hint.pop(process, None)  # re-insert: the dict's order is recency
        hint[process] = slot
    while len(hint) > NEXT_CACHE_SIZE:
        del hint[next(iter(hint))]


def stored_slot(row: Sequence[Any]) -> StoredSlot:
    """A row of the assignment-joined-to-message query both backends run."""
    process, slot, message, hash_chain, document, raw, codec = row
    return StoredSlot(
        AssignmentRecord(process, slot, message, hash_chain, document),
        MessageRecord(message, raw, codec),
    )
