"""``serve --workers 2`` on PostgreSQL: every worker is an incarnation of one node.

Each worker opens the shared database with its own lease owner
(``<address>/<node-id>#<incarnation>``, the node id the cluster's data
directory's), so the rule "an earlier incarnation of the same node may be
taken over at once" holds between siblings too: only the shard routing keeps a
worker from claiming (and fencing out) a process its sibling serves.  These
tests hold the cluster to it through the leases table itself: a process's
token stays 1 while its owner lives (nobody else ever claimed it), a worker
killed with SIGKILL is replaced by one that takes back exactly its own
processes at once (a 30 s lease that nobody waits for) and nothing else, and
another node on the same database is sent (307) to the cluster's advertised URL.
"""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from aonode import wallet as wallet_mod
from aonode.cluster.shard import shard_of
from aonode.codec import ans104
from aonode.config import NodeConfig
from aonode.http.server import free_port
from aonode.message import Message
from aonode.node import Node
from aonode.quotas import OFF
from aonode.scheduler.hashchain import verify_chain
from aonode.scheduler.timestamp import OfflineSource
from aonode.store.conformance import append, schedule, slot_of
from aonode.store.pg_lease import LeaseBook
from aonode.store.postgres import PostgresStore
from aonode.wallet import Wallet
from tests.cluster.conftest import Cluster, run_cluster
from tests.cluster.test_routing import one_process_per_shard
from tests.conftest import serve_live, sign_message, sign_process
from tests.pg_fixture import pg_server, pg_url

__all__ = ["pg_server", "pg_url"]  # fixtures

pytestmark = pytest.mark.crash
ANS = {"content-type": "application/ans104"}
WORKERS = 2
PER_SHARD = 4
LEASE_SECONDS = 30  # waiting out a lease would take this long: nothing here may need to
LUA = [("Execution-Device", "lua@5.3a")]
TOKEN = "operator-secret"
WALKS = 4
RETRIES = 3  # 503s allowed to a post while a restarted worker's channel reconnects


@dataclass(frozen=True)
class Lease:
    owner: str
    token: int
    live: bool


async def post(url: str, message: Message) -> httpx.Response:
    # a fresh connection per request: SO_REUSEPORT spreads them over both workers
    path = "/~scheduler@1.0/schedule" if message.is_process else f"/{message.target}/schedule"
    async with httpx.AsyncClient(timeout=60) as client:
        return await client.post(url + path, content=message.item.raw, headers=ANS)


async def leases(db: str) -> dict[str, Lease]:
    conn = await asyncpg.connect(db)
    try:
        rows = await conn.fetch("SELECT process, owner, token, expires_at > now() FROM leases")
    finally:
        await conn.close()
    return {r[0]: Lease(r[1], r[2], r[3]) for r in rows}


async def check_schedules(db: str, pids: list[str], acked: dict[str, tuple[str, int]]) -> None:
    """Every schedule gap-free and chain-valid; every acknowledged message at its slot."""
    conn = await asyncpg.connect(db)
    try:
        stored: dict[str, tuple[str, int]] = {}
        for pid in pids:
            rows = await conn.fetch(
                "SELECT slot, message, hash_chain FROM assignments WHERE process = $1"
                " ORDER BY slot",
                pid,
            )
            links = [(r[0], r[1], r[2]) for r in rows]
            assert [s for s, _, _ in links] == list(range(len(links))), pid
            assert links[0][1] == pid and verify_chain(links) is None, pid
            stored.update({m: (pid, s) for s, m, _ in links})
    finally:
        await conn.close()
    assert {m: stored.get(m) for m in acked} == acked


async def send(
    url: str, messages: list[Message], acked: dict[str, tuple[str, int]]
) -> list[httpx.Response | BaseException]:
    answers = await asyncio.gather(*(post(url, m) for m in messages), return_exceptions=True)
    for m, r in zip(messages, answers, strict=True):
        if isinstance(r, httpx.Response) and r.status_code == 200:
            acked[m.id] = (m.target or m.id, r.json()["slot"])
    return answers


def processes(wallet: Wallet, scheduler: str) -> dict[int, list[Message]]:
    """``PER_SHARD`` processes owned by each worker."""
    shards: dict[int, list[Message]] = {i: [] for i in range(WORKERS)}
    k = 0
    while any(len(ps) < PER_SHARD for ps in shards.values()):
        p = sign_process(wallet, scheduler, data=f"pg-{k}".encode())
        k += 1
        if len(shards[shard_of(p.id, WORKERS)]) < PER_SHARD:
            shards[shard_of(p.id, WORKERS)].append(p)
    return shards


async def test_a_postgres_cluster_keeps_one_owner_per_process_through_a_worker_kill(
    pg_url: str, tmp_path: Path, user_wallet: Wallet
) -> None:
    db = pg_url + f"?lease_seconds={LEASE_SECONDS}"
    port = free_port("127.0.0.1")
    advertised = f"http://127.0.0.1:{port}"
    config = NodeConfig(
        host="127.0.0.1",
        port=port,
        data_dir=tmp_path / "cluster",
        store=db,
        advertise_url=advertised,
        quota_messages=OFF,
        quota_spawns=OFF,
    )
    async with run_cluster(config, workers=WORKERS) as cluster:
        assert cluster.url == advertised
        await _one_owner_each(cluster, pg_url, user_wallet)

    # (after the clean stop) every lease was released by the worker that held it
    assert not any(lease.live for lease in (await leases(pg_url)).values())


async def _one_owner_each(cluster: Cluster, pg_url: str, user_wallet: Wallet) -> None:
    url, sup = cluster.url, cluster.supervisor
    node_id = (cluster.data_dir / "node-id").read_text().strip()
    shards = processes(user_wallet, sup.address)
    pids = {i: [p.id for p in ps] for i, ps in shards.items()}
    everyone = [p for ps in pids.values() for p in ps]
    acked: dict[str, tuple[str, int]] = {}

    # (a) spawns and messages at once, landing on both workers
    spawns = [p for ps in shards.values() for p in ps]
    assert all(
        isinstance(r, httpx.Response) and r.status_code == 200
        for r in await send(url, spawns, acked)
    )
    batch = [sign_message(user_wallet, pid) for pid in everyone for _ in range(6)]
    answers = await send(url, batch, acked)
    assert all(isinstance(r, httpx.Response) and r.status_code == 200 for r in answers), [
        r if isinstance(r, BaseException) else r.text for r in answers
    ]
    await check_schedules(pg_url, everyone, acked)
    held = await leases(pg_url)
    assert set(held) == set(everyone)
    owners = {i: {held[p].owner for p in ps} for i, ps in pids.items()}
    assert all(len(o) == 1 for o in owners.values()), owners  # one incarnation per shard
    assert owners[0] != owners[1]  # ... each its own worker
    for lease in held.values():
        node, _, incarnation = lease.owner.partition("#")
        assert node == f"{sup.address}/{node_id}" and incarnation  # one node, many incarnations
        assert lease.live and lease.token == 1  # claimed once: no sibling ever took it

    # (b) kill -9 worker 1 while messages for every process are in flight
    victim, survivor = 1, 0
    mark = len(cluster.events.seen)
    batch = [sign_message(user_wallet, pid) for pid in everyone for _ in range(8)]
    sends = [asyncio.ensure_future(post(url, m)) for m in batch]
    # kill once the first answer is back: the rest are in flight, on both workers
    await asyncio.wait(sends, return_when=asyncio.FIRST_COMPLETED)
    pid = sup.pids[victim]
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    answers = await asyncio.gather(*sends, return_exceptions=True)
    for m, r in zip(batch, answers, strict=True):
        if isinstance(r, BaseException):  # cut off: nothing was promised
            continue
        if r.status_code == 200:
            acked[m.id] = (m.target or "", r.json()["slot"])
        else:
            assert r.status_code == 503, r.text  # refused while its owner was down: retry
    await cluster.events.next("ready", victim, mark)

    # the new worker 1 serves its processes at once: no wait for the 30 s lease
    for p in pids[victim] + pids[survivor]:
        for _ in range(RETRIES + 1):
            m = sign_message(user_wallet, p, data=b"after the kill")
            answer = await post(url, m)
            if answer.status_code != 503:
                break
        assert answer.status_code == 200, answer.text
        acked[m.id] = (p, answer.json()["slot"])
    after = await leases(pg_url)
    (reborn,) = {after[p].owner for p in pids[victim]}
    assert reborn not in owners[victim] and reborn.partition("#")[0] == f"{sup.address}/{node_id}"
    assert all(after[p].token == 2 for p in pids[victim])  # taken over once, from itself
    assert {after[p] for p in pids[survivor]} == {held[p] for p in pids[survivor]}  # untouched
    await check_schedules(pg_url, everyone, acked)

    # (d) a clean stop of one worker (SIGTERM; the supervisor starts it again) expires its
    # own leases only: its sibling keeps serving under the same token
    mark = len(cluster.events.seen)
    pid = sup.pids[survivor]
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    await cluster.events.next("ready", survivor, mark)
    stopped = await leases(pg_url)
    assert not any(stopped[p].live for p in pids[survivor])  # released at its stop
    assert {stopped[p] for p in pids[victim]} == {after[p] for p in pids[victim]}
    for p in pids[survivor]:
        for _ in range(RETRIES + 1):
            m = sign_message(user_wallet, p, data=b"after the stop")
            answer = await post(url, m)
            if answer.status_code != 503:
                break
        assert answer.status_code == 200, answer.text
        acked[m.id] = (p, answer.json()["slot"])
    after = await leases(pg_url)
    assert all(after[p].token == 2 and after[p].live for p in pids[survivor])
    await check_schedules(pg_url, everyone, acked)

    # (c) another node on the database (its own data dir, the same wallet) is sent to us
    wallet = wallet_mod.load(cluster.data_dir / "wallet.json")
    other = NodeConfig(
        host="127.0.0.1",
        port=free_port("127.0.0.1"),
        data_dir=cluster.data_dir.parent / "other",
        store=pg_url + f"?lease_seconds={LEASE_SECONDS}",
    )
    live = await serve_live(Node(other, wallets=[wallet], timestamps=OfflineSource()))
    try:
        for p in everyone:
            m = sign_message(user_wallet, p)
            r = await live.client.post(f"/{p}/schedule", content=m.item.raw, headers=ANS)
            assert r.status_code == 307, r.text
            assert r.headers["location"] == f"{url}/{p}/schedule"  # the advertised URL
    finally:
        await live.close()
    assert await leases(pg_url) == after  # asking changed no lease


async def test_push_cron_and_reads_never_move_a_lease_between_workers(
    pg_url: str, tmp_path: Path, user_wallet: Wallet
) -> None:
    """The paths that reach a process from a worker that does not own it (a push walk,
    worker 0's cron firing for worker 1's process, status and dashboard reads) leave
    every lease with its owner worker, claimed once."""
    config = NodeConfig(
        host="127.0.0.1",
        port=0,
        data_dir=tmp_path / "cluster",
        store=pg_url + f"?lease_seconds={LEASE_SECONDS}",
        operator_token=TOKEN,
    )
    async with run_cluster(config, workers=WORKERS) as cluster:
        url = cluster.url
        procs = one_process_per_shard(user_wallet, cluster.supervisor.address, extra=LUA)
        for proc in procs:
            assert (await post(url, proc)).status_code == 200
        # each walk crosses to the other worker; the worker a walk runs on (where its push
        # landed) is the kernel's pick, so several walks each way reach both cases
        for sender, receiver in [procs, procs[::-1]] * WALKS:
            code = f'Send({{Target = "{receiver.id}", Action = "Hello", Data = "hi"}})'
            m = sign_message(user_wallet, sender.id, data=code.encode(), action="Eval")
            async with httpx.AsyncClient(timeout=60) as client:
                r = await client.post(
                    f"{url}/{sender.id}~process@1.0/push", content=m.item.raw, headers=ANS
                )
            assert r.status_code == 200, r.text
        target = procs[1]  # worker 1's: worker 0's timer fires it through the routing
        tick = ans104.sign(
            user_wallet,
            data=b"tick",
            tags=[("cron-path", f"/{target.id}~process@1.0/schedule"), ("Action", "Tick")],
            anchor=os.urandom(32),
        )
        async with httpx.AsyncClient(timeout=60) as client:
            r = await client.post(f"{url}/~cron@1.0/once", content=tick.raw, headers=ANS)
            assert r.status_code == 200, r.text
            for _ in range(1200):  # polling another OS process: no event to wait on
                page = (await client.get(f"{url}/{target.id}/schedule")).json()
                if "Tick" in [_action(a) for a in page["assignments"]]:
                    break
                await asyncio.sleep(0.05)
        assert [_action(a) for a in page["assignments"]] == [None] + ["Hello", "Eval"] * WALKS + [
            "Tick"
        ]
        for _ in range(4):  # fresh connections: both workers answer
            async with httpx.AsyncClient(timeout=60) as client:
                status = await client.get(f"{url}/~scheduler@1.0/status")
                board = await client.get(f"{url}/~dashboard/state")
            assert status.status_code == 200 and board.status_code == 200, board.text
        held = await leases(pg_url)
        assert set(held) == {p.id for p in procs}
        assert held[procs[0].id].owner != held[procs[1].id].owner
        assert all(lease.live and lease.token == 1 for lease in held.values()), held


def _action(assignment: dict[str, object]) -> str | None:
    body = assignment["body"]
    assert isinstance(body, dict)
    tags = {t["name"]: t["value"] for t in body["tags"]}
    return tags.get("Action")


async def test_sibling_incarnations_release_and_renew_only_their_own_leases(pg_url: str) -> None:
    """Two workers' stores: one node id, two incarnations, one advertised URL.

    Release and renewal match the owner, not just the node id or the token, so
    a worker's stop or renewal never touches what its sibling holds, even when
    its own book (wrongly) lists the sibling's process with the same token.
    """
    url = "http://127.0.0.1:8734"
    w0, w1 = PostgresStore(pg_url), PostgresStore(pg_url)
    w0.use_leases("addr/node-id#w0", url, LEASE_SECONDS)
    w1.use_leases("addr/node-id#w1", url, LEASE_SECONDS)
    await w0.open()
    await w1.open()
    try:
        assert await w0.claim("p") is None and await w1.claim("q") is None
        await append(w0, "p", 0)
        await append(w1, "q", 0)
        before = await leases(pg_url)
        assert (before["p"].owner, before["p"].token) == ("addr/node-id#w0", 1)
        assert (before["q"].owner, before["q"].token) == ("addr/node-id#w1", 1)
        conn = await asyncpg.connect(pg_url, server_settings={"search_path": "aonode"})
        try:
            confused = LeaseBook("addr/node-id#w1", url, LEASE_SECONDS)
            confused.held = {"p": 1, "q": 1}
            assert await confused.renew(conn) == ["p"]  # p is not w1's: dropped, not renewed
            await confused.release(conn, ["p"])
        finally:
            await conn.close()
        assert (await leases(pg_url))["p"] == before["p"]
        await w1.close()  # a clean stop of w1 releases q alone
        after = await leases(pg_url)
        assert after["p"] == before["p"] and not after["q"].live
        await append(w0, "p", 1)  # w0's fence still passes
        assert await schedule(w0, "p") == [slot_of("p", 0), slot_of("p", 1)]
    finally:
        await w0.close()
        await w1.close()  # a second close just waits for the first
