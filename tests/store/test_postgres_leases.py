"""Ownership across nodes on one PostgreSQL: leases, fencing tokens, takeover, release.

A lease's expiry is the database's clock; where a test needs "the owner
stopped renewing long ago", it moves that clock's verdict directly (the row's
``expires_at`` into the past) rather than sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from aonode.errors import LeaseLost
from aonode.store.conformance import (
    NodeStoreFactory,
    OwnershipConformance,
    append,
    schedule,
    settle,
    slot_of,
)
from aonode.store.postgres import PostgresStore

Opener = Callable[..., Awaitable[PostgresStore]]


@pytest.fixture
async def node_store(pg_url: str) -> AsyncIterator[Opener]:
    """Stores as nodes open them: each its own incarnation and URL, leases on."""
    opened: list[PostgresStore] = []

    async def open_as(name: str, seconds: float = 30.0) -> PostgresStore:
        store = PostgresStore(pg_url)
        store.use_leases(f"{name}/incarnation", f"http://{name}.test:8734", seconds)
        await store.open()
        opened.append(store)
        return store

    yield open_as
    for store in opened:
        await store.close()


async def _sql(pg_url: str, query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(pg_url, server_settings={"search_path": "aonode"})
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def _expire(pg_url: str, process: str) -> None:
    """As if the owner had stopped renewing a lease length ago (paused, partitioned)."""
    await _sql(
        pg_url,
        "UPDATE leases SET expires_at = now() - interval '1 second' WHERE process = $1",
        process,
    )


async def _token(pg_url: str, process: str) -> int:
    rows = await _sql(pg_url, "SELECT token FROM leases WHERE process = $1", process)
    return int(rows[0][0])


class TestPostgresOwnership(OwnershipConformance):
    @pytest.fixture
    def node_store_factory(self, node_store: Opener) -> NodeStoreFactory:
        return node_store


async def test_one_owner_at_a_time_counts_fencing_tokens(node_store: Opener, pg_url: str) -> None:
    a, b = await node_store("a"), await node_store("b")
    assert await a.claim("p") is None
    assert await a.claim("p") is None  # keeping one's own lease changes nothing
    assert await b.claim("p") == "http://a.test:8734"
    assert await _token(pg_url, "p") == 1


async def test_a_fenced_out_owner_never_writes_again(node_store: Opener, pg_url: str) -> None:
    a, b = await node_store("a"), await node_store("b")
    assert await a.claim("p") is None
    for n in range(2):
        await append(a, "p", n)
    await _expire(pg_url, "p")  # a is frozen; its lease runs out
    assert await b.claim("p") is None  # b takes over...
    assert await _token(pg_url, "p") == 2  # ...with a larger fencing token
    latest = await b.latest("p")  # and resumes from what is stored
    assert latest is not None and latest.slot == 1
    await append(b, "p", 2, "from-b")
    # a wakes up and carries on where it thinks it is: refused, slot by slot.
    results = await settle([append(a, "p", 2, "from-a"), append(a, "p", 3, "from-a-3")])
    assert all(isinstance(r, LeaseLost) for r in results), results
    assert not a.holds("p")
    assert await schedule(b, "p") == [slot_of("p", 0), slot_of("p", 1), slot_of("p", 2, "from-b")]
    assert await b.get_message("from-a") is None  # nothing of a landed, not even a body
    assert await a.claim("p") == "http://b.test:8734"  # b's lease is live: a is sent there


async def test_an_expired_lease_nobody_took_is_still_safe_to_use(
    node_store: Opener, pg_url: str
) -> None:
    a = await node_store("a")
    assert await a.claim("p") is None
    await _expire(pg_url, "p")
    await append(a, "p", 0)  # the token is unchanged: no one else can have written
    assert await a.claim("p") is None
    assert await _token(pg_url, "p") == 1


async def test_release_and_close_keep_the_fencing_tokens(node_store: Opener, pg_url: str) -> None:
    a, b = await node_store("a"), await node_store("b")
    assert await a.claim("p") is None and await a.claim("q") is None
    await a.release("p")
    assert await b.claim("p") is None
    assert await _token(pg_url, "p") == 2  # a release keeps the row: tokens only grow
    await a.close()
    assert await b.claim("q") is None
    await append(b, "q", 0)
    assert await _token(pg_url, "q") == 2


async def test_membership_and_background_renewal(node_store: Opener, pg_url: str) -> None:
    a = await node_store("a", seconds=0.6)
    b = await node_store("b")
    nodes = await a.nodes()
    assert [(n["url"], n["live"], n["self"]) for n in nodes] == [
        ("http://a.test:8734", True, True),
        ("http://b.test:8734", True, False),
    ]
    assert await a.claim("p") is None
    query = "SELECT expires_at FROM leases WHERE process = $1"
    first = (await _sql(pg_url, query, "p"))[0][0]
    await asyncio.wait_for(a.renewed(a.renewals + 1), 30)  # the background task's next turn
    renewed = (await _sql(pg_url, query, "p"))[0][0]
    assert renewed > first
    assert a.holds("p")
    assert await b.claim("p") == "http://a.test:8734"


async def test_the_node_list_forgets_stopped_and_long_dead_incarnations(
    node_store: Opener, pg_url: str
) -> None:
    a = await node_store("a")
    await _sql(  # an incarnation that died two hours ago, and one silent for a minute
        pg_url,
        "INSERT INTO nodes (owner, url, started_at, heartbeat) VALUES"
        " ('old/1', 'http://old.test', now() - interval '3 hours', now() - interval '2 hours'),"
        " ('recent/1', 'http://recent.test', now() - interval '1 hour',"
        " now() - interval '1 minute')",
    )
    b = await node_store("b")  # its first heartbeat prunes
    assert [n["url"] for n in await b.nodes()] == [
        "http://recent.test",
        "http://a.test:8734",
        "http://b.test:8734",
    ]
    assert await a.claim("p") is None
    await a.close()  # a clean stop: off the list at once, its lease free
    assert [n["url"] for n in await b.nodes()] == ["http://recent.test", "http://b.test:8734"]
    assert await b.claim("p") is None
    assert await _token(pg_url, "p") == 2


async def test_a_store_without_leases_is_not_fenced(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    await store.open()
    try:
        assert store.holds("anything") and await store.claim("anything") is None
        await append(store, "p", 0)
        assert await store.nodes() == []
    finally:
        await store.close()
    with pytest.raises(Exception, match="before open"):
        store.use_leases("x", "http://x")
