"""The host side of an aos image: the emscripten and WASI imports it calls.

aos builds (emscripten, 32- and 64-bit) import about thirty functions.  Each is
answered here deterministically, from the message being handled and nothing
else:

* time: ``emscripten_date_now`` is the assignment's timestamp (ms);
  ``_gmtime_js``/``_localtime_js``/``_mktime_js``/``_tzset_js``/``strftime``
  work in UTC; ``_emscripten_get_now_is_monotonic`` is 0;
* output: ``fd_write`` to fd 1 or 2 is collected (it becomes ``Output``);
* memory: ``emscripten_resize_heap`` grows the linear memory as emscripten's
  JavaScript would, within the image's maximum and the process's memory cap;
  a growth refused by the cap is remembered, and fails the message;
* ``invoke_*`` trampolines and ``_emscripten_throw_longjmp``: Lua's
  ``setjmp``/``longjmp`` (every ``pcall``).  A trampoline saves the stack
  pointer, calls the table entry, and when a longjmp unwound through it,
  restores the stack and calls ``setThrew(1, 0)``, as emscripten's do;
* files, environment, processes: there are none.  The WeaveDrive hooks
  (``__asyncjs__weavedrive_*``) answer "not available" (-1), file syscalls
  ``ENOENT``/``ENOSYS``, ``fd_read`` ``EBADF``, ``exit``/``_abort_js`` trap.

An import this table does not know traps when called (the message fails), so
an image with unusual imports still instantiates and fails only if it uses them.
"""

from __future__ import annotations

import calendar
import ctypes
import time
from collections.abc import Callable
from typing import Any

import wasmtime

from aonode.process.runtime.wasm_fastcall import Calls

EBADF_WASI = 8
ESPIPE_WASI = 70
ENOENT = -44
ENOSYS = -52
PAGE = 65536


class HostTrap(Exception):
    """Raised inside a host function to stop the guest (exit, abort, unknown import)."""


class Longjmp(Exception):
    """emscripten's longjmp, unwinding to the nearest ``invoke_*``."""


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _missing(name: str) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        raise HostTrap(f"the image exports no {name}")

    return call


class Host:
    """Imports for one instance; ``bind`` gives them the instance's exports."""

    def __init__(self, store: wasmtime.Store, memory64: bool, memory_cap: int) -> None:
        self.store = store
        self.ptr = 8 if memory64 else 4
        self.memory_cap = memory_cap
        self.stdout = bytearray()
        self.now_ms = 0
        self.longjmp = False
        self.refused_growth = False
        self.memory: wasmtime.Memory | None = None
        self.calls = Calls(store)
        self._table: wasmtime.Table | None = None
        self._stack_get: Callable[..., Any] = _missing("emscripten_stack_get_current")
        self._stack_restore: Callable[..., Any] = _missing("_emscripten_stack_restore")
        self._set_threw: Callable[..., Any] = _missing("setThrew")

    # -- wiring ------------------------------------------------------------------------

    def imports(self, module: wasmtime.Module) -> list[wasmtime.Func]:
        out = []
        for imp in module.imports:
            ty = imp.type
            if not isinstance(ty, wasmtime.FuncType):
                what = f"{imp.module}.{imp.name}"
                raise HostTrap(f"the image imports {what}, which is not a function")
            name = imp.name or ""
            if name.startswith("invoke_"):
                fn = self._invoker(bool(ty.results))
            else:
                fn = self._lookup(name, ty)
            out.append(self.calls.host(ty, fn))
        return out

    def bind(self, exports: dict[str, Any]) -> None:
        memory = exports.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            raise HostTrap("the image exports no memory")
        self.memory = memory
        table = exports.get("__indirect_function_table")
        self._table = table if isinstance(table, wasmtime.Table) else None
        for attr, name in (
            ("_stack_get", "emscripten_stack_get_current"),
            ("_stack_restore", "_emscripten_stack_restore"),
            ("_set_threw", "setThrew"),
        ):
            fn = exports.get(name)
            if isinstance(fn, wasmtime.Func):
                setattr(self, attr, self.calls.export(fn))

    def _lookup(self, name: str, ty: wasmtime.FuncType) -> Callable[..., Any]:
        table: dict[str, Callable[..., Any]] = {
            "fd_write": self.fd_write,
            "fd_read": lambda *a: EBADF_WASI,
            "fd_close": lambda *a: 0,
            "fd_seek": lambda *a: ESPIPE_WASI,
            "environ_sizes_get": self.environ_sizes_get,
            "environ_get": lambda *a: 0,
            "emscripten_date_now": lambda: float(self.now_ms),
            "_emscripten_get_now_is_monotonic": lambda: 0,
            "emscripten_resize_heap": self.resize_heap,
            "_emscripten_memcpy_js": self.memcpy,
            "_emscripten_throw_longjmp": self.throw_longjmp,
            "_abort_js": self.abort,
            "exit": self.exit,
            "_emscripten_system": lambda cmd: 0 if not cmd else ENOSYS,
            "_tzset_js": self.tzset,
            "_gmtime_js": self.gmtime,
            "_localtime_js": self.gmtime,
            "_mktime_js": self.mktime,
            "strftime": self.strftime,
            "__asyncjs__weavedrive_open": lambda *a: -1,
            "__asyncjs__weavedrive_read": lambda *a: -1,
            "__asyncjs__weavedrive_close": lambda *a: -1,
            "__syscall_openat": lambda *a: ENOENT,
            "clock_time_get": self.clock_time_get,
        }
        if name in table:
            return table[name]
        if name.startswith("__syscall_") and [str(r) for r in ty.results] == ["i32"]:
            return lambda *a: ENOSYS

        def unknown(*args: Any) -> Any:
            raise HostTrap(f"the image called {name}, which this node does not provide")

        return unknown

    # -- memory helpers ------------------------------------------------------------------

    def _mem(self) -> wasmtime.Memory:
        assert self.memory is not None, "bind() first"
        return self.memory

    def read(self, addr: int, n: int) -> bytes:
        return bytes(self._mem().read(self.store, addr, addr + n))

    def write(self, addr: int, data: bytes) -> None:
        self._mem().write(self.store, data, addr)

    def _base(self) -> int:
        return ctypes.addressof(self._mem().data_ptr(self.store).contents)

    def cstring(self, addr: int, limit: int = 1 << 31) -> bytes:
        """The NUL-terminated string at ``addr`` (read in growing chunks, bounds-checked)."""
        mem = self._mem()
        size = mem.data_len(self.store)
        out = bytearray()
        pos, chunk = addr, 4096
        while pos < size and len(out) < limit:
            block = mem.read(self.store, pos, min(size, pos + chunk))
            end = block.find(0)
            if end >= 0:
                out += block[:end]
                return bytes(out)
            out += block
            pos += len(block)
            chunk = min(chunk * 4, 1 << 24)
        raise HostTrap("unterminated string in guest memory")

    def _word(self, value: int) -> bytes:
        return (value & ((1 << (8 * self.ptr)) - 1)).to_bytes(self.ptr, "little")

    # -- imports -------------------------------------------------------------------------

    def fd_write(self, fd: int, iov: int, iovcnt: int, pnum: int) -> int:
        total = 0
        step = 2 * self.ptr
        raw = self.read(iov, iovcnt * step)
        for i in range(iovcnt):
            ptr = int.from_bytes(raw[i * step : i * step + self.ptr], "little")
            length = int.from_bytes(raw[i * step + self.ptr : (i + 1) * step], "little")
            if fd in (1, 2) and length:
                self.stdout += self.read(ptr, length)
            total += length
        self.write(pnum, self._word(total))
        return 0

    def environ_sizes_get(self, count: int, size: int) -> int:
        self.write(count, self._word(0))
        self.write(size, self._word(0))
        return 0

    def clock_time_get(self, clock: int, precision: int, out: int) -> int:
        self.write(out, (self.now_ms * 1_000_000).to_bytes(8, "little"))
        return 0

    def memcpy(self, dest: int, src: int, num: int) -> None:
        base, size = self.calls.span(self._mem())
        if max(dest, src) + num > size or min(dest, src, num) < 0:
            raise HostTrap("memcpy out of bounds")
        ctypes.memmove(base + dest, base + src, num)

    def resize_heap(self, requested: int) -> int:
        """Grow like emscripten's JS (20% headroom, 64 KiB aligned), never past the cap."""
        mem = self._mem()
        old = mem.data_len(self.store)
        maximum = mem.type(self.store).limits.max
        heap_max = (maximum if maximum is not None else 1 << 16) * PAGE
        if requested > self.memory_cap:
            self.refused_growth = True
            return 0
        if requested > heap_max:
            return 0
        for cut in (1, 2, 4):
            over = min(int(old * (1 + 0.2 / cut)), requested + 100_663_296)
            new = max(requested, over)
            new = min(heap_max, self.memory_cap, (new + PAGE - 1) // PAGE * PAGE)
            try:
                mem.grow(self.store, (new - old + PAGE - 1) // PAGE)
                return 1
            except wasmtime.WasmtimeError:
                continue
        self.refused_growth = True
        return 0

    def _invoker(self, returns: bool) -> Callable[..., Any]:
        """An ``invoke_*``: call a table entry; a longjmp through it becomes ``setThrew``."""

        def invoke(index: int, *args: Any) -> Any:
            sp = self._stack_get()
            func = self.calls.table_entry(self._table, int(index)) if self._table else None
            if func is None:
                raise HostTrap(f"invoke of an empty table slot {index}")
            try:
                return func(*args)
            except Exception:
                if not self.longjmp:
                    raise
                self.longjmp = False
                self._stack_restore(sp)
                self._set_threw(1, 0)
                return 0 if returns else None

        return invoke

    def throw_longjmp(self) -> None:
        self.longjmp = True
        raise Longjmp()

    def abort(self) -> None:
        raise HostTrap("the image aborted")

    def exit(self, code: int) -> None:
        raise HostTrap(f"the image called exit({code})")

    def tzset(self, timezone: int, daylight: int, std_name: int, dst_name: int) -> None:
        self.write(timezone, (0).to_bytes(4, "little"))
        self.write(daylight, (0).to_bytes(4, "little"))
        self.write(std_name, b"UTC\0")
        self.write(dst_name, b"UTC\0")

    def _time_arg(self, args: tuple[int, ...]) -> tuple[int, int]:
        if len(args) == 3:  # wasm32: time_t legalised into (low, high)
            return _signed((args[0] & 0xFFFFFFFF) | (args[1] << 32), 64), args[2]
        return args[0], args[1]

    def _write_tm(self, addr: int, t: time.struct_time) -> None:
        fields = (
            t.tm_sec,
            t.tm_min,
            t.tm_hour,
            t.tm_mday,
            t.tm_mon - 1,
            t.tm_year - 1900,
            (t.tm_wday + 1) % 7,
            t.tm_yday - 1,
            0,
        )
        raw = b"".join(_signed(f, 32).to_bytes(4, "little", signed=True) for f in fields)
        self.write(addr, raw)
        gmtoff = 40 if self.ptr == 8 else 36
        self.write(addr + gmtoff, self._word(0))

    def _read_tm(self, addr: int) -> list[int]:
        raw = self.read(addr, 36)
        return [int.from_bytes(raw[i : i + 4], "little", signed=True) for i in range(0, 36, 4)]

    def gmtime(self, *args: int) -> None:
        when, tm = self._time_arg(args)
        try:
            t = time.gmtime(when)
        except (OverflowError, OSError, ValueError):
            t = time.gmtime(0)
        self._write_tm(tm, t)

    def mktime(self, tm: int) -> int:
        sec, minute, hour, mday, mon, year = self._read_tm(tm)[:6]
        try:
            year, mon = year + 1900 + mon // 12, mon % 12  # mktime normalises months too
            first = calendar.timegm((year, mon + 1, 1, hour, minute, sec))
            when = first + (mday - 1) * 86400
            self._write_tm(tm, time.gmtime(when))
        except (OverflowError, OSError, ValueError):
            return -1
        return when if self.ptr == 8 else _signed(when, 32)

    def strftime(self, s: int, maxsize: int, fmt: int, tm: int) -> int:
        f = self._read_tm(tm)
        try:
            wday = (f[6] + 6) % 7  # C: Sunday = 0; Python: Monday = 0
            t = time.struct_time((f[5] + 1900, f[4] + 1, f[3], f[2], f[1], f[0], wday, f[7] + 1, 0))
            spec = self.cstring(fmt, 4096).decode("utf-8", "replace")
            spec = spec.replace("%Z", "UTC").replace("%z", "+0000")  # never the host's zone
            text = time.strftime(spec, t)
        except (ValueError, OverflowError):
            return 0
        out = text.encode()
        if len(out) + 1 > maxsize:
            return 0
        self.write(s, out + b"\0")
        return len(out)
