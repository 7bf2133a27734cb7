"""The Lua memory cap: it holds for C allocations, a message past it is rolled
back and the process goes on, and a node takes it from its configuration."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from aonode.config import DEFAULT_LUA_MEMORY, NodeConfig, from_env
from aonode.errors import ConfigError
from aonode.node import Node
from aonode.process.runtime.base import Limits
from aonode.scheduler.timestamp import OfflineSource
from aonode.store.sqlite import SQLiteStore
from aonode.wallet import Wallet
from tests.conftest import sign_message, sign_process
from tests.process.conftest import ProcFactory
from tests.process.test_device_http import LUA

MIB = 1024 * 1024
CAPPED = Limits(instructions=200_000_000, memory=256 * MIB, lua_memory=8 * MIB)


@pytest.mark.parametrize(
    "code",
    [
        "local s = string.rep('x', 2^24)",  # one C allocation past the cap
        "local s = string.rep('x', 2^30)",
        "local t, i = {}, 0 while true do i = i + 1 t[i] = i end",  # a table growing forever
        "local t = {} for i = 1, 1e9 do t[i] = tostring(i) end",  # strings made in C
        "local t = {} for i = 1, 64 do t[i] = string.rep(tostring(i), 2^17) end "
        "local s = table.concat(t)",  # table.concat's buffer in C
    ],
)
def test_allocation_past_the_cap_rolls_back(make_proc: ProcFactory, code: str) -> None:
    proc = make_proc(limits=CAPPED)
    proc.eval("X = 20")
    res = proc.eval(f"X = 'touched'; {code}")
    assert res.error == "memory limit exceeded"
    assert res.extra["rolled-back"] is True
    assert proc.value("X") == "20"
    assert proc.value("#string.rep('x', 2^20)") == str(2**20)  # still usable, cap still on
    assert proc.eval("local s = string.rep('x', 2^24)").error == "memory limit exceeded"


def test_lua_memory_overrides_the_wasm_cap_for_lua_only(make_proc: ProcFactory) -> None:
    """Under the 256 MiB default a 16 MiB string is fine; under lua_memory=8MiB it is not."""
    loose = make_proc(limits=Limits(instructions=200_000_000, memory=256 * MIB))
    assert loose.value("#string.rep('x', 2^24)") == str(2**24)


def test_config_from_env_and_validation() -> None:
    assert NodeConfig().lua_memory == DEFAULT_LUA_MEMORY == 64 * MIB
    assert from_env(NodeConfig(), {"AONODE_LUA_MEMORY": "16MiB"}).lua_memory == 16 * MIB
    with pytest.raises(ConfigError, match="lua memory"):
        replace(NodeConfig(), lua_memory=1000).validated()


def test_serve_help_names_the_option() -> None:
    from typer.testing import CliRunner

    from aonode.ops.cli import app

    out = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"}).output
    assert "--lua-memory" in out and "AONODE_LUA_MEMORY" in out


async def test_node_applies_its_configured_cap(
    tmp_path: Path, ed_wallet: Wallet, user_wallet: Wallet
) -> None:
    config = NodeConfig(data_dir=tmp_path, lua_memory=8 * MIB)
    node = Node(
        config,
        wallets=[ed_wallet],
        store=SQLiteStore(tmp_path / "aonode.sqlite3"),
        timestamps=OfflineSource(),
    )
    await node.start()
    try:
        proc = sign_process(user_wallet, node.address, extra=list(LUA))
        await node.schedule(proc)
        for code in ("X = 1", "X = 2; local s = string.rep('x', 2^24)", "return X"):
            await node.schedule(
                sign_message(user_wallet, proc.id, data=code.encode(), action="Eval")
            )
        worker = await node.processes.worker(await node.require_process(proc.id))
        assert (await worker.compute(2)).error == "memory limit exceeded"
        assert (await worker.compute(3)).data == "1"
    finally:
        await node.stop()


def test_the_heap_of_a_busy_process_stays_near_its_live_data(make_proc: ProcFactory) -> None:
    """The harness tunes the collector (pause 100, step 4x): a process handling message
    after message holds well under twice its live data (Lua's defaults: ~3.6x here)."""
    proc = make_proc()
    proc.eval("Count = 0 Handlers.add('Inc', { Action = 'Inc' }, function() Count = Count + 1 end)")
    vm = proc.rt._vm
    assert vm is not None
    lua = vm._lua  # the Lua state itself: a process's collectgarbage is a stub
    peak = 0.0
    for i in range(300):
        proc.send(tags=[("Action", "Inc")])
        if i >= 100:  # past the first cycles
            peak = max(peak, lua.execute("return collectgarbage('count')"))
    live = lua.execute("collectgarbage() return collectgarbage('count')")
    assert proc.value("Count") == "300"
    assert peak < 2 * live, (peak, live)
