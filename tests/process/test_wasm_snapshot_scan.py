"""The scan that picks a WASM snapshot's memory runs: the same runs as copying each
64 KiB chunk out and comparing it with zeros, whatever the layout (a non-zero byte at
a chunk's first or last byte, in a 1 MiB block's last chunk, a partial last chunk,
a scan starting mid-memory as a restore does), so snapshot bytes do not change."""

from __future__ import annotations

import ctypes

import pytest

from aonode.process.runtime import wasm_snapshot

CHUNK = 1 << 16
SIZE = 5 * (1 << 20) + 3 * CHUNK + 100  # 5 MiB, three chunks and a partial one


def reference(base: int, start: int, end: int) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for off in range(start, end, CHUNK):
        n = min(CHUNK, end - off)
        if ctypes.string_at(base + off, n) != bytes(n):
            if runs and runs[-1][1] == off:
                runs[-1] = (runs[-1][0], off + n)
            else:
                runs.append((off, off + n))
    return runs


@pytest.mark.parametrize("libc", [True, False], ids=["memcmp", "copy"])
def test_runs_match_copying_each_chunk_out(monkeypatch: pytest.MonkeyPatch, libc: bool) -> None:
    if not libc:
        monkeypatch.setattr(wasm_snapshot, "_memcmp", None)
    else:
        assert wasm_snapshot._memcmp is not None  # Linux: libc is there
    memory = (ctypes.c_char * SIZE)()
    base = ctypes.addressof(memory)
    assert wasm_snapshot.nonzero_runs(base, 0, SIZE) == []
    for at in (0, CHUNK - 1, 3 * CHUNK, (1 << 20) - 1, (1 << 20) + 15 * CHUNK, SIZE - 1):
        memory[at] = b"\x01"
    for start, end in ((0, SIZE), (CHUNK, SIZE), (2 << 20, SIZE), (0, 3 << 20), (CHUNK, CHUNK)):
        assert wasm_snapshot.nonzero_runs(base, start, end) == reference(base, start, end)
    assert wasm_snapshot.nonzero_runs(base, 0, SIZE)[0] == (0, CHUNK)
    assert wasm_snapshot.nonzero_runs(base, 0, SIZE)[-1] == (SIZE - 100, SIZE)
