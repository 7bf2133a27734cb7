"""A whole node on the PostgreSQL store: over HTTP, through the CLI, across restarts.

The fixtures ``make_node`` and ``live`` here shadow the SQLite ones of
tests/conftest.py, so the scheduler, HTTP and process tests imported at the
bottom run unchanged on PostgreSQL: one suite, both stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import asyncpg
import httpx
import pytest

from aonode import wallet as wallet_mod
from aonode.config import Mode, NodeConfig
from aonode.errors import DataDirLocked
from aonode.http.server import free_port
from aonode.node import Node
from aonode.scheduler.hashchain import verify_chain
from aonode.scheduler.location import register_own
from aonode.scheduler.timestamp import OfflineSource
from aonode.store import open_store
from aonode.store.postgres import PostgresStore
from aonode.wallet import Wallet
from tests.conftest import LiveNode, NodeFactory, serve_live, sign_message, sign_process
from tests.pg_fixture import standalone_server

ANS = {"content-type": "application/ans104"}
LUA = [("Execution-Device", "lua@5.3a")]
Live = Callable[..., Awaitable[LiveNode]]


@pytest.fixture
async def make_node(tmp_path: Path, ed_wallet: Wallet, pg_url: str) -> AsyncIterator[NodeFactory]:
    """Nodes on one fresh PostgreSQL database (per test); each is stopped at the end."""
    nodes: list[Node] = []

    async def factory(
        *,
        mode: Mode = Mode.LOCAL_CONFIRMATION,
        wallets: list[Wallet] | None = None,
        db: Path | None = None,  # the SQLite fixture's file; here all share pg_url
        **changes: object,
    ) -> Node:
        config = replace(  # each node its own data dir: its own node id
            NodeConfig(data_dir=tmp_path / f"node-{len(nodes)}", mode=mode, store=pg_url),
            **changes,  # type: ignore[arg-type]
        )
        node = Node(config, wallets=wallets or [ed_wallet], timestamps=OfflineSource())
        assert isinstance(node.store, PostgresStore)  # chosen by the URL, as `serve` does
        await node.start()
        nodes.append(node)
        return node

    yield factory
    for node in nodes:
        await node.stop()


@pytest.fixture
async def live(
    tmp_path: Path, ed_wallet: Wallet, pg_url: str
) -> AsyncIterator[Callable[..., Awaitable[LiveNode]]]:
    """Nodes on PostgreSQL served over real HTTP on 127.0.0.1."""
    started: list[LiveNode] = []

    async def factory(
        *,
        mode: Mode = Mode.LOCAL_CONFIRMATION,
        wallets: list[Wallet] | None = None,
        **changes: object,
    ) -> LiveNode:
        port = free_port("127.0.0.1")
        data_dir = tmp_path / f"live-{len(started)}"  # its own node id
        config = replace(
            NodeConfig(data_dir=data_dir, port=port, mode=mode, store=pg_url),
            **changes,  # type: ignore[arg-type]
        )
        node = Node(config, wallets=wallets or [ed_wallet], timestamps=OfflineSource())
        ln = await serve_live(node)
        started.append(ln)
        return ln

    yield factory
    for ln in started:
        await ln.close()


async def _post(ln: LiveNode, path: str, raw: bytes) -> int:
    r = await ln.client.post(path, content=raw, headers=ANS)
    assert r.status_code == 200, r.text
    slot: int = r.json()["slot"]
    return slot


async def test_a_node_on_postgres_schedules_computes_and_resumes(
    live: Live, user_wallet: Wallet, pg_url: str
) -> None:
    ln = await live(async_cache=False)  # results are in the store when compute answers
    status = (await ln.client.get("/~scheduler@1.0/status")).json()
    assert status["store"].startswith("postgresql://")
    proc = sign_process(user_wallet, ln.node.address, extra=LUA)
    assert await _post(ln, "/~scheduler@1.0/schedule", proc.item.raw) == 0
    pid = proc.id
    for n, code in enumerate(("X = 10", "X = X * 2", "return X"), start=1):
        m = sign_message(user_wallet, pid, data=code.encode(), action="Eval")
        assert await _post(ln, f"/{pid}/schedule", m.item.raw) == n
    assert (await ln.client.get(f"/{pid}/now/results/data")).text == "20"
    page = (await ln.client.get(f"/{pid}/schedule")).json()
    links = [(a["slot"], a["message"], a["hash-chain"]) for a in page["assignments"]]
    assert [slot for slot, _, _ in links] == [0, 1, 2, 3] and verify_chain(links) is None
    assert (await ln.client.get("/~scheduler@1.0/status")).json()["processes"] == [pid]
    computed = await ln.node.store.get_result(pid, 3)
    assert computed is not None and computed.message == links[3][1]
    await ln.close()

    # A second node on the same database: the chain and the state go on from there.
    again = await live()
    m = sign_message(user_wallet, pid, data=b"return X * 3", action="Eval")
    assert await _post(again, f"/{pid}/schedule", m.item.raw) == 4
    assert (await again.client.get(f"/{pid}/now/results/data")).text == "60"
    page = (await again.client.get(f"/{pid}/schedule")).json()
    links = [(a["slot"], a["message"], a["hash-chain"]) for a in page["assignments"]]
    assert [slot for slot, _, _ in links] == list(range(5)) and verify_chain(links) is None


async def test_acknowledged_means_readable_by_another_connection(
    make_node: NodeFactory, user_wallet: Wallet, pg_url: str
) -> None:
    node = await make_node()
    proc = sign_process(user_wallet, node.address)
    a = await node.schedule(proc)
    other = open_store(pg_url)
    await other.open()
    try:
        stored = await other.by_message(proc.id, proc.id)
        assert stored is not None and stored.assignment.slot == a.slot
    finally:
        await other.close()


async def _aonode(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aonode.ops.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def test_cli_serve_with_a_postgres_store(
    tmp_path: Path, pg_url: str, user_wallet: Wallet
) -> None:
    port = free_port("127.0.0.1")
    proc = await _aonode(
        "serve", "--store", pg_url, "--port", str(port), "--data-dir", str(tmp_path)
    )
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert "aonode listening on" in line, line + (await proc.stdout.read(4000)).decode()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            status = (await client.get("/~scheduler@1.0/status")).json()
            assert status["store"] == pg_url
            spawn = sign_process(user_wallet, status["address"])
            r = await client.post("/~scheduler@1.0/schedule", content=spawn.item.raw, headers=ANS)
            assert r.status_code == 200 and r.json()["slot"] == 0, r.text
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 60)
    store = open_store(pg_url)
    await store.open()
    try:
        assert await store.processes() == [spawn.id]
    finally:
        await store.close()


async def test_cli_serve_with_an_unreachable_database_exits_clearly(tmp_path: Path) -> None:
    port = free_port("127.0.0.1")  # nobody listens there
    url = f"postgresql://aonode@127.0.0.1:{port}/aonode"
    proc = await _aonode("serve", "--store", url, "--port", "0", "--data-dir", str(tmp_path))
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 1, text
    assert f"aonode: {url}: cannot open" in text and "Traceback" not in text


async def test_a_database_outage_gives_503_and_the_node_recovers_by_itself(
    live: Live, user_wallet: Wallet
) -> None:
    with standalone_server() as server:
        ln = await live(store=await server.create_database_async())
        proc = sign_process(user_wallet, ln.node.address)
        assert await _post(ln, "/~scheduler@1.0/schedule", proc.item.raw) == 0
        pid = proc.id
        acked = [sign_message(user_wallet, pid, data=b"before")]
        assert await _post(ln, f"/{pid}/schedule", acked[0].item.raw) == 1
        server.halt()
        during = sign_message(user_wallet, pid, data=b"during")
        r = await ln.client.post(f"/{pid}/schedule", content=during.item.raw, headers=ANS)
        assert r.status_code == 503 and r.headers["retry-after"], r.text
        assert r.json()["error"]["code"] == "store-unavailable"
        r = await ln.client.get(f"/{pid}/schedule")
        assert r.status_code == 503 and r.headers["retry-after"], r.text
        server.resume()
        # No restart of the node: the same request now succeeds, after what was acked.
        assert await _post(ln, f"/{pid}/schedule", during.item.raw) == 2
        page = (await ln.client.get(f"/{pid}/schedule")).json()
        links = [(x["slot"], x["message"], x["hash-chain"]) for x in page["assignments"]]
        assert [x[1] for x in links] == [pid, acked[0].id, during.id]
        assert verify_chain(links) is None
        await ln.close()


# -- several nodes on one database: one owner per process ---------------------------------


async def test_the_owner_serves_others_redirect_and_a_clean_stop_hands_over(
    live: Live, user_wallet: Wallet
) -> None:
    a, b = await live(), await live()
    proc = sign_process(user_wallet, a.node.address)
    assert await _post(a, "/~scheduler@1.0/schedule", proc.item.raw) == 0
    pid = proc.id
    m1 = sign_message(user_wallet, pid, data=b"1")
    r = await b.client.post(f"/{pid}/schedule?via=b", content=m1.item.raw, headers=ANS)
    assert r.status_code == 307, r.text
    assert r.headers["location"] == f"{a.node.url}/{pid}/schedule?via=b"
    assert r.json()["error"]["code"] == "not-owner"
    async with httpx.AsyncClient(follow_redirects=True, timeout=30) as client:
        r = await client.post(f"{b.url}/{pid}/schedule", content=m1.item.raw, headers=ANS)
        assert r.status_code == 200 and r.json()["slot"] == 1, r.text
    nodes = (await b.client.get("/~scheduler@1.0/status")).json()["nodes"]
    assert sorted((n["url"], n["live"], n["self"]) for n in nodes) == sorted(
        [(a.node.url, True, False), (b.node.url, True, True)]
    )
    await a.close()  # a clean stop releases a's leases: b takes over at once
    m2 = sign_message(user_wallet, pid, data=b"2")
    assert await _post(b, f"/{pid}/schedule", m2.item.raw) == 2
    page = (await b.client.get(f"/{pid}/schedule")).json()
    links = [(x["slot"], x["message"], x["hash-chain"]) for x in page["assignments"]]
    assert [x[1] for x in links] == [pid, m1.id, m2.id] and verify_chain(links) is None


async def test_a_node_that_lost_its_lease_has_its_write_refused(
    live: Live, user_wallet: Wallet, pg_url: str
) -> None:
    # Long leases: nothing expires by itself here; the test expires a's lease itself.
    a = await live(store=pg_url + "?lease_seconds=600")
    b = await live(store=pg_url + "?lease_seconds=600")
    proc = sign_process(user_wallet, a.node.address)
    assert await _post(a, "/~scheduler@1.0/schedule", proc.item.raw) == 0
    pid = proc.id
    m1 = sign_message(user_wallet, pid, data=b"1")
    assert await _post(a, f"/{pid}/schedule", m1.item.raw) == 1
    # a freezes (think SIGSTOP) and its lease runs out; b is asked and takes over.
    conn = await asyncpg.connect(pg_url, server_settings={"search_path": "aonode"})
    try:
        await conn.execute("UPDATE leases SET expires_at = now() - interval '1 second'")
    finally:
        await conn.close()
    m2 = sign_message(user_wallet, pid, data=b"2")
    assert await _post(b, f"/{pid}/schedule", m2.item.raw) == 2
    # a wakes up still believing it owns the process: its write is fenced out.
    late = sign_message(user_wallet, pid, data=b"late")
    r = await a.client.post(f"/{pid}/schedule", content=late.item.raw, headers=ANS)
    assert r.status_code == 503 and r.json()["error"]["code"] == "lease-lost", r.text
    assert "retry-after" in r.headers
    # Asked again, a knows it is not the owner any more and sends the client to b.
    r = await a.client.post(f"/{pid}/schedule", content=late.item.raw, headers=ANS)
    assert r.status_code == 307 and r.headers["location"] == f"{b.node.url}/{pid}/schedule"
    page = (await b.client.get(f"/{pid}/schedule")).json()
    links = [(x["slot"], x["message"], x["hash-chain"]) for x in page["assignments"]]
    assert [x[1] for x in links] == [pid, m1.id, m2.id] and verify_chain(links) is None
    assert await b.node.store.get_message(late.id) is None  # nothing of a's landed


async def test_a_frozen_owner_is_taken_over_and_fenced_out(
    live: Live, user_wallet: Wallet, ed_wallet: Wallet, pg_url: str, tmp_path: Path
) -> None:
    """The real thing: the owner is a separate `aonode serve`, frozen with SIGSTOP."""
    store = pg_url + "?lease_seconds=1"
    data = tmp_path / "a"
    data.mkdir()
    wallet_mod.save(ed_wallet, data / "wallet.json")  # both nodes are one scheduler
    port = free_port("127.0.0.1")
    a = await _aonode("serve", "--store", store, "--port", str(port), "--data-dir", str(data))
    a_url = f"http://127.0.0.1:{port}"
    assert a.stdout is not None
    b = await live(store=store)
    try:
        line = (await asyncio.wait_for(a.stdout.readline(), 60)).decode()
        assert "aonode listening on" in line, line
        async with httpx.AsyncClient(timeout=30) as client:
            proc = sign_process(user_wallet, ed_wallet.address)
            r = await client.post(
                f"{a_url}/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS
            )
            assert r.status_code == 200 and r.json()["slot"] == 0, r.text
            pid = proc.id
            a.send_signal(signal.SIGSTOP)
            m = sign_message(user_wallet, pid, data=b"to b")
            for _ in range(600):  # bounded: until a's lease (1 s) has run out
                r = await b.client.post(f"/{pid}/schedule", content=m.item.raw, headers=ANS)
                if r.status_code != 307:
                    break
                assert r.headers["location"].startswith(a_url)
                await asyncio.sleep(0.05)
            assert r.status_code == 200 and r.json()["slot"] == 1, r.text
            a.send_signal(signal.SIGCONT)
            late = sign_message(user_wallet, pid, data=b"late")
            r = await client.post(f"{a_url}/{pid}/schedule", content=late.item.raw, headers=ANS)
            # Refused by the fence (503), or a noticed first and sends the client to b.
            assert (r.status_code, r.json()["error"]["code"]) in (
                (503, "lease-lost"),
                (307, "not-owner"),
            )
            page = (await b.client.get(f"/{pid}/schedule")).json()
            assert [x["message"] for x in page["assignments"]] == [pid, m.id]
    finally:
        with contextlib.suppress(ProcessLookupError):
            a.send_signal(signal.SIGCONT)
            a.send_signal(signal.SIGTERM)
        await asyncio.wait_for(a.wait(), 60)


async def test_nodes_of_one_wallet_starting_at_once_all_register_their_location(
    ed_wallet: Wallet, pg_url: str
) -> None:
    """Each start signs a location record with the next nonce; racing starts must not fail."""
    stores = [open_store(pg_url) for _ in range(3)]
    for store in stores:
        await store.open()
    try:
        urls = [f"http://node{i}.example" for i in range(3)]
        done = await asyncio.gather(
            *(register_own(s, ed_wallet, u) for s, u in zip(stores, urls, strict=True))
        )
        assert sorted(d["nonce"] for d in done) == [0, 1, 2]
        newest = max(done, key=lambda d: d["nonce"])
        found = await stores[0].get_location(ed_wallet.address)
        assert found is not None and found[0].nonce == 2 and found[0].message == newest["id"]
    finally:
        for store in stores:
            await store.close()


# -- the same scheduler, HTTP and process tests as on SQLite -------------------------------
# Imported into this module, they use the PostgreSQL fixtures above.

from tests.http.test_api import (  # noqa: E402
    test_message_store_and_fetch,
    test_schedule_read_back_and_formats,
    test_scheduler_location_records,
)
from tests.process.test_device_http import (  # noqa: E402
    test_eval_x_times_two,
    test_now_dryrun_and_handlers,
    test_patch_messages_update_the_process_state,
)
from tests.scheduler.test_server import (  # noqa: E402
    test_concurrent_reposts_before_assignment_share_one_slot,
    test_process_gets_slot_0_and_message_slot_1,
    test_repost_returns_existing_assignment,
    test_resume_from_latest_after_restart,
    test_second_server_for_same_process_raises,
)

__all__ = [
    "test_concurrent_reposts_before_assignment_share_one_slot",
    "test_eval_x_times_two",
    "test_message_store_and_fetch",
    "test_now_dryrun_and_handlers",
    "test_patch_messages_update_the_process_state",
    "test_process_gets_slot_0_and_message_slot_1",
    "test_repost_returns_existing_assignment",
    "test_resume_from_latest_after_restart",
    "test_schedule_read_back_and_formats",
    "test_scheduler_location_records",
    "test_second_server_for_same_process_raises",
]


async def test_a_node_restarted_after_kill_9_takes_its_own_lease_back_at_once(
    user_wallet: Wallet, pg_url: str, tmp_path: Path
) -> None:
    """With a long lease (600 s) nobody else could take the process for ten minutes;
    the same node (same data directory) restarted after kill -9 serves it at once,
    under a new token, and continues the same schedule."""
    store = pg_url + "?lease_seconds=600"
    data = tmp_path / "node"

    async def start() -> tuple[asyncio.subprocess.Process, str]:
        port = free_port("127.0.0.1")
        proc = await _aonode(
            "serve", "--store", store, "--port", str(port), "--data-dir", str(data)
        )
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert "aonode listening on" in line, line
        return proc, f"http://127.0.0.1:{port}"

    first, url = await start()
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            address = (await client.get("/~meta@1.0/info/address")).text
            proc = sign_process(user_wallet, address)
            r = await client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
            assert r.status_code == 200 and r.json()["slot"] == 0, r.text
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    tokens = await _lease_tokens(pg_url, proc.id)

    second, url = await start()
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            m = sign_message(user_wallet, proc.id, data=b"after the crash")
            r = await client.post(f"/{proc.id}/schedule", content=m.item.raw, headers=ANS)
            assert r.status_code == 200 and r.json()["slot"] == 1, r.text
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 60)
    after = await _lease_tokens(pg_url, proc.id)
    assert after[1] == tokens[1] + 1  # a new incarnation: the old one is fenced out
    assert after[0].split("#")[0] == tokens[0].split("#")[0]  # the same node


async def _lease_tokens(pg_url: str, pid: str) -> tuple[str, int]:
    conn = await asyncpg.connect(pg_url)
    try:
        row = await conn.fetchrow("SELECT owner, token FROM leases WHERE process = $1", pid)
    finally:
        await conn.close()
    assert row is not None
    return str(row[0]), int(row[1])


async def test_two_nodes_on_one_data_dir_exclude_each_other_on_postgres_too(
    tmp_path: Path, ed_wallet: Wallet, pg_url: str
) -> None:
    """The data dir is the node's identity (wallet, node-id): two nodes of one identity
    on a shared database would take each other's leases, so the lock holds here too."""
    config = NodeConfig(data_dir=tmp_path / "d", store=pg_url)
    one = Node(config, wallets=[ed_wallet], timestamps=OfflineSource())
    two = Node(config, wallets=[ed_wallet], timestamps=OfflineSource())
    await one.start()
    try:
        with pytest.raises(DataDirLocked):
            await two.start()
    finally:
        await one.stop()
    await two.start()  # released on stop
    await two.stop()
