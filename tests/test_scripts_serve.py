"""The README's first command, as a user runs it: ``./scripts/serve``.

It runs with the environment a user has (no ``AONODE_WORKERS`` from the test
suite's conftest), so the default worker count is what is exercised: the
ready line names the URL and the address, the wallet is generated in the data
directory, the node schedules a signed spawn and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import httpx

from aonode.http.server import free_port
from aonode.wallet import Wallet
from tests.conftest import sign_process

ROOT = Path(__file__).resolve().parent.parent
READY = re.compile(r"aonode listening on (http://127\.0\.0\.1:\d+) address=([A-Za-z0-9_-]{43})$")


async def test_scripts_serve_prints_url_and_address_and_schedules(
    tmp_path: Path, user_wallet: Wallet
) -> None:
    data = tmp_path / "data"
    port = free_port("127.0.0.1")
    env = {k: v for k, v in os.environ.items() if k != "AONODE_WORKERS"}
    proc = await asyncio.create_subprocess_exec(
        str(ROOT / "scripts" / "serve"),
        "--port",
        str(port),
        "--data-dir",
        str(data),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode().strip()
        ready = READY.fullmatch(line)
        assert ready is not None, line
        url, address = ready.groups()
        assert url == f"http://127.0.0.1:{port}"
        assert (data / "wallet.json").is_file()
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            r = await client.get("/~meta@1.0/info/address")
            assert r.status_code == 200 and address in r.text, r.text
            spawn = sign_process(user_wallet, address)
            r = await client.post(
                "/~scheduler@1.0/schedule",
                content=spawn.item.raw,
                headers={"content-type": "application/ans104"},
            )
            assert r.status_code == 200, r.text
            assert r.json()["slot"] == 0
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-2000:]
