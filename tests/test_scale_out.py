"""Three real ``aonode serve`` nodes on one PostgreSQL, clients posting to all three.

Every node is its own process with its own data directory and advertised URL,
and all hold the same scheduler wallet (one scheduler, scaled out).  Clients
pick a node at random for every POST and follow the ``307`` to the owner
(httpx keeps the body on a 307).  Then the owner of a busy process is killed
with SIGKILL, round after round, under load, and restarted: another node must
take the process over (the lease runs out after 1 s), and afterwards every
assignment a client got a 200 for is stored at the slot it was told, each
schedule is gap-free with every message once, and ``aonode verify`` (on the
database itself) passes.

Rounds: ``min(10, AONODE_CRASH_ROUNDS)`` (scripts/test sets 20; default here 3).
No sleep synchronises anything: every wait is a bounded poll of a condition.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from aonode import wallet as wallet_mod
from aonode.http.server import free_port
from aonode.wallet import Wallet
from tests.conftest import sign_message, sign_process
from tests.pg_fixture import pg_server, pg_url

__all__ = ["pg_server", "pg_url"]  # fixtures

pytestmark = pytest.mark.crash
ROUNDS = min(10, int(os.environ.get("AONODE_CRASH_ROUNDS", "3")))
ANS = {"content-type": "application/ans104"}
NODES = 3
PROCESSES = 6
WORKERS = 16
ROUND_LIMIT = 60.0  # seconds: a bound on one kill round that never holds (a hang fails)


@dataclass
class NodeProc:
    data_dir: Path
    port: int = 0
    proc: asyncio.subprocess.Process | None = None
    output: list[str] = field(default_factory=list)
    drain: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, store: str) -> None:
        """Start ``aonode serve`` and wait for its ready line (a port taken meanwhile: retry)."""
        for attempt in range(3):
            if attempt or not self.port:
                self.port = free_port("127.0.0.1")
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "aonode.ops.cli",
                "serve",
                "--store",
                store,
                "--data-dir",
                str(self.data_dir),
                "--port",
                str(self.port),
                "--advertise-url",
                self.url,
                "--mode",
                "local_confirmation",
                *("--quota-messages", "off", "--quota-spawns", "off", "--quota-reads", "off"),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            assert proc.stdout is not None
            seen: list[str] = []
            while line := (await proc.stdout.readline()).decode():
                seen.append(line)
                if line.startswith("aonode listening on "):
                    self.proc, self.output = proc, seen
                    self.drain = asyncio.create_task(self._drain(proc.stdout))
                    return
            rc = await proc.wait()
            if "cannot listen" not in "".join(seen):
                raise AssertionError(f"node exited before it was ready (rc={rc}): {seen}")
        raise AssertionError("no free port could be bound")

    async def _drain(self, stdout: asyncio.StreamReader) -> None:
        """Keep reading the node's log, so a full pipe never blocks it (kept for failures)."""
        while line := (await stdout.readline()).decode():
            self.output = [*self.output[-50:], line]

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        if self.drain is not None:
            await self.drain

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 60)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self.drain is not None:
            await self.drain


@dataclass
class Clients:
    """The clients' side: what they were told, and how they got there."""

    nodes: list[NodeProc]
    pids: list[str]
    user: Wallet
    acked: dict[str, dict[str, int]] = field(default_factory=dict)  # pid -> message -> slot
    redirected: int = 0  # 200s that came after a 307
    refused: int = 0  # 503s and connection errors: not acknowledged, retried

    def logs(self) -> str:
        """The nodes' recent log lines, for a failure message."""
        return "".join(line for n in self.nodes for line in n.output)

    async def post(self, client: httpx.AsyncClient, pid: str, rng: random.Random) -> bool:
        """One message for ``pid`` to a random node; True when acknowledged."""
        m = sign_message(self.user, pid, data=rng.randbytes(8))
        node = rng.choice(self.nodes)
        try:
            r = await client.post(f"{node.url}/{pid}/schedule", content=m.item.raw, headers=ANS)
        except httpx.HTTPError:  # a killed node, or a redirect to it before the takeover
            self.refused += 1
            return False
        if r.status_code == 503:  # overload, lease lost, or the lease is still expiring
            assert "retry-after" in r.headers, r.text
            self.refused += 1
            return False
        assert r.status_code == 200, (r.status_code, r.text, self.logs())
        self.acked.setdefault(pid, {})[m.id] = r.json()["slot"]
        self.redirected += bool(r.history)
        return True


async def _owner(conn: asyncpg.Connection, pid: str) -> str | None:
    """The URL of the live lease holder of ``pid``, if any (the database's view)."""
    url = await conn.fetchval(
        "SELECT url FROM leases WHERE process = $1 AND expires_at > now()", pid
    )
    return None if url is None else str(url)


async def _check(conn: asyncpg.Connection, c: Clients) -> dict[str, int]:
    """Every acknowledged assignment stored at its slot; each schedule gap-free and unique."""
    sizes = {}
    for pid in c.pids:
        rows = await conn.fetch(
            "SELECT slot, message FROM assignments WHERE process = $1 ORDER BY slot", pid
        )
        slots = [r["slot"] for r in rows]
        stored = {r["message"]: r["slot"] for r in rows}
        assert slots == list(range(len(rows))), f"{pid}: gap in the schedule"
        assert len(stored) == len(rows), f"{pid}: a message holds two slots"
        for mid, slot in c.acked.get(pid, {}).items():
            assert stored.get(mid) == slot, f"{pid}: acknowledged {mid} (slot {slot}) is lost"
        sizes[pid] = len(rows)
    return sizes


async def test_three_nodes_share_processes_and_survive_owner_kills(
    tmp_path: Path, pg_url: str, ed_wallet: Wallet, user_wallet: Wallet
) -> None:
    store = pg_url + "?lease_seconds=1"
    nodes = [NodeProc(tmp_path / f"node{i}") for i in range(NODES)]
    rng = random.Random(os.environ.get("AONODE_CRASH_SEED", "aonode-scale"))
    conn = await asyncpg.connect(pg_url)
    try:
        for n in nodes:
            n.data_dir.mkdir()
            wallet_mod.save(ed_wallet, n.data_dir / "wallet.json")  # one scheduler, three nodes
        await asyncio.gather(*(n.start(store) for n in nodes))
        await conn.execute("SET search_path = aonode")
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(follow_redirects=True, timeout=30, limits=limits) as client:
            c = Clients(nodes, [], user_wallet)
            for i in range(PROCESSES):  # each spawned on a node of its own choosing
                p = sign_process(user_wallet, ed_wallet.address, data=str(i).encode())
                node = nodes[i % NODES]
                r = await client.post(
                    f"{node.url}/~scheduler@1.0/schedule", content=p.item.raw, headers=ANS
                )
                assert r.status_code == 200 and r.json()["slot"] == 0, (r.text, c.logs())
                c.pids.append(p.id)
                c.acked[p.id] = {p.id: 0}
            owners = {await _owner(conn, pid) for pid in c.pids}
            assert owners == {n.url for n in nodes}  # every node owns some processes

            # Steady state: all nodes serve, clients land anywhere and follow 307s.
            await _load(client, c, rng, lambda: sum(map(len, c.acked.values())) >= 300)
            assert c.redirected > 0
            await _check(conn, c)

            for round_ in range(ROUNDS):
                busy = c.pids[round_ % PROCESSES]
                await asyncio.wait_for(_kill_round(client, conn, c, busy, rng, store), ROUND_LIMIT)
                await _check(conn, c)
            assert c.refused > 0 or not ROUNDS  # kills happened under load, clients saw them
        sizes = await _check(conn, c)
    finally:
        await asyncio.gather(*(n.stop() for n in nodes))
        await conn.close()

    verifier = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aonode.ops.cli",
        "verify",
        pg_url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out = (await verifier.communicate())[0].decode()
    assert verifier.returncode == 0, out
    for pid in c.pids:
        assert f"ok: {sizes[pid]} assignments verified for {pid}" in out, out


async def _load(
    client: httpx.AsyncClient,
    c: Clients,
    rng: random.Random,
    done: Callable[[], bool],
    *,
    busy: str | None = None,
    attempts: int = 20_000,
) -> None:
    """``WORKERS`` clients posting (two in three to ``busy`` when given) until ``done()``."""
    left = attempts  # a bound: the condition must come true well before

    async def worker(seed: int) -> None:
        nonlocal left
        local = random.Random(seed)
        while not done() and left > 0:
            left -= 1
            pid = busy if busy and local.random() < 2 / 3 else local.choice(c.pids)
            if not await c.post(client, pid, local):
                await asyncio.sleep(0.02)  # back off a failed attempt (pacing, not a wait)

    await asyncio.gather(*(worker(rng.getrandbits(32)) for _ in range(WORKERS)))
    assert done(), f"the load did not reach its goal in {attempts} attempts"


async def _kill_round(
    client: httpx.AsyncClient,
    conn: asyncpg.Connection,
    c: Clients,
    busy: str,
    rng: random.Random,
    store: str,
) -> None:
    """Load ``busy``; SIGKILL its owner after a random number of acks; wait for a takeover."""
    url = None
    for _ in range(1000):  # bounded: a post makes the node asked (or the owner) hold the lease
        if (url := await _owner(conn, busy)) is not None:
            break
        await c.post(client, busy, rng)
    victim = next(n for n in c.nodes if n.url == url)
    kill_after = len(c.acked[busy]) + rng.randint(10, 60)
    killed = asyncio.Event()

    async def killer() -> None:
        for _ in range(100_000):  # bounded poll of the acknowledgement count
            if len(c.acked[busy]) >= kill_after:
                break
            await asyncio.sleep(0.005)
        await victim.kill()
        killed.set()

    kill = asyncio.create_task(killer())
    after: list[int] = []  # acks for busy counted once the victim is dead

    def taken_over() -> bool:
        if killed.is_set() and not after:
            after.append(len(c.acked[busy]))
        return bool(after) and len(c.acked[busy]) >= after[0] + 5

    await _load(client, c, rng, taken_over, busy=busy)
    await kill
    # The acks after the victim died came from another node; the lease says so too.
    assert await _owner(conn, busy) != victim.url
    await victim.start(store)  # the killed node comes back (same data dir, same URL)
