"""WASM images: checking, instrumenting, compiling once, and caching compiled code.

An image is the module message a process names (``image``, or ``Module`` for
legacy-network processes): a WebAssembly binary, 32- or 64-bit (memory64).
Before compiling we add one export per *mutable* global the image defines
(``__aonode_g<i>``): emscripten keeps the stack pointer and a few other
registers in globals that it does not export, and a snapshot that is to be
restored into a fresh instance must carry them with the linear memory.  The
rewrite touches only the export section; code and data are unchanged.

Compiling aos takes ~0.3 s; the compiled code is serialised to
``<cache_dir>/<image id>-<sha256 prefix>-wasmtime<version>-i<rewrite version>.cwasm``
and deserialised next time (wasmtime checks the engine and version itself and
refuses a mismatch, which recompiles).  Deserialising trusts the file: the
cache directory must be the node's own (it is under its data directory).
One engine serves the whole node.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

import wasmtime

from aonode.codec.varint import encode_uleb128 as _enc_uleb

log = logging.getLogger("aonode.process.wasm")

MAGIC = b"\0asm\x01\0\0\0"
GLOBAL_PREFIX = "__aonode_g"
REWRITE_VERSION = 1


class BadImage(ValueError):
    """The bytes are not a WebAssembly module this node can run."""


@cache
def engine() -> wasmtime.Engine:
    """The node's one engine: memory64 on, fuel metering on (the instruction budget)."""
    cfg = wasmtime.Config()
    cfg.wasm_memory64 = True
    cfg.consume_fuel = True
    cfg.cranelift_opt_level = "speed"
    return wasmtime.Engine(cfg)


@cache
def wasmtime_version() -> str:
    try:
        return metadata.version("wasmtime")
    except metadata.PackageNotFoundError:  # pragma: no cover - a vendored copy
        return "unknown"


def is_wasm(data: bytes) -> bool:
    return data[:4] == MAGIC[:4]


# -- the binary format, as far as the rewrite needs it ---------------------------------


def _uleb(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise BadImage("truncated LEB128 number")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def _skip_sleb(buf: bytes, pos: int) -> int:
    while buf[pos] & 0x80:
        pos += 1
    return pos + 1


def _name(buf: bytes, pos: int) -> tuple[bytes, int]:
    n, pos = _uleb(buf, pos)
    return buf[pos : pos + n], pos + n


def _skip_limits(buf: bytes, pos: int) -> int:
    flags = buf[pos]
    pos += 1
    _, pos = _uleb(buf, pos)
    if flags & 0x01:
        _, pos = _uleb(buf, pos)
    if flags & 0x08:  # custom page size
        _, pos = _uleb(buf, pos)
    return pos


def _skip_const_expr(buf: bytes, pos: int) -> int:
    while True:
        op = buf[pos]
        pos += 1
        if op == 0x0B:
            return pos
        if op in (0x41, 0x42):
            pos = _skip_sleb(buf, pos)
        elif op == 0x43:
            pos += 4
        elif op == 0x44:
            pos += 8
        elif op in (0x23, 0xD2):
            _, pos = _uleb(buf, pos)
        elif op == 0xD0:
            pos += 1
        elif op in (0x6A, 0x6B, 0x6C, 0x7C, 0x7D, 0x7E):
            continue
        else:
            raise BadImage(f"unsupported instruction 0x{op:02x} in a constant expression")


def _sections(buf: bytes) -> list[tuple[int, int, int, int]]:
    """(id, start of header, start of content, end of content) of every section."""
    out = []
    pos = 8
    while pos < len(buf):
        sid = buf[pos]
        size, start = _uleb(buf, pos + 1)
        if start + size > len(buf):
            raise BadImage("a section runs past the end of the module")
        out.append((sid, pos, start, start + size))
        pos = start + size
    return out


def _imported_globals(buf: bytes, start: int) -> int:
    count, pos = _uleb(buf, start)
    globals_ = 0
    for _ in range(count):
        _, pos = _name(buf, pos)
        _, pos = _name(buf, pos)
        kind = buf[pos]
        pos += 1
        if kind == 0:  # function: type index
            _, pos = _uleb(buf, pos)
        elif kind == 1:  # table: reference type, limits
            pos = _skip_limits(buf, pos + 1)
        elif kind == 2:  # memory
            pos = _skip_limits(buf, pos)
        elif kind == 3:  # global: value type, mutability
            globals_ += 1
            pos += 2
        elif kind == 4:  # tag
            _, pos = _uleb(buf, pos + 1)
        else:
            raise BadImage(f"unknown import kind {kind}")
    return globals_


def _mutable_globals(buf: bytes, start: int) -> list[int]:
    count, pos = _uleb(buf, start)
    mutable = []
    for i in range(count):
        pos += 1  # value type (numeric or funcref/externref: one byte)
        if buf[pos]:
            mutable.append(i)
        pos = _skip_const_expr(buf, pos + 1)
    return mutable


def instrument(wasm: bytes) -> bytes:
    """``wasm`` with every mutable defined global exported as ``__aonode_g<i>``."""
    if wasm[:8] != MAGIC:
        raise BadImage("not a WebAssembly 1.0 binary module (bad magic or version)")
    sections = _sections(wasm)
    imported = 0
    mutable: list[int] = []
    export_at: tuple[int, int, int] | None = None
    for sid, header, start, end in sections:
        if sid == 2:
            imported = _imported_globals(wasm, start)
        elif sid == 6:
            mutable = _mutable_globals(wasm, start)
        elif sid == 7:
            export_at = (header, start, end)
    if not mutable or export_at is None:
        return wasm
    header_start, start, end = export_at
    count, body = _uleb(wasm, start)
    extra = b"".join(
        _enc_uleb(len(name)) + name + b"\x03" + _enc_uleb(imported + i)
        for i in mutable
        for name in [f"{GLOBAL_PREFIX}{imported + i}".encode()]
    )
    content = _enc_uleb(count + len(mutable)) + wasm[body:end] + extra
    return wasm[:header_start] + b"\x07" + _enc_uleb(len(content)) + content + wasm[end:]


# -- compiling and caching ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Image:
    """A compiled, instrumented image and what the runtime needs to know about it."""

    id: str
    module: wasmtime.Module
    memory64: bool
    exports: frozenset[str]

    @property
    def has_handle(self) -> bool:
        return "handle" in self.exports


_compiled: dict[tuple[str, str], Image] = {}
_lock = threading.Lock()


def _describe(image_id: str, module: wasmtime.Module) -> Image:
    memory64 = False
    names = set()
    for export in module.exports:
        names.add(export.name)
        if isinstance(export.type, wasmtime.MemoryType):
            memory64 = memory64 or export.type.is_64
    if "memory" not in names:
        raise BadImage("the image exports no linear memory named 'memory'")
    for imp in module.imports:
        if not isinstance(imp.type, wasmtime.FuncType):
            raise BadImage(f"the image imports {imp.module}.{imp.name}, which is not a function")
    return Image(image_id, module, memory64, frozenset(names))


def load(image_id: str, wasm: bytes, cache_dir: Path | None = None) -> Image:
    """The compiled image, from memory, the disk cache, or compiled now (and cached)."""
    digest = hashlib.sha256(wasm).hexdigest()
    key = (image_id, digest)
    path = None
    if cache_dir is not None:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in image_id)[:64]
        name = f"{safe}-{digest[:16]}-wasmtime{wasmtime_version()}-i{REWRITE_VERSION}.cwasm"
        path = cache_dir / name
    with _lock:
        hit = _compiled.get(key)
    if hit is not None:
        if path is not None and not path.is_file():  # compiled for another node or a check
            _write_cache(path, hit.module)
        return hit
    module = None
    if path is not None and path.is_file():
        try:
            # read, not mapped: a file truncated under a mapping would crash the node
            module = wasmtime.Module.deserialize(engine(), path.read_bytes())
        except wasmtime.WasmtimeError as exc:  # another build or config: recompile
            log.info("cached image %s not usable (%s); compiling again", path, exc)
    if module is None:
        module = compile_image(wasm)
        if path is not None:
            _write_cache(path, module)
    image = _describe(image_id, module)
    with _lock:
        return _compiled.setdefault(key, image)


def _write_cache(path: Path, module: wasmtime.Module) -> None:
    """Write a compiled image atomically, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(bytes(module.serialize()))
    os.replace(tmp, path)


def compile_image(wasm: bytes) -> wasmtime.Module:
    """Instrument and compile (no cache); BadImage when it is not valid WebAssembly."""
    if not is_wasm(wasm):
        raise BadImage("not a WebAssembly module (no \\0asm magic)")
    try:
        return wasmtime.Module(engine(), instrument(wasm))
    except (wasmtime.WasmtimeError, IndexError) as exc:
        raise BadImage(f"the image does not compile: {exc}") from None


def forget_compiled() -> None:
    """Drop the in-memory compiled images (benchmarks measure the disk cache with it)."""
    with _lock:
        _compiled.clear()
