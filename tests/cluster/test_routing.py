"""Scheduling across 2 real workers: each process's slots decided by its owner only."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Sequence

import httpx
import orjson
import pytest

from aonode.cluster.channel import Link
from aonode.cluster.routing import (
    assignment_from,
    decode_schedule,
    encode_assignment,
    encode_schedule,
)
from aonode.cluster.shard import shard_of
from aonode.cluster.worker import socket_path
from aonode.codec import ans104
from aonode.message import Message
from aonode.scheduler.assignment import Assignment, Header, commit
from aonode.wallet import Wallet
from tests.cluster.conftest import Cluster
from tests.conftest import sign_message, sign_process

pytestmark = pytest.mark.crash
ANS = {"content-type": "application/ans104"}


def test_a_forwarded_schedule_call_carries_the_message_as_it_arrived(
    user_wallet: Wallet,
) -> None:
    m = sign_message(user_wallet, "A" * 43, data=b"payload", action="Ping")
    message, opts = decode_schedule(encode_schedule(m, "compute", None, "p" * 43))
    assert message.id == m.id and message.item.raw == m.item.raw and message.keys == m.keys
    assert opts == {"path": "compute", "target": None, "assign-to": "p" * 43, "codec": "ans104"}


@pytest.mark.parametrize("target", [b"", b"\x07" * 32])
@pytest.mark.parametrize("anchor", [b"", b"\x09" * 32])
def test_the_owner_rebuilds_the_item_the_landing_worker_parsed(
    user_wallet: Wallet, ed_wallet: Wallet, target: bytes, anchor: bytes
) -> None:
    for wallet in (user_wallet, ed_wallet):
        tags = [("Action", "Ping"), ("Ünicode", "värde"), ("Empty", "")]
        item = ans104.sign(wallet, data=b"d" * 70, tags=tags, target=target, anchor=anchor)
        m = Message.from_item(ans104.parse(item.raw))
        got, _ = decode_schedule(encode_schedule(m, "compute", None, None))
        assert got.item == m.item and got.keys == m.keys and got.id == m.id
        for name in ("signature", "owner", "target", "anchor", "tags", "data"):
            assert getattr(got.item, name) == getattr(m.item, name), name
        assert got.item.verify()


def test_the_owners_assignment_arrives_whole(user_wallet: Wallet, ed_wallet: Wallet) -> None:
    m = sign_message(user_wallet, "A" * 43, data=b"x" * 100)
    header = Header("A" * 43, 3, 10, "h", 11, 12, "c", "compute", m.id)
    sent = Assignment(header, commit(header, [ed_wallet, user_wallet]), m)
    got = assignment_from(encode_assignment(sent), m)
    assert got == sent and got.document == sent.document
    assert got.json_bytes() == sent.json_bytes() and got.id == sent.id


async def post(url: str, path: str, message: Message) -> httpx.Response:
    # a fresh connection each time: SO_REUSEPORT picks the worker per connection
    async with httpx.AsyncClient(timeout=60) as client:
        return await client.post(f"{url}{path}", content=message.item.raw, headers=ANS)


async def actors(cluster: Cluster, index: int) -> set[str]:
    assert cluster.supervisor.sock_dir is not None
    link = Link(socket_path(cluster.supervisor.sock_dir, index))
    try:
        info = orjson.loads(await link.call("info"))
    finally:
        await link.close()
    return set(info["actors"])


def one_process_per_shard(
    user_wallet: Wallet, scheduler: str, extra: Sequence[tuple[str, str]] = ()
) -> list[Message]:
    found: dict[int, Message] = {}
    while len(found) < 2:
        proc = sign_process(user_wallet, scheduler, data=os.urandom(8), extra=extra)
        found.setdefault(shard_of(proc.id, 2), proc)
    return [found[0], found[1]]


async def test_every_process_is_scheduled_by_its_owner_alone(
    cluster: Cluster, user_wallet: Wallet
) -> None:
    url, address = cluster.url, cluster.supervisor.address
    procs = one_process_per_shard(user_wallet, address)
    for proc in procs:
        r = await post(url, "/~scheduler@1.0/schedule", proc)
        assert r.status_code == 200, r.text
        assert r.json()["slot"] == 0
    per_process = 12  # 24 fresh connections: both workers get some (all on one: 2⁻²³)
    sent = {
        p.id: [sign_message(user_wallet, p.id, action=f"M{k}") for k in range(per_process)]
        for p in procs
    }
    replies = await asyncio.gather(
        *(post(url, f"/{pid}/schedule", m) for pid, ms in sent.items() for m in ms)
    )
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    for proc in procs:
        slots = sorted(r.json()["slot"] for r in replies if r.headers["process"] == proc.id)
        assert slots == list(range(1, per_process + 1))  # gap-free, each once
        # the schedule read back (from the shared store) wherever it lands
        async with httpx.AsyncClient(timeout=60) as client:
            page = (await client.get(f"{url}/{proc.id}/schedule")).json()
            slot = (await client.get(f"{url}/{proc.id}~process@1.0/slot")).json()
        assert [a["slot"] for a in page["assignments"]] == list(range(per_process + 1))
        assert slot["current"] == per_process
    # one scheduler actor per process in the whole cluster: on its owner
    assert await actors(cluster, 0) == {procs[0].id}
    assert await actors(cluster, 1) == {procs[1].id}


async def test_a_reposted_message_keeps_its_slot_across_workers(
    cluster: Cluster, user_wallet: Wallet
) -> None:
    url = cluster.url
    procs = one_process_per_shard(user_wallet, cluster.supervisor.address)
    for proc in procs:
        assert (await post(url, "/~scheduler@1.0/schedule", proc)).status_code == 200
        m = sign_message(user_wallet, proc.id)
        first = [(await post(url, f"/{proc.id}/schedule", m)).json() for _ in range(6)]
        assert {a["slot"] for a in first} == {1}
        assert {a["id"] for a in first} == {first[0]["id"]}


async def test_errors_from_the_owner_reach_the_client_unchanged(
    cluster: Cluster, user_wallet: Wallet
) -> None:
    # an unknown process: 404 unknown-process whichever worker decides
    for k in range(8):
        pid = sign_process(user_wallet, cluster.supervisor.address, data=bytes([k])).id
        r = await post(cluster.url, f"/{pid}/schedule", sign_message(user_wallet, pid))
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "unknown-process"


async def test_kill_9_of_a_worker_loses_no_acknowledged_assignment(
    cluster: Cluster, user_wallet: Wallet
) -> None:
    url, sup = cluster.url, cluster.supervisor
    procs = one_process_per_shard(user_wallet, sup.address)
    for proc in procs:
        assert (await post(url, "/~scheduler@1.0/schedule", proc)).status_code == 200
    rounds = int(os.environ.get("AONODE_CRASH_ROUNDS", "2"))
    acked: dict[str, int] = {}
    for victim in [k % 2 for k in range(rounds)]:
        mark = len(cluster.events.seen)
        batch = [sign_message(user_wallet, p.id) for p in procs for _ in range(15)]
        sends = [asyncio.ensure_future(post(url, f"/{m.target}/schedule", m)) for m in batch]
        # kill once the first answer is back: the rest are in flight, on both workers
        await asyncio.wait(sends, return_when=asyncio.FIRST_COMPLETED)
        pid = sup.pids[victim]
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        answers = await asyncio.gather(*sends, return_exceptions=True)
        for m, done in zip(batch, answers, strict=True):
            if isinstance(done, BaseException):  # cut off: nothing was promised
                continue
            if done.status_code == 200:
                acked[m.id] = done.json()["slot"]
            else:  # refused while the owner was down: 503, retry
                assert done.status_code >= 500, done.text
        await cluster.events.next("ready", victim, mark)
    assert acked  # the other worker kept answering
    async with httpx.AsyncClient(timeout=60) as client:
        stored: dict[str, int] = {}
        for proc in procs:
            page = (await client.get(f"{url}/{proc.id}/schedule")).json()
            slots = [a["slot"] for a in page["assignments"]]
            assert slots == list(range(len(slots)))  # gap-free after the kills
            stored.update({a["message"]: a["slot"] for a in page["assignments"]})
    assert {mid: stored.get(mid) for mid in acked} == acked
