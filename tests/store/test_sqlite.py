"""SQLiteStore: the shared conformance suite on real files, plus what only SQLite has."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aonode.errors import ConfigError, IntegrityError, StoreError
from aonode.store import Store, open_store
from aonode.store.base import MessageRecord
from aonode.store.conformance import (
    ROLE_CASES,
    LifecycleConformance,
    MessageStoreConformance,
    ModelConformance,
    RecordStoreConformance,
    ResultCacheConformance,
    ScheduleLogConformance,
    StoreFactory,
    append,
    message,
    outcomes,
    schedule,
    settle,
    slot_of,
)
from aonode.store.sqlite import SCHEMA_VERSION, SQLiteStore


class SQLiteBackend:
    """The role cases' store: a SQLite file per name, under the test's directory."""

    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> StoreFactory:
        return lambda name: SQLiteStore(tmp_path / f"{name}.db")


class TestSQLiteScheduleLog(SQLiteBackend, ScheduleLogConformance):
    pass


class TestSQLiteMessageStore(SQLiteBackend, MessageStoreConformance):
    pass


class TestSQLiteResultCache(SQLiteBackend, ResultCacheConformance):
    pass


class TestSQLiteRecordStore(SQLiteBackend, RecordStoreConformance):
    pass


class TestSQLiteLifecycle(SQLiteBackend, LifecycleConformance):
    pass


class TestSQLiteModel(SQLiteBackend, ModelConformance):
    pass


def test_every_role_case_runs_on_sqlite() -> None:
    ran = {base for cls in globals().values() if isinstance(cls, type) for base in cls.__bases__}
    assert set(ROLE_CASES) <= ran


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "store.db")
    await store.open()
    yield store
    await store.close()


async def test_wal_and_full_synchronous_are_in_force(store: SQLiteStore) -> None:
    # synchronous is per connection: this is the writer's own, read back from SQLite.
    assert store.pragmas == {
        "journal_mode": "wal",
        "synchronous": 2,
        "user_version": SCHEMA_VERSION,
        "wal_autocheckpoint": 0,  # no commit checkpoints: store/sqlite_checkpoint.py does
    }
    # journal_mode=WAL and the schema version are properties of the file itself.
    path = Path(store.url.removeprefix("sqlite://"))
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_no_commit_checkpoints_the_checkpointer_does(tmp_path: Path) -> None:
    """SQLite's own checkpoint ran inside the commit that filled 1,000 pages of WAL and
    held that commit (and every reply waiting on it) 50-100 ms; commits must only append."""
    path = tmp_path / "store.db"
    store = SQLiteStore(path, checkpoint_every=3600)  # the thread stays out of the way
    await store.open()
    try:
        big = [MessageRecord(f"m{i}", bytes([i % 256]) * 8192) for i in range(800)]
        for i in range(0, len(big), 20):  # 40 commits, 1,600 pages of 4 KiB in all
            await asyncio.gather(*(store.put_message(m) for m in big[i : i + 20]))
        conn = sqlite3.connect(path)
        try:
            busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            conn.close()
        # every frame since the start is still in the log: no commit checkpointed (the
        # default would have restarted the log after 1,000 pages)
        assert busy == 0 and frames >= 800 * 2 and copied == frames
        assert await store.get_message("m799") == big[799]
    finally:
        await store.close()
    quick = SQLiteStore(path, checkpoint_every=0.01)
    await quick.open()
    try:
        await quick.put_message(MessageRecord("after", b"x"))
        assert await asyncio.to_thread(quick._checkpointer.ran.wait, 30)
        assert quick._checkpointer.runs >= 1
    finally:
        await quick.close()
    assert not path.with_name(path.name + "-wal").exists()  # the last close removes it


async def test_concurrent_appends_share_commits(store: SQLiteStore) -> None:
    for n in range(3):  # awaited one by one: nobody to share with, a commit each
        await append(store, "solo", n)
    assert (store.commits, store.appends) == (3, 3)
    results = await settle([append(store, f"p{n % 10}", n // 10) for n in range(200)])
    assert outcomes(results) == ["ok"] * 200
    assert store.appends == 203
    assert store.commits - 3 < 200 // 2, f"200 appends took {store.commits - 3} commits"


async def test_max_batch_bounds_each_commit(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "small.db", max_batch=8)
    await store.open()
    try:
        results = await settle([append(store, f"p{n % 10}", n // 10) for n in range(200)])
        assert outcomes(results) == ["ok"] * 200
        assert store.commits >= 200 // 8
    finally:
        await store.close()
    with pytest.raises(ValueError):
        SQLiteStore(tmp_path / "zero.db", max_batch=0)


async def test_failed_commit_fails_its_batch_and_nothing_after_it(tmp_path: Path) -> None:
    class FlakyConnection(sqlite3.Connection):
        failures = 0

        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            if sql == "COMMIT" and FlakyConnection.failures:
                FlakyConnection.failures -= 1
                raise sqlite3.OperationalError("disk I/O error (injected)")
            return super().execute(sql, *args)

    class FlakyStore(SQLiteStore):
        _connection_factory = FlakyConnection

    store = FlakyStore(tmp_path / "flaky.db")
    await store.open()
    try:
        await append(store, "p", 0)
        FlakyConnection.failures = 1  # the next commit, whatever batch it holds, fails
        calls = [("p", 1), ("p", 2), ("q", 0), ("q", 1)]
        results = await settle([append(store, p, s) for p, s in calls])
        assert isinstance(results[0], StoreError) and not isinstance(results[0], IntegrityError)
        assert isinstance(results[1], StoreError)  # same batch, or a gap after the failure
        assert await schedule(store, "p") == [slot_of("p", 0)]
        # q's appends failed only if they shared the failed batch, and then both did
        # (q/1 too: in that batch, or rejected as a gap after it).
        q_failed = [r is not None for r in results[2:]]
        assert q_failed in ([False, False], [True, True])
        assert all(isinstance(r, StoreError) for r in results if r is not None)
        q_kept = 0 if q_failed[0] else 2
        assert await schedule(store, "q") == [slot_of("q", n) for n in range(q_kept)]
        assert await store.get_message("p/1") is None
        # Nothing was left half-done: the failed slots are free again, in order.
        await append(store, "p", 1)
        await append(store, "p", 2)
        assert await schedule(store, "p") == [slot_of("p", n) for n in range(3)]
    finally:
        await store.close()


async def test_reads_do_not_wait_for_a_held_write_lock(store: SQLiteStore) -> None:
    await append(store, "p", 0)
    path = Path(store.url.removeprefix("sqlite://"))
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        blocker.execute("INSERT INTO assignments VALUES ('p', 1, 'uncommitted', 'h', x'00')")
        async with asyncio.TaskGroup() as group:
            appending = group.create_task(append(store, "p", 1))  # the writer waits...
            # ...but readers must not: they see the last committed state.
            assert await schedule(store, "p") == [slot_of("p", 0)]
            assert await store.latest("p") == slot_of("p", 0).assignment
            assert await store.by_message("p", "uncommitted") is None
            assert not appending.done()
            blocker.execute("ROLLBACK")
    finally:
        blocker.close()
    assert await schedule(store, "p") == [slot_of("p", 0), slot_of("p", 1)]


async def test_assignment_must_name_its_body(store: SQLiteStore) -> None:
    stored = slot_of("p", 0, "m")
    with pytest.raises(IntegrityError):
        await store.append(stored.assignment, message("other"))
    assert await store.latest("p") is None
    assert await store.get_message("other") is None


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "future.db") as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store = SQLiteStore(tmp_path / "future.db")
    with pytest.raises(StoreError, match="newer"):
        await store.open()
    await store.close()
    with pytest.raises(StoreError):
        await store.latest("p")


async def test_reads_and_second_open_after_close_raise(store: SQLiteStore) -> None:
    await store.close()
    with pytest.raises(StoreError):
        await store.latest("p")
    with pytest.raises(StoreError):
        await store.slots("p", 0, 1, 1)
    with pytest.raises(StoreError):
        await store.open()


# -- open_store ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///srv/aonode/store.db", "/srv/aonode/store.db"),
        ("sqlite:////srv/aonode/store.db", "/srv/aonode/store.db"),
        ("SQLite:///srv/aonode/store.db", "/srv/aonode/store.db"),
        ("sqlite:/srv/aonode/store.db", "/srv/aonode/store.db"),
        ("sqlite:///srv/my%20node/store.db", "/srv/my node/store.db"),
        ("sqlite:data/store.db", "{cwd}/data/store.db"),
        ("sqlite:store.db", "{cwd}/store.db"),
    ],
)
def test_open_store_sqlite_urls(
    url: str, path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store(url)
    assert isinstance(store, SQLiteStore)
    assert isinstance(store, Store)
    assert store.url == "sqlite://" + path.format(cwd=tmp_path)
    assert open_store(store.url).url == store.url  # status output can be fed back in


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("sqlite://db.internal/store.db", "sqlite:///"),
        ("sqlite:", "sqlite:///"),
        ("sqlite://", "sqlite:///"),
        ("sqlite:///", "sqlite:///"),
        ("sqlite::memory:", "sqlite:///"),
        ("/var/lib/aonode/store.db", "sqlite:///"),
        ("mysql://db/aonode", "sqlite:///"),
        ("", "sqlite:///"),
    ],
)
def test_open_store_rejects(url: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        open_store(url)


async def test_open_store_gives_a_working_store(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path}/via-url.db")
    await store.open()
    try:
        stored = await append(store, "p", 0)
        assert await store.by_message("p", "p/0") == stored
    finally:
        await store.close()
    assert (tmp_path / "via-url.db").exists()
