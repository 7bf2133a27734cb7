"""Calls across the WebAssembly boundary without wasmtime-py's per-call type work.

aos crosses the boundary about twenty times a message (``malloc``, ``handle``,
``free``; an ``invoke_*`` trampoline and its table call for every Lua
``pcall``; ``_emscripten_memcpy_js``).  wasmtime-py's ``Func.__call__`` and
its host trampoline rebuild the function's type, convert every value through
``Val`` and allocate a ``Caller`` each time: ~15 µs a crossing, a sixth of a
small message's time.  Here a function's type is read once, values go through
wasmtime's *unchecked* raw calls (``wasmtime_func_call_unchecked``,
``wasmtime_func_new_unchecked``), and the type is checked once per function
(table entries by their identity in the store), so an image whose table holds
a function of another type than its ``invoke_*`` says still gets a clean trap,
never a call with the wrong arguments.

Only numeric types (i32, i64, f32, f64) go the fast way; a function with any
other type falls back to wasmtime-py's own call.  A Python exception raised by
a host function travels back to the caller of the export that ran it (kept per
:class:`Calls`, not in wasmtime-py's process-wide slot).
"""

from __future__ import annotations

import ctypes
import itertools
import weakref
from collections.abc import Callable
from typing import Any, cast

import wasmtime
from wasmtime import _ffi as ffi

_Host = tuple[Callable[..., Any], tuple[tuple[int, str], ...], str | None]
_NAMES = {"i32": "i32", "i64": "i64", "f32": "f32", "f64": "f64"}


def _kinds(types: list[wasmtime.ValType]) -> tuple[str, ...] | None:
    out = []
    for t in types:
        name = _NAMES.get(str(t))
        if name is None:
            return None
        out.append(name)
    return tuple(out)


class Calls:
    """The fast calls of one store: its exports, its table's entries, its host functions."""

    def __init__(self, store: wasmtime.Store) -> None:
        self.store = store
        self._ctx = store._context()
        self.pending: BaseException | None = None  # a host function's exception, in flight
        self._by_identity: dict[tuple[int, int], Callable[..., Any]] = {}
        self._hosts: dict[int, _Host] = {}  # strong references: the global table is weak

    # -- guest functions -------------------------------------------------------------

    def export(self, func: wasmtime.Func) -> Callable[..., Any]:
        """A Python callable for ``func`` (arguments without the store)."""
        ty = func.type(self.store)
        params, results = _kinds(ty.params), _kinds(ty.results)
        if params is None or results is None or len(results) > 1:
            store = self.store
            return lambda *args: func(store, *args)
        return self._raw_call(func._func, params, results[0] if results else None)

    def _raw_call(self, fn: Any, params: tuple[str, ...], result: str | None) -> Callable[..., Any]:
        size = max(len(params), 1 if result else 0, 1)
        array = ffi.wasmtime_val_raw_t * size
        call, ctx, ref = ffi.wasmtime_func_call_unchecked, self._ctx, ctypes.byref(fn)
        trap_t = ctypes.POINTER(ffi.wasm_trap_t)
        setters = tuple(enumerate(params))

        def invoke(*args: Any) -> Any:
            if len(args) != len(params):
                raise wasmtime.WasmtimeError(f"{len(params)} arguments expected, {len(args)} given")
            raw = array()
            for (i, kind), value in zip(setters, args, strict=True):
                setattr(raw[i], kind, value)
            trap = trap_t()
            error = call(ctx, ref, raw, size, ctypes.byref(trap))
            if error or trap:
                self._raise(error, trap)
            return getattr(raw[0], result) if result else None

        return invoke

    def _raise(self, error: Any, trap: Any) -> None:
        exc: BaseException = (
            wasmtime.WasmtimeError._from_ptr(error) if error else wasmtime.Trap._from_ptr(trap)
        )
        pending, self.pending = self.pending, None
        raise (pending or exc)

    def table_entry(self, table: wasmtime.Table, index: int) -> Callable[..., Any] | None:
        """The function at ``index`` of ``table`` (``None``: empty or out of bounds)."""
        val = ffi.wasmtime_val_t()
        if not ffi.wasmtime_table_get(
            self._ctx, ctypes.byref(table._table), index, ctypes.byref(val)
        ):
            return None
        if int(cast(Any, val).kind) != ffi.WASMTIME_FUNCREF.value:
            return None
        ref = val.of.funcref
        key = (ref.store_id, getattr(ref, "__private") or 0)
        if key == (0, 0):
            return None
        found = self._by_identity.get(key)
        if found is None:
            copy = ffi.wasmtime_func_t(ref.store_id, getattr(ref, "__private"))
            found = self.export(wasmtime.Func._from_raw(copy))
            self._by_identity[key] = found
        return found

    def span(self, memory: wasmtime.Memory) -> tuple[int, int]:
        """(address, size) of ``memory`` now (it moves when it grows)."""
        ref = ctypes.byref(memory._memory)
        return (
            ctypes.cast(ffi.wasmtime_memory_data(self._ctx, ref), ctypes.c_void_p).value or 0,
            ffi.wasmtime_memory_data_size(self._ctx, ref),
        )

    # -- host functions --------------------------------------------------------------

    def host(self, ty: wasmtime.FuncType, fn: Callable[..., Any]) -> wasmtime.Func:
        """A host function of type ``ty`` calling ``fn`` with plain Python numbers."""
        params, results = _kinds(ty.params), _kinds(ty.results)
        if params is None or results is None or len(results) > 1:
            return wasmtime.Func(self.store, ty, fn)
        key = next(_KEYS)
        self._hosts[key] = (fn, tuple(enumerate(params)), results[0] if results else None)
        _HOSTS[key] = weakref.ref(self)
        out = ffi.wasmtime_func_t()
        ffi.wasmtime_func_new_unchecked(
            self._ctx, ty.ptr(), _trampoline, key, _finalize, ctypes.byref(out)
        )
        return wasmtime.Func._from_raw(out)


_KEYS = itertools.count(1)
# key → its store's Calls, weakly: the store (a C object) must not keep Python objects alive
_HOSTS: dict[int, weakref.ref[Calls]] = {}


@ffi.wasmtime_func_unchecked_callback_t  # type: ignore[untyped-decorator]
def _trampoline(key: int, caller: Any, raw: Any, n: int) -> int:
    calls = _HOSTS[key]()
    if calls is None:  # pragma: no cover - the store outlived its instance's objects
        text = b"host function gone"
        return ctypes.cast(ffi.wasmtime_trap_new(text, len(text)), ctypes.c_void_p).value or 0
    fn, params, result = calls._hosts[key]
    try:
        value = fn(*[getattr(raw[i], kind) for i, kind in params])
        if result is not None:
            setattr(raw[0], result, value)
        return 0
    except BaseException as exc:  # carried to the caller of the export that ran it
        calls.pending = exc
        text = b"host function raised"
        trap = ffi.wasmtime_trap_new(text, len(text))
        return ctypes.cast(trap, ctypes.c_void_p).value or 0


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)  # type: ignore[untyped-decorator]
def _finalize(key: int | None) -> None:
    _HOSTS.pop(key or 0, None)
