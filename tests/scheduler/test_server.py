"""Seed 001's dev_scheduler_server tests, ported, plus the actor's own rules."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from aonode.codec.b64 import b64url_decode, b64url_encode
from aonode.config import Mode
from aonode.errors import AlreadyRunning, Expired, NotFound, NotOurProcess, Overloaded
from aonode.scheduler.assignment import check_commitment
from aonode.scheduler.hashchain import next_link, verify_chain
from aonode.scheduler.server import SchedulerServer, ServerOptions
from aonode.scheduler.timestamp import OfflineSource
from aonode.store.sqlite import SQLiteStore
from aonode.wallet import Wallet
from tests.conftest import NodeFactory, sign_message, sign_process


async def test_new_process_starts_at_minus_one(make_node: NodeFactory, ed_wallet: Wallet) -> None:
    node = await make_node()
    proc = sign_process(ed_wallet, node.address)
    server = await node.registry.find_or_start(proc)
    assert server.info()["current"] == -1
    assert server.running


async def test_process_gets_slot_0_and_message_slot_1(
    make_node: NodeFactory, ed_wallet: Wallet, user_wallet: Wallet
) -> None:
    node = await make_node()
    proc = sign_process(user_wallet, node.address)
    a0 = await node.schedule(proc)
    assert a0.slot == 0
    msg = sign_message(user_wallet, proc.id, action="Test")
    a1 = await node.schedule(msg)
    assert a1.slot == 1
    doc = a1.to_json()
    assert doc["hash-chain"] == b64url_encode(
        next_link(next_link(b"", b64url_decode(proc.id)), b64url_decode(msg.id))
    )
    assert doc["body"]["signature"]  # the body is the signed message itself
    assert doc["message"] == msg.id and doc["process"] == proc.id
    for key in (
        "type",
        "data-protocol",
        "variant",
        "epoch",
        "block-height",
        "block-hash",
        "block-timestamp",
        "timestamp",
        "path",
        "commitments",
        "id",
    ):
        assert key in doc
    assert doc["type"] == "Assignment" and doc["variant"] == "ao.N.1" and doc["epoch"] == "0"


async def test_five_messages_aggressive_get_sequential_slots(
    make_node: NodeFactory, user_wallet: Wallet
) -> None:
    node = await make_node(mode=Mode.AGGRESSIVE)
    proc = sign_process(user_wallet, node.address)
    server = await node.registry.find_or_start(proc)
    slots = [
        (await server.schedule(sign_message(user_wallet, proc.id, data=b"test"))).slot
        for _ in range(5)
    ]
    assert slots == [0, 1, 2, 3, 4]


async def test_info_has_current_chain_mode(make_node: NodeFactory, user_wallet: Wallet) -> None:
    node = await make_node()
    proc = sign_process(user_wallet, node.address)
    await node.schedule(proc)
    info = node.registry.find(proc.id).info()  # type: ignore[union-attr]
    assert info["current"] == 0
    assert info["hash_chain"] == b64url_encode(next_link(b"", b64url_decode(proc.id)))
    assert info["mode"] == "local_confirmation"


async def test_stop_ends_the_actor(make_node: NodeFactory, user_wallet: Wallet) -> None:
    node = await make_node()
    proc = sign_process(user_wallet, node.address)
    server = await node.registry.find_or_start(proc)
    assert server.running
    await node.registry.stop(proc.id)
    assert not server.running
    assert node.registry.find(proc.id) is None


async def test_second_server_for_same_process_raises(
    make_node: NodeFactory, user_wallet: Wallet
) -> None:
    node = await make_node()
    proc = sign_process(user_wallet, node.address)
    first = await node.registry.start(proc)
    with pytest.raises(AlreadyRunning):
        await node.registry.start(proc)
    assert node.registry.find(proc.id) is first
    # concurrent find_or_start calls share one server
    servers = await asyncio.gather(*(node.registry.find_or_start(proc) for _ in range(10)))
    assert all(s is first for s in servers)


async def test_new_proc_three_messages_current_is_2(
    make_node: NodeFactory, user_wallet: Wallet
) -> None:
    node = await make_node()
    proc = sign_process(user_wallet, node.address)
    server = await node.registry.find_or_start(proc)
    for i in range(3):
        await server.schedule(sign_message(user_wallet, proc.id, data=str(i).encode()))
    assert server.info()["current"] == 2


async def test_resume_from_latest_after_restart(
    tmp_path, make_node: NodeFactory, user_wallet: Wallet
) -> None:
    node = await make_node()
    proc = sign_process(user_wallet, node.address)
    await node.schedule(proc)
    msgs = [sign_message(user_wallet, proc.id, data=str(i).encode()) for i in range(4)]
    for m in msgs:
        await node.schedule(m)
    chain_before = node.registry.find(proc.id).info()["hash_chain"]  # type: ignore[union-attr]
    await node.stop()
    again = await make_node()
    more = sign_message(user_wallet, proc.id, data=b"after")
    a = await again.schedule(more)
    assert a.slot == 5
    assert a.header.hash_chain == b64url_encode(
        next_link(b64url_decode(chain_before), more.id_bytes)
    )
    page = await again.schedule_page(proc.id)
    links = [(x.slot, x.header.message, x.header.hash_chain) for x in page.assignments]
    assert verify_chain(links) is None
    assert [x.slot for x in page.assignments] == list(range(6))


async def test_repost_returns_existing_assignment(
    make_node: NodeFactory, user_wallet: Wallet
) -> None:
    node = await make_node()
    proc = sign_process(user_wallet, node.address)
    await node.schedule(proc)
    msg = sign_message(user_wallet, proc.id)
    first = await node.schedule(msg)
    # concurrently re-posted many times, plus once after it is durable
    again = await asyncio.gather(*(node.schedule(msg) for _ in range(5)))
    assert {a.slot for a in again} == {first.slot}
    assert (await node.schedule(proc)).slot == 0
    assert (await node.slot_info(proc.id))["current"] == 1


async def test_concurrent_reposts_before_assignment_share_one_slot(
    make_node: NodeFactory, user_wallet: Wallet
) -> None:
    node = await make_node(mode=Mode.AGGRESSIVE)
    proc = sign_process(user_wallet, node.address)
    await node.schedule(proc)
    msg = sign_message(user_wallet, proc.id)
    results = await asyncio.gather(*(node.schedule(msg) for _ in range(8)))
    assert {a.slot for a in results} == {1}


async def test_stale_request_is_never_assigned(make_node: NodeFactory, user_wallet: Wallet) -> None:
    node = await make_node()
    proc = sign_process(user_wallet, node.address)
    server = await node.registry.find_or_start(proc)
    loop = asyncio.get_running_loop()
    stale = sign_message(user_wallet, proc.id, data=b"late")
    with pytest.raises(Expired):
        await server.schedule(stale, deadline=loop.time() - 0.001)
    fresh = await server.schedule(sign_message(user_wallet, proc.id, data=b"fresh"))
    assert fresh.slot == 0
    assert await node.store.by_message(proc.id, stale.id) is None


async def test_commitments_by_every_named_wallet(
    make_node: NodeFactory, rsa_wallet: Wallet, ed_wallet: Wallet, user_wallet: Wallet
) -> None:
    node = await make_node(wallets=[ed_wallet, rsa_wallet])
    proc = sign_process(user_wallet, [rsa_wallet.address, ed_wallet.address])
    a = await node.schedule(proc)
    assert {c.committer for c in a.commitments} == {rsa_wallet.address, ed_wallet.address}
    for c in a.commitments:
        assert check_commitment(a.header, c) is None
    # only the named one when the process names one
    only = sign_process(user_wallet, f'"{rsa_wallet.address}"', data=b"other")
    b = await node.schedule(only)
    assert [c.committer for c in b.commitments] == [rsa_wallet.address]


async def test_process_naming_another_scheduler_is_refused(
    make_node: NodeFactory, user_wallet: Wallet, rsa_wallet: Wallet
) -> None:
    node = await make_node()
    proc = sign_process(user_wallet, rsa_wallet.address)  # not this node's wallet
    with pytest.raises(NotOurProcess):
        await node.schedule(proc)
    assert await node.store.processes() == []


async def test_message_for_unknown_process_is_404(
    make_node: NodeFactory, user_wallet: Wallet, ed_wallet: Wallet
) -> None:
    node = await make_node()
    ghost = sign_process(user_wallet, node.address)  # never scheduled
    with pytest.raises(NotFound):
        await node.schedule(sign_message(user_wallet, ghost.id))


async def test_full_queue_answers_overloaded(
    tmp_path, ed_wallet: Wallet, user_wallet: Wallet
) -> None:
    store = SQLiteStore(tmp_path / "q.sqlite3")
    await store.open()
    proc = sign_process(user_wallet, ed_wallet.address)
    server = SchedulerServer(
        proc,
        wallets=[ed_wallet],
        store=store,
        timestamps=OfflineSource(),
        options=ServerOptions(mode=Mode.LOCAL_CONFIRMATION, queue_size=2),
    )
    await server.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    # the actor has not run yet (no await since start), so the queue fills
    futures = [
        server.submit(
            sign_message(user_wallet, proc.id, data=str(i).encode()),
            path="compute",
            deadline=deadline,
        )
        for i in range(2)
    ]
    with pytest.raises(Overloaded):
        server.submit(
            sign_message(user_wallet, proc.id, data=b"x"), path="compute", deadline=deadline
        )
    assert [(await f).slot for f in futures] == [0, 1]
    await server.stop()
    await store.close()


async def test_local_confirmation_replies_only_when_durable(
    tmp_path, make_node: NodeFactory, user_wallet: Wallet
) -> None:
    node = await make_node()
    proc = sign_process(user_wallet, node.address)
    a = await node.schedule(proc)
    # acknowledged → readable from a *separate* connection to the same file
    other = SQLiteStore(tmp_path / "aonode.sqlite3")
    await other.open()
    try:
        stored = await other.by_message(proc.id, proc.id)
        assert stored is not None and stored.assignment.slot == a.slot
    finally:
        await other.close()


class FlakyStore(SQLiteStore):
    """A real SQLite store whose append fails once for one chosen message."""

    poison: str | None = None

    async def append(self, assignment, body):  # type: ignore[no-untyped-def]
        if body.id == self.poison:
            self.poison = None
            from aonode.errors import StoreError

            raise StoreError("injected write failure")
        await super().append(assignment, body)


async def test_failed_write_is_reported_and_the_schedule_stays_gap_free(
    tmp_path, ed_wallet: Wallet, user_wallet: Wallet
) -> None:
    from aonode.config import NodeConfig
    from aonode.errors import StoreError
    from aonode.node import Node

    store = FlakyStore(tmp_path / "flaky.sqlite3")
    node = Node(
        NodeConfig(data_dir=tmp_path), wallets=[ed_wallet], store=store, timestamps=OfflineSource()
    )
    await node.start()
    try:
        proc = sign_process(user_wallet, node.address)
        await node.schedule(proc)
        msgs = [sign_message(user_wallet, proc.id, data=str(i).encode()) for i in range(12)]
        store.poison = msgs[3].id
        results = await asyncio.gather(*(node.schedule(m) for m in msgs), return_exceptions=True)
        failed = [m for m, r in zip(msgs, results, strict=True) if isinstance(r, BaseException)]
        assert msgs[3] in failed
        assert all(isinstance(r, StoreError) for r in results if isinstance(r, BaseException))
        # the server keeps serving, from the last durable slot, without a gap
        for m in failed:
            await node.schedule(m)
        later = await node.schedule(sign_message(user_wallet, proc.id, data=b"later"))
        page = await node.schedule_page(proc.id)
        assert [a.slot for a in page.assignments] == list(range(len(page.assignments)))
        assert later.slot == len(page.assignments) - 1 == 13
        assert (
            verify_chain((a.slot, a.header.message, a.header.hash_chain) for a in page.assignments)
            is None
        )
        assert {a.header.message for a in page.assignments} >= {m.id for m in msgs}
    finally:
        await node.stop()


class GatedStore(SQLiteStore):
    """A real SQLite store whose appends wait while ``gate`` is clear."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()

    async def append(self, assignment, body):  # type: ignore[no-untyped-def]
        if not self.gate.is_set():
            self.waiting.set()
            await self.gate.wait()
        await super().append(assignment, body)


async def test_a_request_during_stop_never_starts_a_second_actor(
    tmp_path: Path, ed_wallet: Wallet, user_wallet: Wallet
) -> None:
    """While a process's actor drains at stop, a late request (a cluster peer's
    forwarded call, a push) must not start a second actor for it: that one would
    resume from a stale latest slot and give a slot twice (integrity error, 500)."""
    from aonode.config import NodeConfig
    from aonode.node import Node

    store = GatedStore(tmp_path / "gated.sqlite3")
    node = Node(
        NodeConfig(data_dir=tmp_path), wallets=[ed_wallet], store=store, timestamps=OfflineSource()
    )
    await node.start()
    stopping: asyncio.Task[None] | None = None
    try:
        proc = sign_process(user_wallet, node.address)
        await node.schedule(proc)
        store.gate.clear()
        first = sign_message(user_wallet, proc.id, data=b"first")
        pending = asyncio.create_task(node.schedule(first))
        await store.waiting.wait()  # slot 1 is assigned; its write waits
        stopping = asyncio.create_task(node.scheduling.stop())
        await asyncio.sleep(0)  # one loop step: stop's first step runs (no time passes)
        assert not node.scheduling.registry.processes()  # stop began; the actor drains
        late = sign_message(user_wallet, proc.id, data=b"late")
        late_call = asyncio.create_task(node.schedule(late))
        await asyncio.sleep(0)
        store.gate.set()
        assert (await pending).slot == 1
        with pytest.raises(Overloaded):  # not a second actor (nor its integrity error)
            await late_call
        await stopping
        page = await node.schedule_page(proc.id)
        assert [a.header.message for a in page.assignments] == [proc.id, first.id]
    finally:
        store.gate.set()
        if stopping is not None:
            await stopping
        await node.stop()


async def test_thread_signed_slots_reach_the_store_in_groups(
    make_node: NodeFactory, rsa_wallet: Wallet, user_wallet: Wallet
) -> None:
    """RSA signatures take milliseconds each: slots whose successors are still being
    signed wait for them and are committed together (one fsync for several), not one
    commit per slot; every one is still durable when its request is answered."""
    node = await make_node(wallets=[rsa_wallet])
    proc = sign_process(user_wallet, rsa_wallet.address)
    await node.schedule(proc)
    store = node.store
    assert isinstance(store, SQLiteStore)
    before = store.commits
    messages = [sign_message(user_wallet, proc.id, data=str(i).encode()) for i in range(24)]
    assignments = await asyncio.gather(*(node.schedule(m) for m in messages))
    assert sorted(a.slot for a in assignments) == list(range(1, 25))
    for m, a in zip(messages, assignments, strict=True):
        stored = await store.by_message(proc.id, m.id)
        assert stored is not None and stored.assignment.slot == a.slot
    commits = store.commits - before
    assert commits <= 24 // 3, f"24 thread-signed slots took {commits} commits"
