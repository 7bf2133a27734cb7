"""WASM process snapshots: the format's helpers.

``AOWASM1\\0`` ‖ header length (4 bytes, big-endian) ‖ JSON header (sorted keys:
``image``, ``memory`` size, ``runs`` of 64 KiB chunks holding a non-zero
byte, ``next-nonce``, ``globals``) ‖ the bytes of those runs, zstd-compressed.
"""

from __future__ import annotations

import ctypes
from typing import Any

import orjson

SNAPSHOT_MAGIC = b"AOWASM1\0"

_CHUNK = 1 << 16
_ZERO = bytes(_CHUNK)


def nonzero_runs(base: int, start: int, end: int) -> list[tuple[int, int]]:
    """[start, end) runs of 64 KiB chunks of memory at ``base`` that hold a non-zero byte.

    Snapshots keep only these: aos's 68 MiB of memory is mostly untouched, and
    writing its zeros back would make all of it resident."""
    runs: list[tuple[int, int]] = []
    for off in range(start, end, _CHUNK):
        n = min(_CHUNK, end - off)
        if ctypes.string_at(base + off, n) != _ZERO[:n]:
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
