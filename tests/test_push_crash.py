"""Async push under SIGKILL: every outbox message is delivered exactly once.

A real ``aonode serve`` accepts an async push (``push-mode=async``, or the
legacy MU crank of a message posted to ``POST /``) of a slot whose outbox fans out
50 messages over 5 target processes, and is killed after a random number of
those deliveries has been observed on the targets' schedules.  After the
restart the node resumes the pending push by itself; when it is done, each
target's schedule holds exactly one message per (From-Process, From-Slot,
Outbox-Index) — nothing lost, nothing twice.

With ``--workers 2`` the pending job is resumed by one worker only (the one
that owns the sender process; the targets are its too), so each outbox entry
is walked once per restart:
the cluster's ``aonode_push_deliveries`` counter grows by exactly the fan-out
of each job left pending, not once per worker.

Rounds: ``AONODE_CRASH_ROUNDS`` (as tests/test_crash.py; default here 2).
"""

from __future__ import annotations

import os
import random
import signal
from collections import Counter
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aonode.cluster.shard import shard_of
from aonode.datadir import DataDirLock
from aonode.errors import DataDirLocked
from aonode.http.server import free_port
from aonode.push.ledger import JOB
from aonode.store.sqlite import SQLiteStore
from aonode.wallet import Wallet
from tests.conftest import sign_message, sign_process
from tests.push_helpers import deliveries, schedule_of, until
from tests.test_crash import start_node, stop_node

pytestmark = pytest.mark.crash
ROUNDS = int(os.environ.get("AONODE_CRASH_ROUNDS", "2"))
ANS = {"content-type": "application/ans104"}
LUA = [("Execution-Device", "lua@5.3a")]
FAN_OUT = 50
TARGETS = 5


async def spawn(client: httpx.AsyncClient, user: Wallet, address: str) -> str:
    # ed25519 signatures are deterministic: distinct data makes distinct processes
    proc = sign_process(user, address, data=os.urandom(8).hex().encode(), extra=LUA)
    r = await client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    return proc.id


async def delivered(client: httpx.AsyncClient, targets: list[str]) -> int:
    total = 0
    for t in targets:
        total += int((await client.get(f"/{t}/slot/current")).text)  # slot 0 is the spawn
    return total


async def metric(client: httpx.AsyncClient, name: str) -> float:
    """The cluster-wide total of ``name`` (every worker's samples summed by /metrics)."""
    r = await client.get("/metrics")
    assert r.status_code == 200, r.text
    return sum(
        s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
        if s.name == name
    )


async def gone(data_dir: Path) -> None:
    """Return once no process of a killed node is left on ``data_dir``.

    A killed supervisor's workers stop by themselves (they see its pipe
    close); the data-directory lock is free once the last one is gone.
    """

    async def unlocked() -> bool:
        lock = DataDirLock(data_dir)
        try:
            lock.acquire()
        except DataDirLocked:
            return False
        lock.release()
        return True

    await until(unlocked, "the killed node's workers exited")


async def pending_jobs(data_dir: Path) -> int:
    """The async push jobs a killed node left in its store."""
    await gone(data_dir)
    store = SQLiteStore(data_dir / "aonode.sqlite3")
    await store.open()
    try:
        return len(await store.records(JOB))
    finally:
        await store.close()


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("surface", ["push-async", "legacy-crank"])
async def test_sigkill_during_async_push_delivers_each_message_once(
    tmp_path: Path, user_wallet: Wallet, surface: str, workers: int
) -> None:
    rng = random.Random(os.environ.get("AONODE_CRASH_SEED", "aonode-push"))
    data_dir = tmp_path / "node"
    sender = ""
    targets: list[str] = []
    for round_ in range(ROUNDS):
        node, url, address = await start_node(data_dir, free_port("127.0.0.1"), workers=workers)
        try:
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                if not targets:
                    sender = await spawn(client, user_wallet, address)
                    while len(targets) < TARGETS:
                        # one worker owns them all: a resumed walk then calls no peer,
                        # which may not listen yet while its worker starts (a transient
                        # failure re-walks, counting the entries before it again)
                        target = await spawn(client, user_wallet, address)
                        if shard_of(target, workers) == shard_of(sender, workers):
                            targets.append(target)
                names = ", ".join(f"'{t}'" for t in targets)
                code = (
                    f"local targets = {{ {names} }}\n"
                    f"for i = 1, {FAN_OUT} do\n"
                    "  Send({ Target = targets[(i % #targets) + 1], Action = 'Fan', N = i })\n"
                    "end"
                )
                m = sign_message(user_wallet, sender, data=code.encode(), action="Eval")
                if surface == "legacy-crank":  # aoconnect legacy's message
                    r = await client.post("/", content=m.item.raw)
                    assert r.status_code == 200, r.text
                else:
                    r = await client.post(
                        f"/{sender}~process@1.0/push",
                        content=m.item.raw,
                        headers=ANS,
                        params={"push-mode": "async"},
                    )
                    assert r.status_code == 202, r.text
                before = round_ * FAN_OUT
                kill_after = before + rng.randint(1, FAN_OUT - 1)

                async def some_delivered() -> bool:
                    return await delivered(client, targets) >= kill_after  # noqa: B023

                await until(some_delivered, f"{kill_after - before} deliveries")
                node.send_signal(signal.SIGKILL)
        finally:
            if node.returncode is None:
                node.send_signal(signal.SIGKILL)
            await node.wait()
        left = await pending_jobs(data_dir)  # 0 if the walk ended before the kill landed
        # restart: the pending push resumes by itself and finishes
        node, url, _ = await start_node(data_dir, free_port("127.0.0.1"), workers=workers)
        try:
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:

                async def finished() -> bool:  # on every worker
                    return await metric(client, "aonode_push_jobs") == 0

                await until(finished, "the resumed push finished")
                # each job left is walked once (its 50 entries), not once per worker
                resumed = await metric(client, "aonode_push_deliveries_total")
                assert resumed == left * FAN_OUT, (resumed, left)
                keys: Counter[tuple[str, str, str]] = Counter()
                for t in targets:
                    keys.update(deliveries(await schedule_of(client, t)))
                assert all(n == 1 for n in keys.values()), keys.most_common(3)
                assert len(keys) == (round_ + 1) * FAN_OUT
                assert {k[0] for k in keys} == {sender}
                assert await delivered(client, targets) == (round_ + 1) * FAN_OUT
        finally:
            await stop_node(node)
