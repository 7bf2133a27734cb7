"""Uploads to a real local Arweave node (arlocal): remote_confirmation and background.

No mock of the target: the node posts bundle transactions to arlocal, and the
tests read the items back from arlocal by id and verify them with arbundles.
Waiting is on the node's own completion signals (a reply, or
``Uploader.wait``), never on sleeps.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from aonode.codec.b64 import b64url_encode
from aonode.codec.bundle import data_root, pack, unpack
from aonode.config import Mode, NodeConfig
from aonode.errors import ConfigError
from aonode.http.server import free_port
from aonode.scheduler.upload import UploadOptions
from aonode.wallet import Wallet
from tests.arlocal_fixtures import INTEROP, Arlocal
from tests.conftest import LiveNode, sign_message, sign_process
from tests.upload_helpers import arbundles_verify, forward, held, register, tag, uploaded_by

ANS = {"content-type": "application/ans104"}
Live = Callable[..., Awaitable[LiveNode]]
SETTLE = 120.0  # a bound on waiting for the node's own signal, so a bug fails, not hangs


async def post(ln: LiveNode, raw: bytes, path: str = "/~scheduler@1.0/schedule") -> Any:
    r = await ln.client.post(path, content=raw, headers=ANS)
    assert r.status_code == 200, r.text
    return r.json()


def test_remote_confirmation_needs_a_target() -> None:
    with pytest.raises(ConfigError, match="--upload-url"):
        NodeConfig(mode=Mode.REMOTE_CONFIRMATION).validated()
    with pytest.raises(ConfigError, match="upload url"):
        NodeConfig(upload_url="arlocal:1984").validated()
    NodeConfig(mode=Mode.REMOTE_CONFIRMATION, upload_url="http://127.0.0.1:1984").validated()


def test_bundle_round_trip(user_wallet: Wallet) -> None:
    items = [sign_message(user_wallet, "A" * 43, data=os.urandom(n)).item for n in (0, 10, 3000)]
    assert unpack(pack([i.raw for i in items])) == [(i.id, i.raw) for i in items]


def test_data_root_matches_arweave_js() -> None:
    # one chunk, exactly one, a runt rest (split evenly), several, an odd layer
    sizes = [1, 262144, 262144 + 19456, 600000, 5 * 262144 + 7]
    blobs = [bytes((i * 7 + n) % 251 for i in range(n)) for n in sizes]
    script = (
        "const {computeRootHash} = require('arweave/node/lib/merkle');"
        "const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "Promise.all(input.map((b) => computeRootHash(Buffer.from(b, 'base64url'))))"
        ".then((r) => process.stdout.write(JSON.stringify("
        "r.map((x) => Buffer.from(x).toString('base64url')))));"
    )
    node = shutil.which("node")
    assert node is not None
    out = subprocess.run(
        [node, "-e", script],
        cwd=INTEROP,
        input=json.dumps([b64url_encode(b) for b in blobs]),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout) == [b64url_encode(data_root(b)) for b in blobs]


async def test_remote_confirmation_replies_after_arlocal_holds_the_items(
    live: Live, arlocal: Arlocal, rsa_wallet: Wallet, user_wallet: Wallet
) -> None:
    await register(arlocal.url, rsa_wallet.address)
    await register(arlocal.url, user_wallet.address, 0)
    ln = await live(mode=Mode.REMOTE_CONFIRMATION, wallets=[rsa_wallet], upload_url=arlocal.url)
    proc = sign_process(user_wallet, rsa_wallet.address)
    first = await post(ln, proc.item.raw)
    # the reply came: arlocal holds the assignment and the process message, now
    assert await held(arlocal.url, [first["id"], proc.id]) == {first["id"], proc.id}
    msg = sign_message(user_wallet, proc.id, data=b"hello arweave")
    second = await post(ln, msg.item.raw, f"/{proc.id}/schedule")
    assert second["slot"] == 1
    assert await held(arlocal.url, [second["id"], msg.id]) == {second["id"], msg.id}

    # fetched back from arlocal: the exact bytes, verified by arbundles
    up = await uploaded_by(arlocal.url, rsa_wallet.address)
    ids = [first["id"], proc.id, second["id"], msg.id]
    results = arbundles_verify([up.items[i] for i in ids])
    assert [r["valid"] for r in results] == [True] * 4
    assert [r["id"] for r in results] == ids
    assignment = results[2]
    assert tag(assignment, "Type") == "Assignment"
    assert tag(assignment, "Process") == proc.id
    assert tag(assignment, "Slot") == "1"
    assert tag(assignment, "Message") == msg.id
    assert tag(assignment, "Hash-Chain") == second["hash-chain"]
    assert up.items[msg.id] == msg.item.raw
    assert all(n == 1 for n in up.copies.values())

    status = (await ln.client.get("/~scheduler@1.0/status")).json()["upload"]
    assert status["target"] == arlocal.url
    assert (status["pending"], status["uploaded"], status["last-error"]) == (0, 2, None)

    # a re-post is answered with its slot (already uploaded), never a second one
    again = await post(ln, msg.item.raw, f"/{proc.id}/schedule")
    assert again["slot"] == 1


async def test_local_confirmation_uploads_in_the_background(
    live: Live, arlocal: Arlocal, rsa_wallet: Wallet, user_wallet: Wallet
) -> None:
    await register(arlocal.url, rsa_wallet.address)
    await register(arlocal.url, user_wallet.address, 0)
    ln = await live(wallets=[rsa_wallet], upload_url=arlocal.url)
    proc = sign_process(user_wallet, rsa_wallet.address)
    replies = [await post(ln, proc.item.raw)]
    msgs = [sign_message(user_wallet, proc.id, data=b"%d" % i) for i in range(20)]
    replies += await asyncio.gather(*(post(ln, m.item.raw, f"/{proc.id}/schedule") for m in msgs))
    assert ln.node.uploads is not None
    await asyncio.wait_for(ln.node.uploads.wait(proc.id, 20), SETTLE)
    expected = [r["id"] for r in replies] + [proc.id] + [m.id for m in msgs]
    assert await held(arlocal.url, expected) == set(expected)
    up = await uploaded_by(arlocal.url, rsa_wallet.address)
    assert set(expected) <= set(up.items)
    assert all(up.copies[i] == 1 for i in expected)


async def test_backlog_goes_up_in_bounded_batches_once_the_target_is_up(
    live: Live, arlocal_factory: Callable[..., Arlocal], rsa_wallet: Wallet, user_wallet: Wallet
) -> None:
    port = free_port("127.0.0.1")  # nothing listens there yet: the target is down
    ln = await live(wallets=[rsa_wallet], upload_url=f"http://127.0.0.1:{port}")
    assert ln.node.uploads is not None
    ln.node.uploads.options = UploadOptions(batch_slots=10)
    proc = sign_process(user_wallet, rsa_wallet.address)
    await post(ln, proc.item.raw)
    for i in range(30):
        await post(
            ln, sign_message(user_wallet, proc.id, data=b"%d" % i).item.raw, f"/{proc.id}/schedule"
        )
    status = (await ln.client.get("/~scheduler@1.0/status")).json()["upload"]
    assert (status["pending"], status["uploaded"]) == (31, 0)

    arlocal = arlocal_factory()
    await register(arlocal.url, rsa_wallet.address)
    await register(arlocal.url, user_wallet.address, 0)
    gate = await forward(port, arlocal.port)  # now the node's target is up
    try:
        await asyncio.wait_for(ln.node.uploads.wait(proc.id, 30), SETTLE)
    finally:
        gate.close()
    up = await uploaded_by(arlocal.url, rsa_wallet.address)
    assert len(up.bundles) == 4  # 10 + 10 + 10 + 1 slots: the backlog, bounded per bundle
    assert len(up.items) == 62 and all(n == 1 for n in up.copies.values())
    status = (await ln.client.get("/~scheduler@1.0/status")).json()["upload"]
    assert (status["pending"], status["uploaded"], status["bundles"]) == (0, 31, 4)


async def test_unreachable_target_fails_remote_confirmation_clearly_and_loses_nothing(
    live: Live, arlocal_factory: Callable[..., Arlocal], rsa_wallet: Wallet, user_wallet: Wallet
) -> None:
    port = free_port("127.0.0.1")
    ln = await live(
        mode=Mode.REMOTE_CONFIRMATION,
        wallets=[rsa_wallet],
        upload_url=f"http://127.0.0.1:{port}",
        abort_seconds=1.0,
    )
    proc = sign_process(user_wallet, rsa_wallet.address)
    r = await ln.client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
    assert r.status_code == 504, r.text
    error = r.json()["error"]
    assert error["code"] == "upload-timeout"
    assert "slot 0 of the local schedule" in error["message"]
    assert "unreachable" in error["message"]
    page = (await ln.client.get(f"/{proc.id}/schedule")).json()
    assert [a["message"] for a in page["assignments"]] == [proc.id]  # kept locally

    arlocal = arlocal_factory()
    await register(arlocal.url, rsa_wallet.address)
    await register(arlocal.url, user_wallet.address, 0)
    assert ln.node.uploads is not None
    gate = await forward(port, arlocal.port)  # the target comes up: the backlog goes by itself
    try:
        await asyncio.wait_for(ln.node.uploads.wait(proc.id, 0), SETTLE)
    finally:
        gate.close()
    assignment = page["assignments"][0]["id"]
    assert await held(arlocal.url, [assignment, proc.id]) == {assignment, proc.id}


async def test_paused_target_times_out_then_catches_up(
    live: Live, arlocal: Arlocal, rsa_wallet: Wallet, user_wallet: Wallet
) -> None:
    await register(arlocal.url, rsa_wallet.address)
    await register(arlocal.url, user_wallet.address, 0)
    ln = await live(
        mode=Mode.REMOTE_CONFIRMATION,
        wallets=[rsa_wallet],
        upload_url=arlocal.url,
        abort_seconds=1.0,
    )
    proc = sign_process(user_wallet, rsa_wallet.address)
    await post(ln, proc.item.raw)
    arlocal.process.send_signal(signal.SIGSTOP)  # accepts connections, answers nothing
    try:
        msg = sign_message(user_wallet, proc.id)
        r = await ln.client.post(f"/{proc.id}/schedule", content=msg.item.raw, headers=ANS)
        assert r.status_code == 504, r.text
        assert "slot 1 of the local schedule" in r.json()["error"]["message"]
    finally:
        arlocal.process.send_signal(signal.SIGCONT)
    assert ln.node.uploads is not None
    await asyncio.wait_for(ln.node.uploads.wait(proc.id, 1), SETTLE)
    assert msg.id in await held(arlocal.url, [msg.id])
