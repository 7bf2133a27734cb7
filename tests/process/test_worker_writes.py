"""A worker sends its computed results to the store a group at a time: a slot is
served from memory until it is stored, nothing is lost on a clean stop, the stored
results stay in slot order (a prefix of the schedule), and a restarted node serves
them from the store without computing again."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import orjson

from aonode.config import NodeConfig
from aonode.node import Node
from aonode.scheduler.timestamp import OfflineSource
from aonode.store.base import ResultRecord
from aonode.store.sqlite import SQLiteStore
from aonode.wallet import Wallet, generate
from tests.conftest import sign_process
from tests.process.test_device_http import LUA
from tests.process.test_worker_readahead import evl

SLOTS = 40  # more than one group (results.WRITE_BATCH)


class RecordingStore(SQLiteStore):
    """The real SQLite store, remembering the order results were sent in."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.sent: list[int] = []

    async def put_result(self, result: ResultRecord) -> None:
        self.sent.append(result.slot)
        await super().put_result(result)


async def _node(path: Path, wallet: Wallet) -> tuple[Node, RecordingStore]:
    store = RecordingStore(path / "aonode.sqlite3")
    config = replace(NodeConfig(data_dir=path), snapshot_slots=10**9, wasm_snapshot_slots=10**9)
    node = Node(config, wallets=[wallet], store=store, timestamps=OfflineSource())
    await node.start()
    return node, store


async def test_results_written_in_groups_in_slot_order(tmp_path: Path, user_wallet: Wallet) -> None:
    node_wallet = generate("ed25519")
    node, store = await _node(tmp_path, node_wallet)
    proc = sign_process(user_wallet, node.address, extra=LUA)
    await node.schedule(proc)
    for i in range(1, SLOTS + 1):
        await node.schedule(evl(user_wallet, proc.id, i))
    worker = await node.processes.worker(proc)
    walked = []
    for s in range(SLOTS + 1):
        walked.append((await worker.compute(s)).data)
        # just computed: not in the store yet, served from the worker's memory
        assert await store.get_result(proc.id, s) is None
        assert (await worker.compute(s)).data == walked[-1]
    assert walked[1:] == [str(i) for i in range(1, SLOTS + 1)]
    await node.stop()  # a clean stop sends and stores every waiting result
    assert store.sent == list(range(SLOTS + 1))

    node, store = await _node(tmp_path, node_wallet)
    try:
        for s in range(SLOTS + 1):
            stored = await store.get_result(proc.id, s)
            assert stored is not None
            assert orjson.loads(stored.results)["results"]["data"] == walked[s]
        worker = await node.processes.worker(await node.require_process(proc.id))
        assert [(await worker.compute(s)).data for s in range(SLOTS + 1)] == walked
        assert worker.replayed == 0  # all served from the store: nothing recomputed
    finally:
        await node.stop()
