"""WASM process snapshots: the format's helpers.

``AOWASM1\\0`` ‖ header length (4 bytes, big-endian) ‖ JSON header (sorted keys:
``image``, ``memory`` size, ``runs`` of 64 KiB chunks holding a non-zero
byte, ``next-nonce``, ``globals``) ‖ the bytes of those runs, zstd-compressed.

:func:`dump` writes one from an instance's linear memory, :func:`load` puts one
back into a fresh instance of the same image (the caller sets the globals and
the nonce from the header it returns).
"""

from __future__ import annotations

import ctypes
from typing import Any

import orjson
import wasmtime
import zstandard

from aonode.process.runtime.wasm_imports import PAGE

SNAPSHOT_MAGIC = b"AOWASM1\0"

_CHUNK = 1 << 16
_ZSTD_LEVEL = 3


def _libc_memcmp() -> Any:
    """libc's ``memcmp``, to compare memory with zeros where it lies (no copy); None
    where there is no C library to load (then chunks are copied out and compared)."""
    try:
        fn = ctypes.CDLL(None).memcmp
    except (OSError, AttributeError, TypeError):
        return None
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    return fn


_memcmp = _libc_memcmp()
_BLOCK = 16 * _CHUNK  # looked at whole first: most of aos's memory is untouched
_ZERO_BLOCK = bytes(_BLOCK)


def _is_zero(addr: int, n: int) -> bool:
    """The ``n`` bytes (at most ``_BLOCK``) at ``addr`` are all zero."""
    if _memcmp is not None:
        return bool(_memcmp(addr, _ZERO_BLOCK, n) == 0)
    return ctypes.string_at(addr, n) == _ZERO_BLOCK[:n]


def nonzero_runs(base: int, start: int, end: int) -> list[tuple[int, int]]:
    """[start, end) runs of 64 KiB chunks of memory at ``base`` that hold a non-zero byte.

    Snapshots keep only these: aos's 68 MiB of memory is mostly untouched, and
    writing its zeros back would make all of it resident.  A 1 MiB block that is
    all zero is skipped in one comparison; the chunks (counted from ``start``) are
    the same either way."""
    runs: list[tuple[int, int]] = []
    for block in range(start, end, _BLOCK):
        top = min(block + _BLOCK, end)
        if _is_zero(base + block, top - block):
            continue
        for off in range(block, top, _CHUNK):
            n = min(_CHUNK, top - off)
            if not _is_zero(base + off, n):
                if runs and runs[-1][1] == off:
                    runs[-1] = (runs[-1][0], off + n)
                else:
                    runs.append((off, off + n))
    return runs


def split_snapshot(snapshot: bytes) -> tuple[dict[str, Any], bytes]:
    if not snapshot.startswith(SNAPSHOT_MAGIC):
        raise ValueError("not a WASM process snapshot")
    n = int.from_bytes(snapshot[8:12], "big")
    header = orjson.loads(snapshot[12 : 12 + n])
    return header, snapshot[12 + n :]


def _base(memory: wasmtime.Memory, store: wasmtime.Store) -> tuple[int, int]:
    """Address and size of the linear memory (reading untouched pages keeps them so)."""
    size = memory.data_len(store)
    return ctypes.addressof(memory.data_ptr(store).contents), size


def dump(
    memory: wasmtime.Memory,
    store: wasmtime.Store,
    *,
    image: str,
    next_nonce: int | None,
    globals_: dict[str, Any],
) -> bytes:
    """The snapshot of ``memory`` with the instance's mutable globals and next nonce."""
    base, size = _base(memory, store)
    runs = nonzero_runs(base, 0, size)
    header = orjson.dumps(
        {
            "image": image,
            "memory": size,
            "runs": runs,
            "next-nonce": next_nonce,
            "globals": globals_,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    data = b"".join(ctypes.string_at(base + a, b - a) for a, b in runs)
    body = zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(data)
    return SNAPSHOT_MAGIC + len(header).to_bytes(4, "big") + header + body


def load(snapshot: bytes, memory: wasmtime.Memory, store: wasmtime.Store) -> dict[str, Any]:
    """Put ``snapshot``'s memory into ``memory`` (of a fresh instance); its header."""
    header, body = split_snapshot(snapshot)
    runs = [(int(a), int(b)) for a, b in header["runs"]]
    total = sum(b - a for a, b in runs)
    data = zstandard.ZstdDecompressor().decompress(body, max_output_size=total)
    if len(data) != total:
        raise ValueError("snapshot memory has the wrong size")
    current = memory.data_len(store)
    if header["memory"] > current:
        memory.grow(store, (header["memory"] - current + PAGE - 1) // PAGE)
    base, size = _base(memory, store)
    # what the fresh instance holds (its data segments) and the snapshot does not: zero it
    pos = 0
    for a, b in [*runs, (size, size)]:
        for x, y in nonzero_runs(base, pos, a):
            ctypes.memset(base + x, 0, y - x)
        pos = b
    offset = 0
    for a, b in runs:
        ctypes.memmove(base + a, data[offset : offset + b - a], b - a)
        offset += b - a
    return header
