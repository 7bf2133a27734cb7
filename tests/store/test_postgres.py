"""PostgresStore: the shared conformance suite on a real server, plus what only it has."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator

import asyncpg
import pytest

from aonode.errors import ConfigError, StoreError, StoreUnavailable
from aonode.store import Record, Store, open_store
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
    outcomes,
    schedule,
    settle,
    slot_of,
)
from aonode.store.pg_schema import MIGRATIONS, SCHEMA_VERSION, applied_versions
from aonode.store.postgres import DEFAULT_SCHEMA, PostgresStore
from tests.pg_fixture import PostgresServer, standalone_server

_tests = itertools.count()


class PostgresBackend:
    """The role cases' store: a schema per test and name, in one database for the run."""

    @pytest.fixture
    def store_factory(self, pg_server: PostgresServer) -> StoreFactory:
        # One database for the run; each test's names get schemas of their own.
        url = pg_server.url("postgres")
        test = next(_tests)
        return lambda name: PostgresStore(url, schema=f"t{test}_{name.replace('-', '_')}")


class TestPostgresScheduleLog(PostgresBackend, ScheduleLogConformance):
    pass


class TestPostgresMessageStore(PostgresBackend, MessageStoreConformance):
    pass


class TestPostgresResultCache(PostgresBackend, ResultCacheConformance):
    pass


class TestPostgresRecordStore(PostgresBackend, RecordStoreConformance):
    pass


class TestPostgresLifecycle(PostgresBackend, LifecycleConformance):
    pass


class TestPostgresModel(PostgresBackend, ModelConformance):
    pass


def test_every_role_case_runs_on_postgres() -> None:
    ran = {base for cls in globals().values() if isinstance(cls, type) for base in cls.__bases__}
    assert set(ROLE_CASES) <= ran


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(pg_url)
    await store.open()
    yield store
    await store.close()


async def test_durable_commits_and_recorded_migrations(store: PostgresStore, pg_url: str) -> None:
    assert store.settings["synchronous_commit"] == "on"  # the writer session's own setting
    assert store.settings["schema_version"] == SCHEMA_VERSION
    conn = await asyncpg.connect(pg_url, server_settings={"search_path": store.schema})
    try:
        assert await applied_versions(conn) == list(range(1, SCHEMA_VERSION + 1))
    finally:
        await conn.close()


async def test_the_database_itself_enforces_uniqueness(store: PostgresStore, pg_url: str) -> None:
    await append(store, "p", 0)
    conn = await asyncpg.connect(pg_url, server_settings={"search_path": store.schema})
    try:
        insert = "INSERT INTO assignments VALUES ($1, $2, $3, 'h', '\\x00'::bytea)"
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(insert, "p", 0, "another")  # (process, slot)
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(insert, "p", 1, "p/0")  # (process, message)
    finally:
        await conn.close()
    assert await schedule(store, "p") == [slot_of("p", 0)]


async def test_concurrent_appends_share_commits(store: PostgresStore) -> None:
    for n in range(3):  # awaited one by one: nobody to share with, a commit each
        await append(store, "solo", n)
    assert (store.commits, store.appends) == (3, 3)
    results = await settle([append(store, f"p{n % 10}", n // 10) for n in range(200)])
    assert outcomes(results) == ["ok"] * 200
    assert store.appends == 203
    assert store.commits - 3 < 200 // 2, f"200 appends took {store.commits - 3} commits"


async def test_max_batch_bounds_each_commit(pg_url: str) -> None:
    store = PostgresStore(pg_url, max_batch=8)
    await store.open()
    try:
        results = await settle([append(store, f"p{n % 10}", n // 10) for n in range(200)])
        assert outcomes(results) == ["ok"] * 200
        assert store.commits >= 200 // 8
    finally:
        await store.close()
    with pytest.raises(ValueError):
        PostgresStore(pg_url, max_batch=0)


async def test_nodes_opening_at_once_migrate_once(pg_url: str) -> None:
    stores = [PostgresStore(pg_url, schema="racing") for _ in range(6)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        assert outcomes(await settle([append(s, f"p{n}", 0) for n, s in enumerate(stores)])) == [
            "ok"
        ] * len(stores)
        assert sorted(await stores[0].processes()) == [f"p{n}" for n in range(6)]
        conn = await asyncpg.connect(pg_url, server_settings={"search_path": "racing"})
        try:
            assert await applied_versions(conn) == list(range(1, SCHEMA_VERSION + 1))
        finally:
            await conn.close()
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_newer_schema_is_refused(pg_url: str) -> None:
    first = PostgresStore(pg_url)
    await first.open()
    await first.close()
    conn = await asyncpg.connect(pg_url, server_settings={"search_path": first.schema})
    try:
        await conn.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)", SCHEMA_VERSION + 1
        )
    finally:
        await conn.close()
    store = PostgresStore(pg_url)
    with pytest.raises(StoreError, match="newer"):
        await store.open()
    with pytest.raises(StoreError):
        await store.latest("p")
    with pytest.raises(StoreError):
        await append(store, "p", 0)
    await store.close()


async def test_two_nodes_racing_for_one_process_stay_gap_free(pg_url: str) -> None:
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    await a.open()
    await b.open()
    try:
        calls = [(store, name, n) for n in range(100) for store, name in ((a, "a"), (b, "b"))]
        results = await settle([append(s, "p", n, f"{name}/{n}") for s, name, n in calls])
        assert set(outcomes(results)) <= {"ok", "integrity"}
        stored = await schedule(a, "p")
        # Every slot was taken by exactly one of them: whoever lost a slot saw it taken.
        assert [s.assignment.slot for s in stored] == list(range(100))
        won = {(name, n) for (_, name, n), r in zip(calls, results, strict=True) if r is None}
        assert {(s.assignment.message.split("/")[0], s.assignment.slot) for s in stored} == won
    finally:
        await a.close()
        await b.close()


async def test_reads_do_not_wait_for_a_held_write_lock(store: PostgresStore, pg_url: str) -> None:
    await append(store, "p", 0)
    blocker = await asyncpg.connect(pg_url, server_settings={"search_path": store.schema})
    try:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute(
            "INSERT INTO assignments VALUES ('p', 1, 'uncommitted', 'h', '\\x00'::bytea)"
        )
        async with asyncio.TaskGroup() as group:
            appending = group.create_task(append(store, "p", 1))  # the writer waits...
            # ...but readers must not: they see the last committed state.
            assert await schedule(store, "p") == [slot_of("p", 0)]
            assert await store.latest("p") == slot_of("p", 0).assignment
            assert await store.by_message("p", "uncommitted") is None
            assert not appending.done()
            await transaction.rollback()
    finally:
        await blocker.close()
    assert await schedule(store, "p") == [slot_of("p", 0), slot_of("p", 1)]


async def test_a_value_the_database_refuses_fails_alone(store: PostgresStore) -> None:
    await append(store, "p", 0)
    results = await settle(
        [
            append(store, "q", 0),
            append(store, "p", 1, "nul\x00in-id"),  # PostgreSQL text cannot hold NUL
            store.put_record(Record("cron", "nul\x00key", b"v")),
            append(store, "q", 1),
            store.put_record(Record("cron", "fine", b"v")),
        ]
    )
    assert [type(r).__name__ if r else "ok" for r in results] == [
        "ok",
        "StoreError",
        "StoreError",
        "ok",
        "ok",
    ]
    assert await schedule(store, "q") == [slot_of("q", 0), slot_of("q", 1)]
    assert await store.records("cron") == [Record("cron", "fine", b"v")]
    await append(store, "p", 1)  # the refused slot is free again
    assert await schedule(store, "p") == [slot_of("p", 0), slot_of("p", 1)]


async def test_unreachable_database_is_a_clear_error_at_open(pg_server: PostgresServer) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        store = PostgresStore(f"postgresql://aonode@127.0.0.1:{port}/x", connect_timeout=5)
        with pytest.raises(StoreError, match=f"127.0.0.1:{port}/x: cannot open"):
            await store.open()
    missing = PostgresStore(pg_server.url("no_such_database"))
    with pytest.raises(StoreError, match="no_such_database"):
        await missing.open()


async def test_database_restart_fails_writes_then_recovers() -> None:
    with standalone_server() as server:
        url = await server.create_database_async()
        store = PostgresStore(url, connect_timeout=5)
        await store.open()
        try:
            stored = [await append(store, "p", n) for n in range(3)]
            server.halt()
            with pytest.raises(StoreError) as failed:
                await append(store, "p", 3)
            assert isinstance(failed.value, StoreUnavailable)  # 503 + Retry-After over HTTP
            with pytest.raises(StoreUnavailable):
                await store.latest("p")
            server.resume()
            # Nothing acknowledged was lost; the store reconnects by itself.
            stored.append(await append(store, "p", 3))
            assert await schedule(store, "p") == stored
            assert await store.latest("p") == stored[-1].assignment
        finally:
            await store.close()


# -- open_store ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "canonical", "schema"),
    [
        ("postgresql://aonode@db.internal/aonode", "postgresql://aonode@db.internal/aonode", None),
        (
            "postgres://aonode:secret@db.internal:5433/aonode?schema=node_a",
            "postgresql://aonode@db.internal:5433/aonode?schema=node_a",
            "node_a",
        ),
        (
            "postgresql://u@h/db?sslmode=disable&schema=s1",
            "postgresql://u@h/db?sslmode=disable&schema=s1",
            "s1",
        ),
    ],
)
def test_open_store_postgres_urls(url: str, canonical: str, schema: str | None) -> None:
    store = open_store(url)
    assert isinstance(store, PostgresStore)
    assert isinstance(store, Store)
    assert store.url == canonical  # no password in status output
    assert store.schema == (schema or DEFAULT_SCHEMA)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://",
        "postgresql://h/db?schema=Bad-Name",
        "postgresql://h/db?schema=a&schema=b",
        "postgresql://h/db?schema=",
    ],
)
def test_open_store_rejects_bad_postgres_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        open_store(url)


async def test_open_store_gives_a_working_postgres_store(pg_url: str) -> None:
    store = open_store(pg_url + "?schema=via_url")
    await store.open()
    try:
        stored = await append(store, "p", 0)
        assert await store.by_message("p", "p/0") == stored
    finally:
        await store.close()
    again = open_store(store.url)
    await again.open()
    try:
        assert await schedule(again, "p") == [stored]
    finally:
        await again.close()


async def test_an_older_schema_is_migrated_in_place(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url, server_settings={"search_path": "old"})
    try:  # a database left at version 1 by an older aonode, with a schedule in it
        await conn.execute("CREATE SCHEMA old")
        await conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for sql in MIGRATIONS[0]:
            await conn.execute(sql)
        await conn.execute("INSERT INTO schema_migrations (version) VALUES (1)")
        await conn.execute(
            "INSERT INTO assignments VALUES ('p', 0, 'p/0', 'chain:p:0:p/0', $1)",
            slot_of("p", 0).assignment.document,
        )
        await conn.execute("INSERT INTO messages VALUES ('p/0', 'ans104', 'raw:p/0')")
        await conn.execute("INSERT INTO processes (id) VALUES ('p')")
    finally:
        await conn.close()
    store = PostgresStore(pg_url, schema="old")
    await store.open()
    try:
        assert store.settings["schema_version"] == SCHEMA_VERSION > 1
        assert await schedule(store, "p") == [slot_of("p", 0)]
        await append(store, "p", 1)
        assert await store.processes() == ["p"]
    finally:
        await store.close()
