"""Issue 19 part 4: one node per data directory, and a private data directory."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import stat
import sys
import threading
from pathlib import Path

import pytest

from aonode.config import NodeConfig
from aonode.datadir import LOCK_NAME, DataDirLock
from aonode.errors import DataDirLocked
from aonode.http.server import free_port
from aonode.node import Node
from aonode.scheduler.timestamp import OfflineSource
from aonode.wallet import Wallet
from tests.test_crash import start_node, stop_node


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def test_a_second_serve_on_the_same_dir_exits_2_naming_dir_and_holder(
    tmp_path: Path,
) -> None:
    data = tmp_path / "node"
    first, _, _ = await start_node(data, free_port("127.0.0.1"))
    try:
        second = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "aonode.ops.cli",
            "serve",
            "--data-dir",
            str(data),
            "--port",
            str(free_port("127.0.0.1")),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(second.communicate(), 120)
        assert second.returncode == 2, (out, err)
        assert out == b""  # it never said it was listening
        lines = err.decode().strip().splitlines()
        assert len(lines) == 1, lines
        assert str(data.absolute()) in lines[0] and f"pid {first.pid}" in lines[0]
        assert (data / LOCK_NAME).read_text().strip() == str(first.pid)
    finally:
        await stop_node(first)
    # the lock went with the first node: a new one starts
    again, _, _ = await start_node(data, free_port("127.0.0.1"))
    await stop_node(again)


async def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    data = tmp_path / "node"
    first, _, _ = await start_node(data, free_port("127.0.0.1"))
    first.send_signal(signal.SIGKILL)
    await first.wait()
    again, _, _ = await start_node(data, free_port("127.0.0.1"))
    await stop_node(again)


async def test_two_nodes_in_one_process_exclude_each_other(
    tmp_path: Path, ed_wallet: Wallet
) -> None:
    config = NodeConfig(data_dir=tmp_path / "d")
    one = Node(config, wallets=[ed_wallet], timestamps=OfflineSource())
    two = Node(config, wallets=[ed_wallet], timestamps=OfflineSource())
    await one.start()
    try:
        with pytest.raises(DataDirLocked) as caught:
            await two.start()
        assert caught.value.pid == os.getpid()
        assert caught.value.path == str((tmp_path / "d").absolute())
        assert caught.value.code == "data-dir-locked"
    finally:
        await one.stop()
    await two.start()  # released on stop
    await two.stop()


async def test_the_data_dir_is_private(tmp_path: Path) -> None:
    data = tmp_path / "node"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)  # an existing, readable directory is made private
    proc, _, _ = await start_node(data, free_port("127.0.0.1"))
    try:
        assert mode_of(data) == 0o700
        db = data / "aonode.sqlite3"
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), data / "wallet.json"):
            assert path.exists(), path
            assert mode_of(path) == 0o600, (path, oct(mode_of(path)))
    finally:
        await stop_node(proc)


def test_lock_release_is_idempotent_and_reacquirable(tmp_path: Path) -> None:
    lock = DataDirLock(tmp_path / "x")
    lock.acquire()
    assert lock.held and mode_of(tmp_path / "x") == 0o700
    lock.release()
    lock.release()
    other = DataDirLock(tmp_path / "x")
    other.acquire()
    with pytest.raises(DataDirLocked):
        lock.acquire()
    other.release()


# A process that locks the data directory's lock file like a supervisor's orphaned
# worker: the pid written in the file (argv[2]) is not its own; it holds the lock
# until its stdin closes.
_ORPHAN = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
os.ftruncate(fd, 0)
os.pwrite(fd, (sys.argv[2] + "\\n").encode(), 0)
print("locked", flush=True)
sys.stdin.read()
"""


async def _orphan_holder(data: Path, written_pid: int) -> asyncio.subprocess.Process:
    await asyncio.to_thread(data.mkdir, parents=True, exist_ok=True)
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _ORPHAN,
        str(data / LOCK_NAME),
        str(written_pid),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdout is not None
    assert await holder.stdout.readline() == b"locked\n"
    return holder


async def _dead_pid() -> int:
    gone = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await gone.wait()  # reaped: its pid names no process now
    return gone.pid


async def test_a_lock_held_by_a_killed_supervisors_workers_is_waited_for(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """kill -9 of a supervisor leaves its workers draining with the inherited lock:
    a node started meanwhile waits for them instead of exiting DataDirLocked."""
    data = tmp_path / "node"
    holder = await _orphan_holder(data, await _dead_pid())
    waiting = threading.Event()

    class Seen(logging.Handler):
        def emit(self, record: object) -> None:
            if "waiting for its workers" in getattr(record, "msg", ""):
                waiting.set()

    seen = Seen()
    logging.getLogger("aonode.datadir").addHandler(seen)
    lock = DataDirLock(data)
    try:
        taking = asyncio.create_task(asyncio.to_thread(lock.acquire))
        seen_wait = asyncio.create_task(asyncio.to_thread(waiting.wait, 30))
        await asyncio.wait({taking, seen_wait}, return_when=asyncio.FIRST_COMPLETED)
        assert not taking.done(), taking.exception()  # it waits: it does not fail
        assert await seen_wait
        assert holder.stdin is not None
        holder.stdin.close()  # the orphan finishes: its lock goes
        await holder.wait()
        await taking
        assert lock.held
    finally:
        logging.getLogger("aonode.datadir").removeHandler(seen)
        lock.release()
        if holder.returncode is None:
            holder.kill()
            await holder.wait()


async def test_a_lock_whose_writer_is_alive_is_refused_at_once(tmp_path: Path) -> None:
    data = tmp_path / "node"
    holder = await _orphan_holder(data, os.getpid())  # "written by" a live process
    try:
        with pytest.raises(DataDirLocked) as err:
            DataDirLock(data).acquire()
        assert err.value.pid == os.getpid()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        await holder.wait()
