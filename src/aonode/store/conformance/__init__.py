"""The behavioural test cases every store backend runs, one per role.

They live in the package (not under ``tests/``) so that a backend is judged by
exactly the same rules wherever it is developed (the eventsourcing pattern: one
abstract case per persistence role, run against every backend).  A backend's
test module provides ``store_factory`` once, in a mixin, and subclasses each
case it implements::

    class SQLiteBackend:
        @pytest.fixture
        def store_factory(self, tmp_path: Path) -> StoreFactory:
            return lambda name: SQLiteStore(tmp_path / f"{name}.db")

    class TestSQLiteScheduleLog(SQLiteBackend, ScheduleLogConformance): ...

:data:`ROLE_CASES` lists every case: a backend of the full :class:`Store` runs
them all (its test module checks it does).  :class:`OwnershipConformance` is for
a store several nodes share (``Ownership``) and brings its own fixture.
Importing this package only defines things; pytest collects the subclasses.
"""

from __future__ import annotations

from aonode.store.conformance.helpers import (
    EVERYTHING,
    Conformance,
    StoreFactory,
    append,
    message,
    outcomes,
    schedule,
    settle,
    slot_of,
)
from aonode.store.conformance.lifecycle import LifecycleConformance
from aonode.store.conformance.messages import MessageStoreConformance
from aonode.store.conformance.model import ModelConformance
from aonode.store.conformance.ownership import (
    NodeStoreFactory,
    OwnershipConformance,
    SharedStore,
)
from aonode.store.conformance.records import RecordStoreConformance
from aonode.store.conformance.results import ResultCacheConformance
from aonode.store.conformance.schedule_log import ScheduleLogConformance

__all__ = [
    "EVERYTHING",
    "ROLE_CASES",
    "Conformance",
    "LifecycleConformance",
    "MessageStoreConformance",
    "ModelConformance",
    "NodeStoreFactory",
    "OwnershipConformance",
    "RecordStoreConformance",
    "ResultCacheConformance",
    "ScheduleLogConformance",
    "SharedStore",
    "StoreFactory",
    "append",
    "message",
    "outcomes",
    "schedule",
    "settle",
    "slot_of",
]

ROLE_CASES: tuple[type[Conformance], ...] = (
    ScheduleLogConformance,
    MessageStoreConformance,
    ResultCacheConformance,
    RecordStoreConformance,
    LifecycleConformance,
    ModelConformance,
)
