"""Crash test for the upload backlog: kill -9 while the upload target is down.

Each round starts a real ``aonode serve`` whose upload target (an arlocal
port nothing listens on yet) is down, posts a burst of messages and SIGKILLs
the node mid-burst, so the backlog holds acknowledged and unacknowledged
(but durable) assignments.  Then arlocal comes up on that port and the node
restarts in ``remote_confirmation``: one new message per process is answered
only once its slot, and so every slot before it, is accepted.  Every stored
assignment and message is then held by arlocal, and each was sent once.

With ``--workers 2`` each process's backlog is resumed by the one worker that
owns it (every worker scanning the whole backlog would send each item once
per worker).

Rounds: ``AONODE_CRASH_ROUNDS`` (as ``tests/test_crash.py``).
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from aonode.http.server import free_port
from aonode.wallet import Wallet
from tests.arlocal_fixtures import Arlocal, arlocal_factory
from tests.conftest import sign_message, sign_process
from tests.test_crash import ANS, ROUNDS, burst, check_schedules, start_node, stop_node
from tests.test_push_crash import gone
from tests.upload_helpers import held, register, uploaded_by

pytestmark = pytest.mark.crash
__all__ = ["arlocal_factory"]  # the fixture, for this module


async def schedule_of(client: httpx.AsyncClient, pid: str) -> list[dict[str, object]]:
    r = await client.get(f"/{pid}/schedule", params={"limit": 100000})
    assert r.status_code == 200, r.text
    page = r.json()
    assert not page["continues"]
    assignments: list[dict[str, object]] = page["assignments"]
    return assignments


@pytest.mark.parametrize("workers", [1, 2])
async def test_kill_9_with_a_backlog_uploads_everything_once_after_restart(
    tmp_path: Path, user_wallet: Wallet, arlocal_factory: Callable[..., Arlocal], workers: int
) -> None:
    rng = random.Random(os.environ.get("AONODE_CRASH_SEED", "aonode-upload"))
    data_dir = tmp_path / "node"
    target_port = free_port("127.0.0.1")  # the target: down until every round is over
    env = {"AONODE_UPLOAD_URL": f"http://127.0.0.1:{target_port}"}
    acked: dict[str, dict[str, int]] = {}
    pids: list[str] = []
    address = ""
    for _ in range(ROUNDS):
        node, url, address = await start_node(
            data_dir, free_port("127.0.0.1"), env, workers=workers
        )
        try:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                await check_schedules(client, pids, acked)
                status = (await client.get("/~scheduler@1.0/status")).json()["upload"]
                assert status["uploaded"] == 0  # the target is down: all of it is backlog
                if not pids:
                    for i in range(2):
                        p = sign_process(user_wallet, address, data=str(i).encode())
                        r = await client.post(
                            "/~scheduler@1.0/schedule", content=p.item.raw, headers=ANS
                        )
                        assert r.status_code == 200, r.text
                        pids.append(p.id)
                        acked[p.id] = {p.id: 0}
                await burst(client, node, pids, acked, user_wallet, rng.randint(1, 30), rng)
        finally:
            if node.returncode is None:
                node.send_signal(signal.SIGKILL)
            await node.wait()
        await gone(data_dir)

    arlocal = arlocal_factory(target_port)
    await register(arlocal.url, address)
    await register(arlocal.url, user_wallet.address, 0)
    # arlocal indexes some 20-40 items a second: the abort time covers the whole backlog
    env["AONODE_ABORT_SECONDS"] = "900"
    node, url, _ = await start_node(
        data_dir, free_port("127.0.0.1"), env, "remote_confirmation", workers=workers
    )
    try:
        async with httpx.AsyncClient(base_url=url, timeout=900) as client:
            await check_schedules(client, pids, acked)
            before = {pid: await schedule_of(client, pid) for pid in pids}
            backlog = sum(len(s) for s in before.values())
            # answered only when its slot is accepted: slots go up in order, so the
            # whole backlog of the process is up when this reply comes
            for pid in pids:
                m = sign_message(user_wallet, pid)
                r = await client.post(f"/{pid}/schedule", content=m.item.raw, headers=ANS)
                assert r.status_code == 200, r.text
                assert r.json()["slot"] == len(before[pid])
            status = (await client.get("/~scheduler@1.0/status")).json()["upload"]
            assert status["pending"] == 0
            if workers == 1:  # else the status is the answering worker's (arlocal's copies below)
                assert status["uploaded"] == backlog + len(pids)  # each slot counted once
            after = {pid: await schedule_of(client, pid) for pid in pids}
    finally:
        await stop_node(node)

    ids = [str(a[k]) for s in after.values() for a in s for k in ("id", "message")]
    assert await held(arlocal.url, ids) == set(ids)
    up = await uploaded_by(arlocal.url, address)
    assert set(ids) <= set(up.items)
    twice = [i for i in ids if up.copies[i] != 1]
    assert not twice, f"sent more than once: {twice}"
