"""The legacy MU's crank, and what the native ``/schedule`` does instead.

A message posted on the legacy surface (``POST /``, as aoconnect's legacy
mode sends it) is computed and its outbox delivered, recursively, by a
durable async push job.  A message posted to the native ``/schedule`` is
only scheduled (HyperBEAM's ``~scheduler@1.0``): nothing is delivered until
someone pushes its slot.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from aonode.codec.wire import MessageRecord
from aonode.config import Mode, NodeConfig
from aonode.http.server import free_port
from aonode.node import Node
from aonode.scheduler.timestamp import OfflineSource
from aonode.store.base import AssignmentRecord
from aonode.store.sqlite import SQLiteStore
from aonode.wallet import Wallet
from tests.conftest import LiveNode, serve_live, sign_message, sign_process
from tests.push_helpers import deliveries, schedule_of

ANS = {"content-type": "application/ans104"}
LUA = [("Execution-Device", "lua@5.3a")]
Live = Callable[..., Awaitable[LiveNode]]

# B answers a Ping with a Pong to whoever sent it; A counts the Pongs it gets
PONG = (
    "Handlers.add('Ping', { Action = 'Ping' }, function(m)\n"
    "  Send({ Target = m.From, Action = 'Pong' })\n"
    "end)"
)
COUNT = "Pongs = 0\nHandlers.add('Pong', { Action = 'Pong' }, function(m) Pongs = Pongs + 1 end)"


async def spawn(ln: LiveNode, user: Wallet) -> str:
    # ed25519 signatures are deterministic: distinct data makes distinct processes
    proc = sign_process(user, ln.node.address, data=os.urandom(8).hex().encode(), extra=LUA)
    r = await ln.client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    return proc.id


async def pongs(ln: LiveNode, user: Wallet, a: str) -> str:
    """A's Pong count, read by a dry run."""
    m = sign_message(user, a, data=b"return Pongs", action="Eval")
    r = await ln.client.post(f"/dry-run?process-id={a}", content=m.item.raw)
    assert r.status_code == 200, r.text
    return str(r.json()["Output"]["data"])


async def setup(ln: LiveNode, user: Wallet) -> tuple[str, str]:
    """Two processes with their handlers in place (via ``/push``: nothing to deliver)."""
    a, b = await spawn(ln, user), await spawn(ln, user)
    for pid, code in ((a, COUNT), (b, PONG)):
        m = sign_message(user, pid, data=code.encode(), action="Eval")
        r = await ln.client.post(f"/{pid}~process@1.0/push", content=m.item.raw, headers=ANS)
        assert r.status_code == 200, r.text
    return a, b


async def test_a_message_posted_on_the_legacy_surface_is_cranked(
    live: Live, user_wallet: Wallet
) -> None:
    ln = await live()
    a, b = await setup(ln, user_wallet)
    ping = sign_message(
        user_wallet, a, data=f"Send({{ Target = '{b}', Action = 'Ping' }})".encode(), action="Eval"
    )
    r = await ln.client.post("/", content=ping.item.raw)  # aoconnect legacy's message
    assert r.status_code == 200, r.text
    assert r.json()["id"] == ping.id
    # the job is durable before the answer (the walk may already have finished)
    await ln.node.pusher.idle()
    assert await ln.node.store.records("push-job") == []
    ping_slot = (await ln.client.get(f"/{a}/slot")).json()["current"] - 1
    assert deliveries(await schedule_of(ln.client, b)) == [(a, str(ping_slot), "1")]
    pong_slot = (await ln.client.get(f"/{b}/slot")).json()["current"]
    assert deliveries(await schedule_of(ln.client, a)) == [(b, str(pong_slot), "1")]
    assert await pongs(ln, user_wallet, a) == "1"
    # a re-post of the same message keeps its slot and delivers nothing twice
    r = await ln.client.post("/", content=ping.item.raw)
    assert r.status_code == 200, r.text
    await ln.node.pusher.idle()
    assert len(deliveries(await schedule_of(ln.client, b))) == 1
    assert len(deliveries(await schedule_of(ln.client, a))) == 1


async def test_a_legacy_spawn_and_assignment_are_cranked(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    a, b = await setup(ln, user_wallet)
    # a spawn whose boot sends: the MU pulls a new process's first result and pushes it
    boot = f"Send({{ Target = '{b}', Action = 'Ping' }})"
    proc = sign_process(
        user_wallet, ln.node.address, data=boot.encode(), extra=[*LUA, ("On-Boot", "Data")]
    )
    r = await ln.client.post("/", content=proc.item.raw)
    assert r.status_code == 200, r.text
    await ln.node.pusher.idle()
    assert (proc.id, "0", "1") in deliveries(await schedule_of(ln.client, b))
    # assigning a stored message to A cranks A's new slot (A accepts assignments, as aos 2
    # refuses them unless the process made them assignable)
    allow = sign_message(
        user_wallet, a, data=b"ao.addAssignable('any', function() return true end)", action="Eval"
    )
    r = await ln.client.post(f"/{a}~process@1.0/push", content=allow.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    ping = sign_message(
        user_wallet, b, data=f"Send({{ Target = '{b}', Action = 'Ping' }})".encode(), action="Eval"
    )
    assert (
        await ln.client.post("/~message@1.0/store", content=ping.item.raw, headers=ANS)
    ).status_code == 200
    r = await ln.client.post("/", params={"process-id": a, "assign": ping.id})
    assert r.status_code == 200, r.text
    await ln.node.pusher.idle()
    assert await pongs(ln, user_wallet, a) == "1"  # A pinged B, B ponged A


async def test_native_schedule_delivers_nothing_until_pushed(
    live: Live, user_wallet: Wallet
) -> None:
    ln = await live()
    a, b = await setup(ln, user_wallet)
    ping = sign_message(
        user_wallet, a, data=f"Send({{ Target = '{b}', Action = 'Ping' }})".encode(), action="Eval"
    )
    r = await ln.client.post(f"/{a}~process@1.0/schedule", content=ping.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    slot = r.json()["slot"]
    computed = (await ln.client.get(f"/{a}/compute", params={"slot": slot})).json()
    assert [m["Target"] for m in computed["results"]["outbox"]] == [b]  # it would send...
    assert ln.node.pusher.pending() == 0 and await ln.node.store.records("push-job") == []
    assert deliveries(await schedule_of(ln.client, b)) == []  # ...but nothing is delivered
    r = await ln.client.post(f"/{a}~process@1.0/push", params={"slot": slot})
    assert r.status_code == 200, r.text
    assert deliveries(await schedule_of(ln.client, b)) == [(a, str(slot), "1")]
    assert await pongs(ln, user_wallet, a) == "1"


class _GatedStore(SQLiteStore):
    """A real SQLite store whose appends wait while ``gate`` is closed."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = asyncio.Event()
        self.gate.set()

    async def append(self, assignment: AssignmentRecord, body: MessageRecord) -> None:
        await self.gate.wait()
        await super().append(assignment, body)


async def test_an_aggressive_node_pushes_a_slot_that_is_not_durable_yet(
    tmp_path: Path, ed_wallet: Wallet, user_wallet: Wallet
) -> None:
    """Aggressive mode answers a slot once signed, so a push (sync, or the legacy
    crank's job) can reach it before it is stored: the walk waits for it to be
    durable instead of failing with slot-not-assigned and dropping the outbox."""
    store = _GatedStore(tmp_path / "aonode.sqlite3")
    config = NodeConfig(data_dir=tmp_path, port=free_port("127.0.0.1"), mode=Mode.AGGRESSIVE)
    node = Node(config, wallets=[ed_wallet], store=store, timestamps=OfflineSource())
    ln = await serve_live(node)
    try:
        a, b = await setup(ln, user_wallet)
        waiting = asyncio.Event()
        wait_durable = node.wait_durable

        async def observed(pid: str, slot: int) -> None:  # the walk reached the wait
            waiting.set()
            await wait_durable(pid, slot)

        node.wait_durable = observed  # type: ignore[method-assign]
        store.gate.clear()  # from here, slots are signed and answered, not stored
        code = f"Send({{ Target = '{b}', Action = 'Ping' }})"
        ping = sign_message(user_wallet, a, data=code.encode(), action="Eval")
        post = asyncio.create_task(
            ln.client.post(f"/{a}~process@1.0/push", content=ping.item.raw, headers=ANS)
        )
        reached = asyncio.create_task(waiting.wait())
        await asyncio.wait({post, reached}, return_when=asyncio.FIRST_COMPLETED)
        store.gate.set()
        r = await post
        reached.cancel()
        assert r.status_code == 200, r.text  # before the fix: 404 slot-not-assigned
        assert await pongs(ln, user_wallet, a) == "1"  # A pinged B, B ponged A
    finally:
        await ln.close()
