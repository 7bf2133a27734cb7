"""kill -9 a real node after 500 computed slots; after restart it resumes from the
latest snapshot (not slot 0) and reaches the same state as an uninterrupted run."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import pytest

from aonode.http.server import free_port
from aonode.wallet import Wallet
from tests.conftest import sign_message, sign_process
from tests.test_crash import start_node, stop_node

pytestmark = pytest.mark.crash
ANS = {"content-type": "application/ans104"}
HANDLER = (
    "Sum = 0\nHandlers.add('Add', { Action = 'Add' }, function(m)\n"
    "  Sum = Sum + tonumber(m.Amount)\nend)"
)


async def test_kill_after_500_slots_resumes_from_snapshot(
    tmp_path: Path, user_wallet: Wallet
) -> None:
    data_dir = tmp_path / "node"
    # the first life stores its results and snapshots before answering a compute, so
    # the kill cannot take the newest snapshot with it (with the asynchronous cache a
    # kill may lose the last writes: resuming from an older snapshot is also correct)
    sync_cache = {"AONODE_ASYNC_CACHE": "off"}
    node, url, address = await start_node(data_dir, free_port("127.0.0.1"), sync_cache)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            proc = sign_process(user_wallet, address, extra=[("Execution-Device", "lua@5.3a")])
            await client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
            pid = proc.id
            msgs = [sign_message(user_wallet, pid, data=HANDLER.encode(), action="Eval")]
            msgs += [
                sign_message(user_wallet, pid, action="Add", extra=[("Amount", str(i))])
                for i in range(1, 500)
            ]
            for i in range(0, len(msgs), 50):
                rs = await asyncio.gather(
                    *(
                        client.post(f"/{pid}/schedule", content=m.item.raw, headers=ANS)
                        for m in msgs[i : i + 50]
                    )
                )
                assert all(r.status_code == 200 for r in rs)
            r = await client.get(f"/{pid}/compute", params={"slot": 500})
            assert r.status_code == 200, r.text
            status = (await client.get("/~scheduler@1.0/status")).json()
            assert status["workers"][pid]["replayed"] == 501
    finally:
        node.send_signal(signal.SIGKILL)
        await node.wait()

    node, url, _ = await start_node(data_dir, free_port("127.0.0.1"))
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            last = sign_message(user_wallet, pid, data=b"return Sum", action="Eval")
            r = await client.post(f"/{pid}/schedule", content=last.item.raw, headers=ANS)
            assert r.json()["slot"] == 501
            r = await client.get(f"/{pid}/now/results/data")
            assert r.text == str(sum(range(1, 500)))  # the uninterrupted state's answer
            worker = (await client.get("/~scheduler@1.0/status")).json()["workers"][pid]
            # from the newest snapshot (every 100 slots), never from slot 0
            resumed = worker["resumed-from"]
            assert resumed == 500  # the snapshot at slot 500: stored before the kill
            assert worker["replayed"] == 501 - resumed
    finally:
        await stop_node(node)
