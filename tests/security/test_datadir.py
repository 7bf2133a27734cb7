"""Issue 19 part 4: one node per data directory, and a private data directory."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
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
