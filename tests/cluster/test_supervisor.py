"""A supervisor with 2 real worker processes on one 127.0.0.1 port."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from aonode.cluster.supervisor import Supervisor
from aonode.config import NodeConfig
from aonode.datadir import DataDirLock
from aonode.errors import DataDirLocked
from aonode.store.sqlite import SCHEMA_VERSION
from tests.cluster.conftest import Cluster, Events

pytestmark = pytest.mark.crash


async def status(url: str) -> dict[str, object]:
    # a fresh connection per request: SO_REUSEPORT picks a worker per connection
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.get(f"{url}/~scheduler@1.0/status")
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


async def test_both_workers_serve_and_a_killed_one_comes_back(cluster: Cluster) -> None:
    sup, events = cluster.supervisor, cluster.events
    first = list(sup.pids)
    assert all(first) and len(set(first)) == 2 and os.getpid() not in first
    # every worker is the same node: one wallet, created once by the supervisor
    answers = [await status(cluster.url) for _ in range(4)]
    assert {a["address"] for a in answers} == {sup.address}

    for victim in (0, 1):
        mark = len(events.seen)
        old = sup.pids[victim]
        assert old is not None
        os.kill(old, signal.SIGKILL)
        assert await events.next("exited", victim, mark) == old
        # the other worker alone answers on the address while the victim is down
        for _ in range(4):
            assert (await status(cluster.url))["address"] == sup.address
        new = await events.next("ready", victim, mark)
        assert new != old and sup.pids[victim] == new
        assert (await status(cluster.url))["address"] == sup.address
        with pytest.raises(ProcessLookupError):
            os.kill(old, 0)


async def test_the_supervisor_holds_the_data_dir(cluster: Cluster) -> None:
    with pytest.raises(DataDirLocked) as info:
        DataDirLock(cluster.data_dir).acquire()
    assert info.value.pid == os.getpid()  # the supervisor's pid, not a worker's


async def test_stopping_ends_every_worker_and_frees_the_directory(tmp_path: Path) -> None:
    config = NodeConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "data")
    sup = Supervisor(config, 2)
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    run = asyncio.create_task(sup.run(on_ready=ready.set_result, stop=stop))
    await ready
    pids = [p for p in sup.pids if p is not None]
    stop.set()
    assert await run == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    lock = DataDirLock(tmp_path / "data")
    lock.acquire()  # free again
    lock.release()


async def test_a_worker_that_cannot_start_stops_the_cluster(tmp_path: Path) -> None:
    # a store URL no worker can open: exit 1, no restart loop
    config = NodeConfig(
        host="127.0.0.1", port=0, data_dir=tmp_path / "data", store="postgresql://127.0.0.1:1/x"
    )
    events = Events()
    sup = Supervisor(config, 2, observe=events)
    assert await sup.run(stop=asyncio.Event()) == 1
    assert all(e == "exited" for e, _, _ in events.seen)


def gone(pid: int, timeout: float) -> bool:
    """Whether ``pid`` (not our child: no waitpid) exits within ``timeout`` (a pidfd)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    finally:
        os.close(fd)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=str)
def test_a_signalled_supervisor_takes_its_workers_along(tmp_path: Path, sig: int) -> None:
    """SIGTERM/SIGINT: forwarded, exit 0; kill -9: the workers see its pipe close."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        from aonode.cluster.supervisor import Supervisor
        from aonode.config import NodeConfig
        sup = Supervisor(NodeConfig(port=0, data_dir=Path({str(tmp_path / "data")!r})), 2)
        def ready(url):
            print(" ".join(str(p) for p in sup.pids), flush=True)
        sys.exit(asyncio.run(sup.run(on_ready=ready)))
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2
        proc.send_signal(sig)  # kill -9: no chance to forward anything
        code = proc.wait()
        assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 0)
        for pid in pids:  # each sees its supervisor's pipe close and stops
            assert gone(pid, timeout=60), f"worker {pid} outlived its supervisor"
        lock = DataDirLock(tmp_path / "data")
        lock.acquire()  # the last worker gone, the directory is free
        lock.release()
    finally:
        if proc.poll() is None:
            proc.kill()


async def test_the_store_is_made_once_before_any_worker_opens_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N workers initialising one fresh SQLite file together could meet in its lock
    upgrade ("database is locked" at once) and the cluster failed to start."""
    seen: list[tuple[str, int]] = []

    async def spawn(self: Supervisor, spec: object) -> None:
        conn = sqlite3.connect(tmp_path / "data" / "aonode.sqlite3")
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            seen.append((mode, conn.execute("PRAGMA user_version").fetchone()[0]))
        finally:
            conn.close()
        raise RuntimeError("no worker in this test")

    monkeypatch.setattr(Supervisor, "_spawn", spawn)
    supervisor = Supervisor(NodeConfig(port=0, data_dir=tmp_path / "data"), 2)
    with pytest.raises(BaseExceptionGroup):  # the spawn's error, from the task group
        await supervisor.run(stop=asyncio.Event())
    assert seen and seen[0] == ("wal", SCHEMA_VERSION)
