"""``require('.base64')`` on the built-in aos: aos's encode/decode, checked
against Python's base64 (round trips, RFC 4648 vectors, custom alphabets)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aonode.process.runtime.lua import LuaRuntime
from tests.process.conftest import TEST_LIMITS, Proc, ProcFactory


@pytest.fixture(scope="module")
def bproc() -> Proc:
    proc = Proc(LuaRuntime(None, limits=TEST_LIMITS))
    assert proc.boot().error is None
    assert proc.eval("base64 = require('.base64')").error is None
    return proc


def lua_bytes(data: bytes) -> str:
    return '"' + "".join(f"\\{b}" for b in data) + '"'


def run(proc: Proc, code: str) -> str:
    res = proc.eval(code)
    assert res.error is None, res.error
    assert res.data is not None
    return res.data


@pytest.mark.parametrize(
    ("plain", "encoded"),
    [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="),
     ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")],
)  # fmt: skip
def test_rfc4648_vectors(bproc: Proc, plain: str, encoded: str) -> None:
    assert run(bproc, f"return base64.encode({plain!r})") == encoded
    assert run(bproc, f"return base64.decode({encoded!r})") == plain


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=200))
def test_round_trip_matches_python(bproc: Proc, data: bytes) -> None:
    want = base64.b64encode(data).decode()
    code = (
        f"local s = {lua_bytes(data)}\nlocal e = base64.encode(s)\n"
        "return e .. ',' .. tostring(base64.decode(e) == s)"
    )
    assert run(bproc, code) == f"{want},true"


def test_url_alphabet_and_skipped_characters(bproc: Proc) -> None:
    data = bytes([0xFB, 0xFF, 0xBF, 0x3E])
    code = (
        f"local e = base64.encode({lua_bytes(data)}, base64.makeencoder('-', '_'))\n"
        "local d = base64.decode(e, base64.makedecoder('-', '_'))\n"
        "return e .. ',' .. tostring(d == " + lua_bytes(data) + ")"
    )
    assert run(bproc, code) == base64.urlsafe_b64encode(data).decode() + ",true"
    assert run(bproc, "return base64.decode('Zm9v\\nYmFy ')") == "foobar"


def test_malformed_input_is_an_error(bproc: Proc) -> None:
    for bad in ("Zm9", "Z===", "Zg==Zg=="):
        res = bproc.eval(f"return base64.decode({bad!r})")
        assert res.error is not None and "base64" in res.error, bad


def test_survives_snapshot_and_restore(make_proc: ProcFactory) -> None:
    proc = make_proc()
    assert proc.eval("B64 = require('base64'); E = B64.makeencoder('-', '_')").error is None
    restored = Proc(LuaRuntime.restore(proc.rt.snapshot(), limits=TEST_LIMITS), pid=proc.pid)
    restored.slot = proc.slot
    try:
        assert restored.value("B64.encode('\\251\\255', E)") == "-_8="
        assert restored.value("tostring(require('.base64') == B64)") == "true"
    finally:
        restored.rt.close()
