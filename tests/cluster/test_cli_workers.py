"""``aonode serve --workers N`` from the command line, and the tools on its data directory."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import pytest

from aonode.http.server import free_port
from aonode.wallet import Wallet
from tests.cluster.test_routing import one_process_per_shard
from tests.conftest import sign_message
from tests.test_crash import ANS, start_node, stop_node

pytestmark = pytest.mark.crash


def worker_children(pid: int) -> list[int]:
    """The cluster workers ``pid`` started (from /proc: no psutil needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"aonode.cluster.worker" in cmdline:
            found.append(int(entry.name))
    return found


async def aonode(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aonode.ops.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out = (await proc.communicate())[0].decode()
    return proc.returncode or 0, out


async def test_workers_1_is_one_process(tmp_path: Path) -> None:
    node, url, _ = await start_node(tmp_path / "d", free_port("127.0.0.1"), workers=1)
    try:
        assert worker_children(node.pid) == []
        async with httpx.AsyncClient(timeout=30) as client:
            assert (await client.get(f"{url}/~meta@1.0/info")).status_code == 200
    finally:
        await stop_node(node)


async def test_serve_workers_2_then_verify_and_export_its_data_dir(
    tmp_path: Path, user_wallet: Wallet
) -> None:
    data_dir = tmp_path / "d"
    node, url, address = await start_node(
        data_dir, free_port("127.0.0.1"), env={"AONODE_WORKERS": "2"}
    )
    try:
        assert len(worker_children(node.pid)) == 2
        procs = one_process_per_shard(user_wallet, address)
        async with httpx.AsyncClient(timeout=30) as client:
            for proc in procs:
                r = await client.post(
                    f"{url}/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS
                )
                assert r.status_code == 200, r.text
                for k in range(5):
                    m = sign_message(user_wallet, proc.id, action=f"M{k}")
                    r = await client.post(
                        f"{url}/{proc.id}/schedule", content=m.item.raw, headers=ANS
                    )
                    assert r.status_code == 200 and r.json()["slot"] == k + 1, r.text
    finally:
        await stop_node(node)
    rc, out = await aonode("verify", "--", str(data_dir))
    assert rc == 0, out
    assert sorted(out.split()[1] for out in out.splitlines()) == ["6", "6"], out
    dump = tmp_path / "export.bin"
    rc, out = await aonode("export", "--store", f"sqlite:///{data_dir}/aonode.sqlite3", str(dump))
    assert rc == 0 and dump.stat().st_size > 0, out
