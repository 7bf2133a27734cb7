"""The raw calls across the WebAssembly boundary (``wasm_fastcall``) on a tiny WAT image:
values both ways, a host function's exception reaching the export's caller, a
longjmp through ``invoke_*``, and a table entry whose type is not the one its
``invoke_*`` says (a clean error, never a call with the wrong arguments)."""

from __future__ import annotations

import pytest
import wasmtime

from aonode.process.runtime import wasm_image
from aonode.process.runtime.wasm import WasmRuntime
from aonode.process.runtime.wasm_imports import Host, HostTrap

WAT = """
(module
  (import "env" "invoke_ii" (func $invoke_ii (param i32 i32) (result i32)))
  (import "env" "_abort_js" (func $abort))
  (import "env" "_emscripten_throw_longjmp" (func $throw))
  (import "env" "emscripten_date_now" (func $now (result f64)))
  (memory (export "memory") 1)
  (global $sp (mut i32) (i32.const 4096))
  (global $threw (mut i32) (i32.const 0))
  (table (export "__indirect_function_table") 4 funcref)
  (elem (i32.const 0) $double $two_args $jumps)
  (func $double (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2)))
  (func $two_args (param i32 i32) (result i32) (local.get 0))
  (func $jumps (param i32) (result i32) (global.set $sp (i32.const 1)) (call $throw) (i32.const 9))
  (func (export "emscripten_stack_get_current") (result i32) (global.get $sp))
  (func (export "_emscripten_stack_restore") (param i32) (global.set $sp (local.get 0)))
  (func (export "setThrew") (param i32 i32) (global.set $threw (local.get 0)))
  (func (export "threw") (result i32) (global.get $threw))
  (func (export "sp") (result i32) (global.get $sp))
  (func (export "via_table") (param i32 i32) (result i32)
    (call $invoke_ii (local.get 0) (local.get 1)))
  (func (export "wide") (param i64 f64) (result i64) (local.get 0))
  (func (export "now") (result f64) (call $now))
  (func (export "aborts") (call $abort))
)
"""


@pytest.fixture
def inst() -> tuple[Host, dict[str, object]]:
    store = wasmtime.Store(wasmtime.Engine())
    module = wasmtime.Module(store.engine, wasmtime.wat2wasm(WAT))
    host = Host(store, memory64=False, memory_cap=1 << 20)
    instance = wasmtime.Instance(store, module, host.imports(module))
    exports = instance.exports(store)
    ex: dict[str, object] = {e.name: exports[e.name] for e in module.exports}
    host.bind(ex)
    return host, ex


def fast(host: Host, ex: dict[str, object], name: str) -> object:
    fn = ex[name]
    assert isinstance(fn, wasmtime.Func)
    return host.calls.export(fn)


def test_values_both_ways(inst: tuple[Host, dict[str, object]]) -> None:
    host, ex = inst
    assert fast(host, ex, "via_table")(0, 21) == 42  # type: ignore[operator]
    assert fast(host, ex, "wide")(-(1 << 40), 1.5) == -(1 << 40)  # type: ignore[operator]
    host.now_ms = 1_700_000_000_123
    assert fast(host, ex, "now")() == 1_700_000_000_123.0  # type: ignore[operator]


def test_host_exception_reaches_the_caller(inst: tuple[Host, dict[str, object]]) -> None:
    host, ex = inst
    with pytest.raises(HostTrap, match="aborted"):
        fast(host, ex, "aborts")()  # type: ignore[operator]
    assert host.calls.pending is None
    assert fast(host, ex, "via_table")(0, 5) == 10  # type: ignore[operator]  # still usable


def test_longjmp_through_invoke(inst: tuple[Host, dict[str, object]]) -> None:
    host, ex = inst
    assert fast(host, ex, "via_table")(2, 0) == 0  # type: ignore[operator]
    assert fast(host, ex, "threw")() == 1  # type: ignore[operator]
    assert fast(host, ex, "sp")() == 4096  # type: ignore[operator]  # restored


@pytest.mark.parametrize("index", [1, 3, 99])  # wrong arity, an empty slot, out of bounds
def test_table_entry_of_another_type_is_an_error(
    inst: tuple[Host, dict[str, object]], index: int
) -> None:
    host, ex = inst
    with pytest.raises((HostTrap, wasmtime.WasmtimeError)):
        fast(host, ex, "via_table")(index, 5)  # type: ignore[operator]
    assert fast(host, ex, "via_table")(0, 4) == 8  # type: ignore[operator]


def test_host_trap_text_in_raw_mode() -> None:
    """A raw-mode call goes through wasmtime-py's own call: a host function's
    exception still names itself in the message's error, and leaves nothing pending."""
    image = wasm_image.load("fastcall-wat", wasmtime.wat2wasm(WAT))
    rt = WasmRuntime(image, json_iface=False)
    try:
        failed = rt.apply({"Nonce": 1, "Tags": [{"name": "Function", "value": "aborts"}]}, {})
        assert failed.error == "trap: the image aborted"
        ok = rt.apply({"Nonce": 2, "Tags": [{"name": "Function", "value": "now"}]}, {})
        assert ok.error is None and ok.data == "[0.0]"
    finally:
        rt.close()
