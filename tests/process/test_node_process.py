"""Process execution through a node: the real hyper-aos over HTTP, resuming from
snapshots after a restart, and byte-identical snapshots on two nodes."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from aonode.codec import ans104
from aonode.config import NodeConfig
from aonode.node import Node
from aonode.scheduler.timestamp import OfflineSource
from aonode.store.base import MessageRecord, StoredSlot
from aonode.store.sqlite import SQLiteStore
from aonode.wallet import Wallet
from tests.conftest import LiveNode, sign_message, sign_process
from tests.process.test_device_http import LUA, send

ANS = {"content-type": "application/ans104"}
Live = Callable[..., Awaitable[LiveNode]]


async def test_hyper_aos_module_over_http(live: Live, user_wallet: Wallet, hyper_aos: str) -> None:
    ln = await live()
    module = ans104.sign(
        user_wallet,
        data=hyper_aos.encode(),
        tags=[("Content-Type", "application/lua"), ("Type", "Module")],
    )
    r = await ln.client.post("/~message@1.0/store", content=module.raw, headers=ANS)
    assert r.json() == {"id": module.id}
    proc = sign_process(
        user_wallet,
        ln.node.address,
        extra=[*LUA, ("Module", module.id), ("Authority", user_wallet.address)],
    )
    r = await ln.client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    pid = proc.id
    for code in ("X = 10", "X = X * 2"):
        await send(ln, user_wallet, pid, code)
    last = await send(ln, user_wallet, pid, "return X")
    r = await ln.client.get(f"/{pid}/compute", params={"slot": last})
    assert r.status_code == 200, r.text
    assert r.json()["results"]["data"] == "20"
    await send(ln, user_wallet, pid, "return 'hello'")
    assert (await ln.client.get(f"/{pid}/now/results/data")).text == "hello"
    # a module id the node does not hold is refused at spawn
    missing = sign_process(
        user_wallet, ln.node.address, data=b"m", extra=[*LUA, ("Module", module.id[::-1])]
    )
    r = await ln.client.post("/~scheduler@1.0/schedule", content=missing.item.raw, headers=ANS)
    assert r.status_code == 400 and r.json()["error"]["code"] == "module-not-found"
    assert (await ln.client.get(f"/{missing.id}/slot")).status_code == 404  # not spawned


def _mixed(i: int, hyper: bool = False) -> str:
    """A deterministic mix of handler installs, handled messages and evals.

    hyper-aos hands handlers the assignment, the message (lowercase keys) in its body."""
    if i == 0:
        action, key, amount = (
            ("action", "body.key", "body.amount") if hyper else ("Action", "Key", "Amount")
        )
        return (
            "Log = {}\nTotals = { a = 0, b = 0 }\n"
            f"Handlers.add('Add', {{ {action} = 'Add' }}, function(m)\n"
            f"  Totals[m.{key}] = (Totals[m.{key}] or 0) + tonumber(m.{amount})\n"
            f"  table.insert(Log, m.{key} .. ':' .. m.{amount})\nend)"
        )
    if i % 7 == 0:
        return f"Seen = (Seen or 0) + {i}\nreturn Seen"
    return ""


def _totals_query(owner: Wallet) -> dict[str, object]:
    """A dry-run Eval (owner-signed in spirit) reading the Add handler's totals."""
    return {
        "Id": "x",
        "Owner": owner.address,
        "From": owner.address,
        "Action": "Eval",
        "Tags": [{"name": "Action", "value": "Eval"}],
        "Data": "return Totals.a .. '/' .. Totals.b",
    }


async def _node(path: Path, wallet: Wallet, **changes: object) -> Node:
    if "snapshot_slots" in changes:  # WASM processes too (wasm_snapshot_slots)
        changes.setdefault("wasm_snapshot_slots", changes["snapshot_slots"])
    config = replace(NodeConfig(data_dir=path), **changes)  # type: ignore[arg-type]
    node = Node(
        config,
        wallets=[wallet],
        store=SQLiteStore(path / "aonode.sqlite3"),
        timestamps=OfflineSource(),
    )
    await node.start()
    return node


async def _schedule_mixed(node: Node, user: Wallet, n: int, hyper_aos: str | None = None) -> str:
    """A process with ``n`` mixed messages: on the built-in aos, or on hyper-aos."""
    extra = list(LUA)
    if hyper_aos is not None:
        module = ans104.sign(
            user, data=hyper_aos.encode(), tags=[("Content-Type", "application/lua")]
        )
        await node.store.put_message(MessageRecord(module.id, module.raw))
        extra += [("Module", module.id), ("Authority", user.address)]
    proc = sign_process(user, node.address, extra=extra)
    await node.schedule(proc)
    for i in range(n):
        code = _mixed(i, hyper=hyper_aos is not None)
        if code:
            m = sign_message(user, proc.id, data=code.encode(), action="Eval")
        else:
            m = sign_message(
                user, proc.id, action="Add", extra=[("Key", "ab"[i % 2]), ("Amount", str(i % 13))]
            )
        await node.schedule(m)
    return proc.id


@pytest.fixture(params=["builtin-aos", "hyper-aos"])
def module_source(request: pytest.FixtureRequest) -> str | None:
    """None: the built-in aos module; else the real hyper-aos source."""
    if request.param == "builtin-aos":
        return None
    source: str = request.getfixturevalue("hyper_aos")
    return source


async def test_restart_resumes_from_the_latest_snapshot(
    tmp_path: Path, ed_wallet: Wallet, user_wallet: Wallet, module_source: str | None
) -> None:
    node = await _node(tmp_path, ed_wallet, snapshot_slots=100)
    pid = await _schedule_mixed(node, user_wallet, 260, module_source)
    process = await node.require_process(pid)
    worker = await node.processes.worker(process)
    slot, results = await worker.now()
    assert slot == 260 and worker.replayed == 261
    expected = (await worker.dryrun(_totals_query(user_wallet)))[1].data
    await node.stop()

    again = await _node(tmp_path, ed_wallet, snapshot_slots=100)
    try:
        worker = await again.processes.worker(await again.require_process(pid))
        slot, cached = await worker.now()  # computed before the restart: from the cache
        assert slot == 260 and cached.to_json() == results.to_json() and worker.replayed == 0
        await again.schedule(
            sign_message(user_wallet, pid, action="Add", extra=[("Key", "a"), ("Amount", "1")])
        )
        slot, _ = await worker.now()
        assert slot == 261
        assert worker.resumed_from == 200  # not replayed from 0
        assert worker.replayed == 61
        assert expected is not None
        total_a, total_b = expected.split("/")
        expected = f"{int(total_a) + 1}/{total_b}"
        got = (await worker.dryrun(_totals_query(user_wallet)))[1].data
        assert got == expected and got is not None
        assert results.error is None
    finally:
        await again.stop()


async def test_two_nodes_make_byte_identical_snapshots(
    tmp_path: Path, ed_wallet: Wallet, user_wallet: Wallet, module_source: str | None
) -> None:
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    node = await _node(first_dir, ed_wallet, snapshot_slots=100)
    pid = await _schedule_mixed(node, user_wallet, 1000, module_source)
    await node.stop()
    # the second node gets the same schedule (a copy of the store before computing)
    shutil.copytree(first_dir, second_dir)
    snapshots = []
    for d in (first_dir, second_dir):
        n = await _node(d, ed_wallet, snapshot_slots=100)
        try:
            worker = await n.processes.worker(await n.require_process(pid))
            await worker.compute(1000)
            await worker.close()
            taken = {}
            for slot in range(0, 1001, 100):
                rec = await n.store.latest_snapshot(pid, slot)
                assert rec is not None and rec.slot == slot and rec.snapshot
                taken[slot] = rec.snapshot
            snapshots.append(taken)
        finally:
            await n.stop()
    assert snapshots[0] == snapshots[1]
    assert len(set(snapshots[0].values())) == 11  # the state really changed along the way


async def test_idle_worker_unloads_to_a_snapshot_and_comes_back(
    tmp_path: Path, ed_wallet: Wallet, user_wallet: Wallet
) -> None:
    import time

    node = await _node(tmp_path, ed_wallet, snapshot_slots=10_000, worker_max_idle=300.0)
    try:
        pid = await _schedule_mixed(node, user_wallet, 50)
        process = await node.require_process(pid)
        worker = await node.processes.worker(process)
        await worker.now()
        assert await node.processes.unload_idle(now=time.monotonic()) == []  # not idle yet
        assert await node.processes.unload_idle(now=time.monotonic() + 301) == [pid]
        snap = await node.store.latest_snapshot(pid, 10_000)
        assert snap is not None and snap.slot == 50
        await node.schedule(sign_message(user_wallet, pid, data=b"return Totals.a", action="Eval"))
        again = await node.processes.worker(process)
        assert again is not worker
        slot, results = await again.now()
        assert slot == 51 and again.resumed_from == 50 and again.replayed == 1
        expected = sum(i % 13 for i in range(1, 50) if i % 2 == 0 and i % 7 != 0)
        assert results.data == str(expected)
    finally:
        await node.stop()


async def test_seed_module_on_hyper_aos_over_http(
    live: Live, user_wallet: Wallet, hyper_aos: str
) -> None:
    """The seed 003 checks that hyper-aos itself supports (its handlers match lowercase
    keys: docs/aos-differences.md, `lowercase-keys`)."""
    ln = await live()
    module = ans104.sign(
        user_wallet,
        data=hyper_aos.encode(),
        tags=[("Content-Type", "application/lua"), ("Type", "Module")],
    )
    await ln.client.post("/~message@1.0/store", content=module.raw, headers=ANS)
    proc = sign_process(
        user_wallet,
        ln.node.address,
        data=b"seed",
        extra=[*LUA, ("Module", module.id), ("Authority", user_wallet.address)],
    )
    await ln.client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
    pid = proc.id
    script = "Counter = Counter or 0\nCounter = Counter + 1\nreturn 'Count: ' .. Counter"
    for _ in range(3):
        last = await send(ln, user_wallet, pid, script)
    r = await ln.client.get(f"/{pid}/compute", params={"slot": last})
    assert r.json()["results"]["data"] == "Count: 3"
    handler = (
        "Handlers.add('Increment', { action = 'Increment' }, function(m)\n"
        "  Counter = Counter + 1\nend)"
    )
    await send(ln, user_wallet, pid, handler)
    await send(ln, user_wallet, pid, "", action="Increment")
    await send(ln, user_wallet, pid, "return Counter")
    assert (await ln.client.get(f"/{pid}/now/results/data")).text == "4"
    before = (await ln.client.get(f"/{pid}/slot")).json()["current"]
    dry = ans104.sign(user_wallet, data=b"return 99", tags=[("Action", "Eval")])
    r = await ln.client.post(f"/{pid}~process@1.0/compute", content=dry.raw, headers=ANS)
    assert r.status_code == 200 and r.json()["results"]["data"] == "99", r.text
    assert (await ln.client.get(f"/{pid}/slot")).json()["current"] == before
    await send(ln, user_wallet, pid, "return Counter")
    assert (await ln.client.get(f"/{pid}/now/results/data")).text == "4"


async def test_synchronous_cache_stores_results_before_compute_returns(
    tmp_path: Path, ed_wallet: Wallet, user_wallet: Wallet
) -> None:
    node = await _node(tmp_path, ed_wallet, snapshot_slots=5, async_cache=False)
    try:
        pid = await _schedule_mixed(node, user_wallet, 12)
        worker = await node.processes.worker(await node.require_process(pid))
        await worker.compute(12)
        # nothing awaited since compute returned: every row and snapshot is stored
        for slot in range(13):
            assert await node.store.get_result(pid, slot) is not None
        snap = await node.store.latest_snapshot(pid, 12)
        assert snap is not None and snap.slot == 10
    finally:
        await node.stop()


class _CountingStore(SQLiteStore):
    """The real SQLite store, counting schedule reads."""

    slot_reads = 0

    async def slots(self, process: str, first: int, last: int, limit: int) -> list[StoredSlot]:
        type(self).slot_reads += 1
        return await super().slots(process, first, last, limit)


async def test_fresh_assignments_compute_from_the_schedulers_memory(
    tmp_path: Path, ed_wallet: Wallet, user_wallet: Wallet
) -> None:
    """Slots just made durable are computed without re-reading the schedule, and give
    exactly what computing from the store gives."""
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    config = NodeConfig(data_dir=first_dir)
    store = _CountingStore(first_dir / "aonode.sqlite3")
    node = Node(config, wallets=[ed_wallet], store=store, timestamps=OfflineSource())
    await node.start()
    try:
        pid = await _schedule_mixed(node, user_wallet, 40)
        worker = await node.processes.worker(await node.require_process(pid))
        _CountingStore.slot_reads = 0
        from_memory = [(await worker.compute(s)).to_json() for s in range(41)]
        assert _CountingStore.slot_reads == 0
    finally:
        await node.stop()
    shutil.copytree(first_dir, second_dir)
    db = sqlite3.connect(second_dir / "aonode.sqlite3")
    db.execute("DELETE FROM computed")
    db.commit()
    db.close()
    again = await _node(second_dir, ed_wallet)
    try:
        worker = await again.processes.worker(await again.require_process(pid))
        from_store = [(await worker.compute(s)).to_json() for s in range(41)]
    finally:
        await again.stop()
    assert from_store == from_memory
