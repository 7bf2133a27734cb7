"""The soak: kill -9 restarts of a real node under concurrent load, and the proof
that nothing acknowledged is lost and computed state equals a fresh replay.

Shared by ``tests/test_soak.py`` (``AONODE_SOAK_ROUNDS`` rounds; ``scripts/test``
runs 20) and ``bench/soak.py`` (100 or more, with figures).

Each round starts ``aonode serve`` on the same data directory and runs, at once:

* writers posting signed ``Mix`` messages (each carrying a random ``Amount``)
  to two built-in aos processes, recording every message sent and, for each
  200, the slot the node acknowledged;
* readers computing the processes (``GET /{pid}/now``) so that results and
  snapshots are being written when the kill comes;

and sends SIGKILL after a random number of acknowledgements (no sleeps).  After
every restart each acknowledged message is at its acknowledged slot and the
slots are gap-free.  At the end:

* ``aonode verify`` checks every assignment's signature and hash chain;
* the processes' state (an order-sensitive fold of the ``Amount`` tags over the
  schedule, ``Acc = (Acc * 31 + Amount) mod p``) computed by the node that was
  killed again and again equals both the fold computed here from the schedule
  and the state a fresh node computes from an export of the schedule alone
  (no results, no snapshots: a replay from slot 0).
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from aonode.cluster.shard import shard_of
from aonode.http.server import free_port
from aonode.message import Message
from aonode.ops.migrate import export_store, import_store
from aonode.wallet import Wallet
from tests.conftest import sign_message, sign_process
from tests.test_crash import check_schedules, start_node, stop_node

ANS = {"content-type": "application/ans104"}
PRIME = 1_000_000_007
SEED = 7
HANDLER = (
    f"Acc = Acc or {SEED}\n"
    "Handlers.add('Mix', { Action = 'Mix' }, function(m)\n"
    f"  Acc = (Acc * 31 + tonumber(m.Amount)) % {PRIME}\n"
    "end)"
)


@dataclass
class SoakReport:
    """What a soak did and found; ``lost`` must be 0."""

    rounds: int = 0
    sent: int = 0
    acknowledged: int = 0
    lost: int = 0
    refused: int = 0  # 503s (overload), the only refusal good input may get
    computes: int = 0
    slots: int = 0  # assignments in the final schedules
    restart_seconds: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        restarts = sorted(self.restart_seconds)
        return {
            "rounds": self.rounds,
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "lost": self.lost,
            "refused_503": self.refused,
            "computes_during_load": self.computes,
            "final_slots": self.slots,
            "restart_to_ready_s_p50": round(restarts[len(restarts) // 2], 2) if restarts else None,
            "restart_to_ready_s_max": round(restarts[-1], 2) if restarts else None,
            "seconds": round(self.seconds, 1),
        }


@dataclass
class _State:
    user: Wallet
    pids: list[str] = field(default_factory=list)
    amounts: dict[str, int] = field(default_factory=dict)  # every Mix sent: id -> Amount
    acked: dict[str, dict[str, int]] = field(default_factory=dict)  # pid -> id -> slot


async def run_soak(
    data_dir: Path,
    user: Wallet,
    rounds: int,
    *,
    seed: str = "aonode-soak",
    max_acks: int = 120,
    progress: bool = False,
    workers: int | None = None,
) -> SoakReport:
    """Run ``rounds`` kill -9 rounds on ``data_dir``, then the final checks (which
    raise ``AssertionError`` on any loss or difference).  ``workers``: every node
    started here runs ``serve --workers N`` (default: the environment's); with 2
    the SIGKILL hits the supervisor and its workers stop with it."""
    rng = random.Random(seed)
    report = SoakReport()
    state = _State(user)
    began = time.monotonic()
    for number in range(rounds):
        started = time.monotonic()
        node, url, address = await start_node(data_dir, free_port("127.0.0.1"), workers=workers)
        report.restart_seconds.append(time.monotonic() - started)
        try:
            async with httpx.AsyncClient(
                base_url=url, timeout=60, limits=httpx.Limits(max_connections=64)
            ) as client:
                await check_schedules(client, state.pids, state.acked)
                if not state.pids:
                    await _spawn(client, state, address)
                await _load(client, node, state, report, rng.randint(1, max_acks), rng)
        finally:
            if node.returncode is None:
                node.send_signal(signal.SIGKILL)
            await node.wait()
        report.rounds += 1
        if progress:
            print(
                f"round {number + 1}/{rounds}: acknowledged {report.acknowledged}, lost 0",
                file=sys.stderr,
                flush=True,
            )
    await _final(data_dir, state, report, workers)
    report.seconds = time.monotonic() - began
    return report


async def _spawn(client: httpx.AsyncClient, state: _State, address: str) -> None:
    # one process per shard of 2: with ``--workers 2`` each worker owns one, and
    # every request that lands on the other worker takes the forwarded path
    found: dict[int, Message] = {}
    while len(found) < 2:
        p = sign_process(
            state.user,
            address,
            data=os.urandom(8),
            extra=[("Execution-Device", "lua@5.3a")],
        )
        found.setdefault(shard_of(p.id, 2), p)
    for p in (found[0], found[1]):
        r = await client.post("/~scheduler@1.0/schedule", content=p.item.raw, headers=ANS)
        assert r.status_code == 200, r.text
        handler = sign_message(state.user, p.id, data=HANDLER.encode(), action="Eval")
        r = await client.post(f"/{p.id}/schedule", content=handler.item.raw, headers=ANS)
        assert r.status_code == 200, r.text
        state.pids.append(p.id)
        state.acked[p.id] = {p.id: 0, handler.id: 1}


async def _load(
    client: httpx.AsyncClient,
    node: asyncio.subprocess.Process,
    state: _State,
    report: SoakReport,
    kill_after: int,
    rng: random.Random,
) -> None:
    """Writers and readers at once until ``kill_after`` acknowledgements, then SIGKILL."""
    count = 0
    killed = asyncio.Event()

    async def writer(seed: int) -> None:
        nonlocal count
        local = random.Random(seed)
        while not killed.is_set():
            pid = local.choice(state.pids)
            amount = local.randrange(1, 10**6)
            m = sign_message(state.user, pid, action="Mix", extra=[("Amount", str(amount))])
            state.amounts[m.id] = amount
            report.sent += 1
            try:
                r = await client.post(f"/{pid}/schedule", content=m.item.raw, headers=ANS)
            except httpx.HTTPError:
                return  # the node is gone
            if r.status_code == 200:
                state.acked[pid][m.id] = r.json()["slot"]
                report.acknowledged += 1
                count += 1
                if count >= kill_after and not killed.is_set():
                    killed.set()
                    node.send_signal(signal.SIGKILL)
            else:
                assert r.status_code == 503, r.text  # only overload may refuse good input
                report.refused += 1

    async def reader(seed: int) -> None:
        local = random.Random(seed)
        while not killed.is_set():
            try:
                r = await client.get(f"/{local.choice(state.pids)}/now")
            except httpx.HTTPError:
                return
            assert r.status_code in (200, 503), r.text
            report.computes += r.status_code == 200

    await asyncio.gather(
        *(writer(rng.randint(0, 2**32)) for _ in range(24)),
        *(reader(rng.randint(0, 2**32)) for _ in range(2)),
    )


def _fold(ids: list[str], amounts: dict[str, int]) -> int:
    """The state a correct replay reaches: slot 0 spawns, slot 1 installs the
    handler, every later slot is a Mix sent by this soak."""
    acc = SEED
    for mid in ids[2:]:
        assert mid in amounts, f"{mid} is in the schedule but was never sent"
        acc = (acc * 31 + amounts[mid]) % PRIME
    return acc


async def _state_of(client: httpx.AsyncClient, state: _State, pid: str) -> str:
    """Schedule an Eval of ``Acc`` and compute to it: the process's state, as text."""
    ask = sign_message(state.user, pid, data=b"return Acc", action="Eval")
    r = await client.post(f"/{pid}/schedule", content=ask.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    r = await client.get(f"/{pid}/compute", params={"slot": r.json()["slot"]})
    assert r.status_code == 200, r.text
    r = await client.get(f"/{pid}/now/results/data")
    assert r.status_code == 200, r.text
    return r.text


async def _final(data_dir: Path, state: _State, report: SoakReport, workers: int | None) -> None:
    node, url, _ = await start_node(data_dir, free_port("127.0.0.1"), workers=workers)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            schedules = await check_schedules(client, state.pids, state.acked)
            expected = [str(_fold(ids, state.amounts)) for ids in schedules]
            survived = [await _state_of(client, state, pid) for pid in state.pids]
            report.slots = sum(len(ids) + 1 for ids in schedules)
    finally:
        await stop_node(node)
    assert survived == expected, "the killed node's state differs from the schedule's fold"
    await _verify(data_dir, state.pids)

    # a fresh node given the schedules alone replays every slot from 0
    fresh = data_dir.parent / f"{data_dir.name}-replay"
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir()
    shutil.copy(data_dir / "wallet.json", fresh / "wallet.json")  # the same scheduler
    stream = io.BytesIO()
    await export_store(f"sqlite:///{data_dir / 'aonode.sqlite3'}", stream, results=False)
    stream.seek(0)
    await import_store(f"sqlite:///{fresh / 'aonode.sqlite3'}", stream)
    node, url, _ = await start_node(fresh, free_port("127.0.0.1"), workers=workers)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            replayed = []
            for pid in state.pids:
                r = await client.get(f"/{pid}/now/results/data")
                assert r.status_code == 200, r.text
                replayed.append(r.text)
        runtimes = await _runtimes(url, state.pids)
    finally:
        await stop_node(node)
    assert replayed == survived, "a fresh replay differs from the state that survived the kills"
    for pid in state.pids:
        assert runtimes[pid]["resumed-from"] is None  # really from slot 0
    lost = sum(
        1
        for pid, ids in zip(state.pids, schedules, strict=True)
        for mid in state.acked[pid]
        if mid not in ids
    )
    report.lost = lost


async def _runtimes(url: str, pids: list[str], tries: int = 32) -> dict[str, dict[str, object]]:
    """Each process's runtime in ``/~scheduler@1.0/status`` ``workers``.  A status
    lists the runtimes of the worker that answers it, and a runtime lives on its
    process's owner only: with ``--workers 2`` ask over fresh connections (each lands
    on either worker) until every owner has answered (all ``tries`` on one: 2⁻³¹)."""
    found: dict[str, dict[str, object]] = {}
    for _ in range(tries):
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            r = await client.get("/~scheduler@1.0/status")
        assert r.status_code == 200, r.text
        found.update({p: w for p, w in r.json()["workers"].items() if p in pids})
        if len(found) == len(pids):
            break
    assert sorted(found) == sorted(pids), "no worker answered for a process's runtime"
    return found


async def _verify(data_dir: Path, pids: list[str]) -> None:
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
            env={**os.environ},
        )
        out = (await verifier.communicate())[0].decode()
        assert verifier.returncode == 0, out
