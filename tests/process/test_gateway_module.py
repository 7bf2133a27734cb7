"""A module named by id that the node does not hold is fetched from the
configured Arweave gateway (here arlocal, a real local Arweave node)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Awaitable, Callable

from aonode.wallet import Wallet
from tests.arlocal_fixtures import INTEROP, Arlocal
from tests.conftest import LiveNode, sign_process
from tests.process.test_device_http import LUA, send

ANS = {"content-type": "application/ans104"}
Live = Callable[..., Awaitable[LiveNode]]


def post_tx(url: str, data: str) -> str:
    node = shutil.which("node")
    assert node is not None, "node is not on PATH: run ./scripts/test"
    run = subprocess.run(
        [node, "arlocal_post_tx.js"],
        cwd=INTEROP,
        capture_output=True,
        timeout=120,
        input=json.dumps(
            {
                "url": url,
                "data": data,
                "tags": [{"name": "Content-Type", "value": "application/lua"}],
            }
        ).encode(),
        check=False,
    )
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    tx_id: str = json.loads(run.stdout)["id"]
    return tx_id


async def test_module_from_the_gateway(
    live: Live, user_wallet: Wallet, arlocal: Arlocal, hyper_aos: str
) -> None:
    tx_id = await asyncio.to_thread(post_tx, arlocal.url, hyper_aos)
    ln = await live(gateway=arlocal.url)
    proc = sign_process(
        user_wallet,
        ln.node.address,
        extra=[*LUA, ("Module", tx_id), ("Authority", user_wallet.address)],
    )
    r = await ln.client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    for code in ("X = 10", "X = X * 2"):
        await send(ln, user_wallet, proc.id, code)
    last = await send(ln, user_wallet, proc.id, "return X")
    r = await ln.client.get(f"/{proc.id}/compute", params={"slot": last})
    assert r.json()["results"]["data"] == "20"
    # an id the gateway does not know is still refused at spawn
    ghost = sign_process(
        user_wallet, ln.node.address, data=b"g", extra=[*LUA, ("Module", tx_id[::-1])]
    )
    r = await ln.client.post("/~scheduler@1.0/schedule", content=ghost.item.raw, headers=ANS)
    assert r.status_code == 400 and r.json()["error"]["code"] == "module-not-found"
