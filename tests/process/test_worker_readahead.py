"""A worker walking a stored schedule slot by slot reads the store once per few
slots (it keeps the assignments read past the slot asked for), with the same
results as computing the whole schedule at once; an unloaded worker keeps none."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from aonode.config import NodeConfig
from aonode.message import Message
from aonode.node import Node
from aonode.scheduler.timestamp import OfflineSource
from aonode.store.base import StoredSlot
from aonode.store.sqlite import SQLiteStore
from aonode.wallet import Wallet, generate
from tests.conftest import sign_message, sign_process
from tests.process.test_device_http import LUA

SLOTS = 70


def evl(wallet: Wallet, pid: str, i: int) -> Message:
    return sign_message(wallet, pid, action="Eval", data=b"return %d" % i)


class CountingStore(SQLiteStore):
    """The real SQLite store, counting the schedule reads."""

    reads = 0

    async def slots(self, process: str, first: int, last: int, limit: int) -> list[StoredSlot]:
        self.reads += 1
        return await super().slots(process, first, last, limit)


async def _node(path: Path, wallet: Wallet) -> tuple[Node, CountingStore]:
    store = CountingStore(path / "aonode.sqlite3")
    config = replace(NodeConfig(data_dir=path), snapshot_slots=10**9, wasm_snapshot_slots=10**9)
    node = Node(config, wallets=[wallet], store=store, timestamps=OfflineSource())
    await node.start()
    return node, store


async def test_slot_by_slot_over_a_stored_schedule(tmp_path: Path, user_wallet: Wallet) -> None:
    node_wallet = generate("ed25519")
    node, _ = await _node(tmp_path / "a", node_wallet)
    proc = sign_process(user_wallet, node.address, extra=LUA)
    await node.schedule(proc)
    for i in range(1, SLOTS + 1):
        await node.schedule(evl(user_wallet, proc.id, i))
    await node.stop()

    # a restarted node: nothing in the scheduler's memory, every assignment from the store
    node, store = await _node(tmp_path / "a", node_wallet)
    try:
        worker = await node.processes.worker(await node.require_process(proc.id))
        store.reads = 0
        walked = [(await worker.compute(s)).data for s in range(SLOTS + 1)]
        assert walked[1:] == [str(i) for i in range(1, SLOTS + 1)]
        assert store.reads <= SLOTS // 16, store.reads  # not one read per slot
        assert worker._ahead == []  # the schedule's end: nothing kept past it
        # the same results as one compute over the whole schedule, on a fresh node
        other, _ = await _node(tmp_path / "b", node_wallet)
        await other.schedule(proc)
        for i in range(1, SLOTS + 1):
            await other.schedule(evl(user_wallet, proc.id, i))
        w2 = await other.processes.worker(proc)
        assert (await w2.compute(SLOTS)).data == walked[-1]
        await other.stop()
    finally:
        await node.stop()


async def test_unloaded_worker_keeps_no_read_ahead(tmp_path: Path, user_wallet: Wallet) -> None:
    node_wallet = generate("ed25519")
    node, _ = await _node(tmp_path, node_wallet)
    proc = sign_process(user_wallet, node.address, extra=LUA)
    await node.schedule(proc)
    for i in range(1, 10):
        await node.schedule(evl(user_wallet, proc.id, i))
    await node.stop()
    node, _ = await _node(tmp_path, node_wallet)
    try:
        worker = await node.processes.worker(await node.require_process(proc.id))
        assert (await worker.compute(3)).data == "3"
        assert [a.slot for a in worker._ahead] == list(range(4, 10))
        assert await node.processes.unload_idle(now=time.monotonic() + 10**9) == [proc.id]
        assert worker._ahead == []
        assert (await (await node.processes.worker(proc)).compute(9)).data == "9"
    finally:
        await node.stop()
