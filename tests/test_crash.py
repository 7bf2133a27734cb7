"""Crash test: a real ``aonode serve`` killed with SIGKILL under a burst of POSTs.

Each round starts the node on the same data directory, fires concurrent
signed messages at one of two processes, and kills the node at a random
moment (after a random number of acknowledgements, so no sleeps).  After
every restart: every message the client got a 200 for is in the store at the
slot it was told, slots are gap-free, and ``aonode verify`` passes.

Rounds: ``AONODE_CRASH_ROUNDS`` (scripts/test runs 20; default here 3).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from pathlib import Path

import httpx
import pytest

from aonode.http.server import free_port
from aonode.wallet import Wallet
from tests.conftest import sign_message, sign_process

pytestmark = pytest.mark.crash
ROUNDS = int(os.environ.get("AONODE_CRASH_ROUNDS", "3"))
ANS = {"content-type": "application/ans104"}
# These tests flood one node with one signer from one address on purpose: the
# quotas a public node sets (README "Running a public node") are lifted explicitly.
FLOOD_LIMITS = {
    "AONODE_QUOTA_MESSAGES": "off",
    "AONODE_QUOTA_SPAWNS": "off",
    "AONODE_QUOTA_READS": "off",
    "AONODE_DRYRUNS_PER_CLIENT": "0",
}


async def start_node(
    data_dir: Path,
    port: int,
    env: dict[str, str] | None = None,
    mode: str = "local_confirmation",
    workers: int | None = None,
) -> tuple[asyncio.subprocess.Process, str, str]:
    """Start ``aonode serve`` (``env``: extra environment, e.g. ``AONODE_*`` settings;
    ``workers``: ``--workers N``, default the environment's); a port taken meanwhile by
    another test is retried."""
    for attempt in range(3):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "aonode.ops.cli",
            "serve",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port if attempt == 0 else free_port("127.0.0.1")),
            "--mode",
            mode,
            *(() if workers is None else ("--workers", str(workers))),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **FLOOD_LIMITS, **(env or {})},
        )
        assert proc.stdout is not None
        seen: list[str] = []
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                rc = await proc.wait()
                if "cannot listen" in "".join(seen) and attempt < 2:
                    break  # the free port was taken before the node bound it
                raise AssertionError(f"node exited before it was ready (rc={rc}): {seen}")
            seen.append(line)
            if line.startswith("aonode listening on "):
                url, _, address = line.removeprefix("aonode listening on ").strip().partition(" ")
                return proc, url, address.removeprefix("address=")
    raise AssertionError("no free port could be bound")


async def stop_node(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM, and the node must exit cleanly (0), saying why if it does not."""
    proc.send_signal(signal.SIGTERM)
    out = (await proc.stdout.read()).decode() if proc.stdout is not None else ""
    rc = await proc.wait()
    assert rc == 0, f"node exited {rc} on SIGTERM: {out[-2000:]}"


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigkill_under_load_loses_nothing_acknowledged(
    tmp_path: Path, user_wallet: Wallet, workers: int
) -> None:
    """``workers`` 2: the SIGKILL hits the supervisor; its workers stop with it."""
    rng = random.Random(os.environ.get("AONODE_CRASH_SEED", "aonode"))
    data_dir = tmp_path / "node"
    acked: dict[str, dict[str, int]] = {}
    pids: list[str] = []
    for _ in range(ROUNDS):
        port = free_port("127.0.0.1")
        node, url, address = await start_node(data_dir, port, workers=workers)
        try:
            async with httpx.AsyncClient(
                base_url=url, timeout=30, limits=httpx.Limits(max_connections=64)
            ) as client:
                await check_schedules(client, pids, acked)
                if not pids:
                    for i in range(2):
                        p = sign_process(user_wallet, address, data=str(i).encode())
                        r = await client.post(
                            "/~scheduler@1.0/schedule", content=p.item.raw, headers=ANS
                        )
                        assert r.status_code == 200, r.text
                        pids.append(p.id)
                        acked[p.id] = {p.id: 0}
                kill_after = rng.randint(1, 150)
                await burst(client, node, pids, acked, user_wallet, kill_after, rng)
        finally:
            if node.returncode is None:
                node.send_signal(signal.SIGKILL)
            await node.wait()
    # a final clean start: everything acknowledged is there, and verify agrees
    node, url, _ = await start_node(data_dir, free_port("127.0.0.1"), workers=workers)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            await check_schedules(client, pids, acked)
    finally:
        await stop_node(node)
    assert sum(len(v) for v in acked.values()) > ROUNDS  # the rounds really acknowledged work
    for pid in pids:
        verifier = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "aonode.ops.cli",
            "verify",
            "--",
            str(data_dir),
            pid,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out = (await verifier.communicate())[0].decode()
        assert verifier.returncode == 0, out
        verified = int(out.split("ok: ", 1)[1].split()[0])
        assert verified >= len(acked[pid])  # unacknowledged but durable ones may be there too


async def burst(
    client: httpx.AsyncClient,
    node: asyncio.subprocess.Process,
    pids: list[str],
    acked: dict[str, dict[str, int]],
    user: Wallet,
    kill_after: int,
    rng: random.Random,
) -> None:
    """Post until ``kill_after`` acknowledgements, then SIGKILL mid-burst."""
    count = 0
    killed = asyncio.Event()

    async def worker(seed: int) -> None:
        nonlocal count
        local = random.Random(seed)
        while not killed.is_set():
            pid = local.choice(pids)
            m = sign_message(user, pid)
            try:
                r = await client.post(f"/{pid}/schedule", content=m.item.raw, headers=ANS)
            except httpx.HTTPError:
                return  # the node is gone
            if r.status_code == 200:
                acked[pid][m.id] = r.json()["slot"]
                count += 1
                if count >= kill_after and not killed.is_set():
                    killed.set()
                    node.send_signal(signal.SIGKILL)
            else:
                assert r.status_code == 503, r.text  # only overload may refuse good input

    await asyncio.gather(*(worker(rng.randint(0, 2**32)) for _ in range(32)))


async def check_schedules(
    client: httpx.AsyncClient, pids: list[str], acked: dict[str, dict[str, int]]
) -> list[list[str]]:
    """Every acknowledged message at its slot, slots gap-free; each process's
    message ids in slot order."""
    schedules = []
    for pid in pids:
        stored: dict[str, int] = {}
        slots: list[int] = []
        ids: list[str] = []
        first = 0
        while True:
            r = await client.get(f"/{pid}/schedule", params={"from": first})
            assert r.status_code == 200, r.text
            page = r.json()
            for a in page["assignments"]:
                stored[a["message"]] = a["slot"]
                slots.append(a["slot"])
                ids.append(a["message"])
            if not page["continues"]:
                break
            first = page["next"]
        assert slots == list(range(len(slots))), "gap or duplicate after a crash"
        for mid, slot in acked[pid].items():
            assert stored.get(mid) == slot, f"acknowledged {mid} (slot {slot}) was lost"
        schedules.append(ids)
    return schedules
