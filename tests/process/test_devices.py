"""Execution devices as plug-ins: the registry's rules, and a toy device on a real node.

The toy ``echo@1.0`` follows the recipe for adding a device: a runtime, a
spawn check, one :class:`ExecutionDevice` value, one ``register`` call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from aonode.errors import InvalidMessage
from aonode.message import Message
from aonode.process.device import ProcessDevice, builtin_devices
from aonode.process.devices import DeviceContext, DeviceRegistry, ExecutionDevice
from aonode.process.lua_device import LUA_DEVICE
from aonode.process.runtime.base import Json, Results, Runtime
from aonode.process.wasm_device import GENESIS_WASM_DEVICE, WASM64_DEVICE
from aonode.process.worker import RuntimeFactory
from aonode.store.sqlite import SQLiteStore
from aonode.wallet import Wallet
from tests.conftest import LiveNode, sign_message, sign_process

ANS = {"content-type": "application/ans104"}
Live = Callable[..., Awaitable[LiveNode]]


# -- the toy device: each message's Data back, behind the process's Echo-Prefix --------


class EchoRuntime:
    """Echoes each message's Data; its state is how many messages it has seen."""

    def __init__(self, prefix: str, seen: int = 0) -> None:
        self.prefix, self.seen = prefix, seen

    def boot(self, process_msg: Json, env: Json) -> Results:
        return Results(data="booted")

    def apply(self, msg: Json, env: Json) -> Results:
        self.seen += 1
        return Results(data=f"{self.prefix}{msg['Data']}", output=f"#{self.seen}")

    def dryrun(self, msg: Json, env: Json) -> Results:
        return Results(data=f"{self.prefix}{msg['Data']}", output=f"#{self.seen}")

    def snapshot(self) -> bytes:
        return str(self.seen).encode()

    def close(self) -> None:
        pass


async def echo_runtime(process: Message, context: DeviceContext) -> RuntimeFactory:
    prefix = process.keys["echo-prefix"]

    def factory(snapshot: bytes | None) -> Runtime:
        return EchoRuntime(prefix, int(snapshot or b"0"))

    return factory


async def check_echo(process: Message, context: DeviceContext) -> None:
    if "echo-prefix" not in process.keys:
        raise InvalidMessage("echo@1.0 needs an Echo-Prefix tag", code="missing-prefix")


ECHO = ExecutionDevice("echo@1.0", runtime=echo_runtime, check=check_echo)


async def schedule(ln: LiveNode, message: Message) -> tuple[int, Json]:
    r = await ln.client.post("/~scheduler@1.0/schedule", content=message.item.raw, headers=ANS)
    doc: Json = r.json()
    return r.status_code, doc


async def test_a_toy_device_registered_on_a_node_runs_its_processes(
    live: Live, user_wallet: Wallet
) -> None:
    ln = await live()
    echo = [("Execution-Device", "echo@1.0")]
    proc = sign_process(user_wallet, ln.node.address, extra=echo)
    status, doc = await schedule(ln, proc)
    assert status == 400 and doc["error"]["code"] == "unsupported-execution-device"

    ln.node.processes.devices.register(ECHO)
    status, doc = await schedule(ln, proc)  # the toy's own spawn check
    assert status == 400 and doc["error"]["code"] == "missing-prefix"
    proc = sign_process(user_wallet, ln.node.address, extra=[*echo, ("Echo-Prefix", "> ")])
    status, doc = await schedule(ln, proc)
    assert status == 200, doc
    pid = proc.id
    for data in (b"hello", b"world"):
        status, doc = await schedule(ln, sign_message(user_wallet, pid, data=data))
        assert status == 200, doc
    r = await ln.client.get(f"/{pid}/compute", params={"slot": 1})
    assert r.status_code == 200, r.text
    assert r.json()["results"]["data"] == "> hello"
    r = await ln.client.get(f"/{pid}/compute", params={"slot": 2})
    assert (r.json()["results"]["data"], r.json()["results"]["output"]) == ("> world", "#2")
    assert (await ln.client.get(f"/{pid}/now/results/data")).text == "> world"
    # built-ins still run beside it
    lua = sign_process(user_wallet, ln.node.address, extra=[("Execution-Device", "lua@5.3a")])
    assert (await schedule(ln, lua))[0] == 200


async def test_registering_a_device_reaches_no_other_node(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite3")
    await store.open()
    one, other = ProcessDevice(store), ProcessDevice(store)
    try:
        one.devices.register(ECHO)
        assert "echo@1.0" in one.devices.names()
        assert "echo@1.0" not in other.devices.names()
        with pytest.raises(ValueError):
            one.devices.register(ECHO)
    finally:
        await one.close()
        await other.close()
        await store.close()


def process(user: Wallet, *devices: str) -> Message:
    if len(devices) == 1:
        tags = [("Execution-Device", devices[0])]
    else:
        tags = [("Execution-Device", "stack@1.0"), ("Execution-Stack", ", ".join(devices))]
    return sign_process(user, "S" * 43, extra=tags)


@pytest.mark.parametrize(
    ("devices", "expected"),
    [
        ((), None),
        (("lua@5.3a",), LUA_DEVICE),
        (("Lua@5.3a",), LUA_DEVICE),
        (("lua@5.3a", "patch@1.0"), LUA_DEVICE),
        (("wasi@1.0", "json-iface@1.0", "wasm-64@1.0"), WASM64_DEVICE),
        (("wasm-64@1.0", "patch@1.0"), WASM64_DEVICE),
        (("genesis-wasm@1.0",), GENESIS_WASM_DEVICE),
        (("wasm-64@1.0", "genesis-wasm@1.0"), GENESIS_WASM_DEVICE),
    ],
)
def test_the_builtin_device_rules_select(
    user_wallet: Wallet, devices: tuple[str, ...], expected: ExecutionDevice | None
) -> None:
    registry = DeviceRegistry(builtin_devices())
    assert registry.select(process(user_wallet, *devices)) is expected


@pytest.mark.parametrize(
    "devices",
    [
        ("evm@1.0",),
        ("patch@1.0",),
        ("wasi@1.0",),
        ("lua@5.3a", "wasi@1.0"),
        ("lua@5.3a", "genesis-wasm@1.0"),
        ("lua@5.3a", "evm@1.0"),
    ],
)
def test_the_builtin_device_rules_refuse(user_wallet: Wallet, devices: tuple[str, ...]) -> None:
    with pytest.raises(InvalidMessage) as caught:
        DeviceRegistry(builtin_devices()).select(process(user_wallet, *devices))
    assert caught.value.code == "unsupported-execution-device"


def test_a_wasm_module_claims_a_process_naming_no_device() -> None:
    registry = DeviceRegistry(builtin_devices())
    assert registry.claiming(b"\0asm\x01\0\0\0", "application/wasm") is GENESIS_WASM_DEVICE
    assert registry.claiming(b"\0asm\x01\0\0\0", "") is GENESIS_WASM_DEVICE
    assert registry.claiming(b"return 1", "application/lua") is None
    assert registry.claiming(b"\0asm\x01\0\0\0", "application/lua") is None
