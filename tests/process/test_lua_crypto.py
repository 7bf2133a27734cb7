"""``require('.crypto')`` on the built-in aos: aos's API shape on the host's
digests, checked against hashlib and against the vectors of aos's own tests."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aonode.process.runtime.base import Limits
from aonode.process.runtime.lua import LuaRuntime
from aonode.process.runtime.lualib import host_digest
from tests.process.conftest import TEST_LIMITS, Proc, ProcFactory


@pytest.fixture(scope="module")
def cproc() -> Proc:
    proc = Proc(LuaRuntime(None, limits=TEST_LIMITS))
    assert proc.boot().error is None
    assert proc.eval("crypto = require('.crypto')").error is None
    return proc


def run(proc: Proc, code: str) -> str:
    res = proc.eval(code)
    assert res.error is None, res.error
    assert res.data is not None
    return res.data


def lua_bytes(data: bytes) -> str:
    """A Lua string literal holding exactly ``data``."""
    return '"' + "".join(f"\\{b}" for b in data) + '"'


DIGESTS = {
    "md5": lambda d: hashlib.md5(d).hexdigest(),
    "sha1": lambda d: hashlib.sha1(d).hexdigest(),
    "sha2_256": lambda d: hashlib.sha256(d).hexdigest(),
    "sha2_512": lambda d: hashlib.sha512(d).hexdigest(),
    "sha3_256": lambda d: hashlib.sha3_256(d).hexdigest(),
    "sha3_512": lambda d: hashlib.sha3_512(d).hexdigest(),
    "blake2b": lambda d: hashlib.blake2b(d).hexdigest(),
}


def test_some_digests_read_a_string_only_as_in_aos(cproc: Proc) -> None:
    """aos 2.0.6's sha2_512 and sha3/keccak start with ``#msg``/``msg .. padding``."""
    cproc.eval("S = crypto.utils.stream.fromString('abc')")
    for name, local in [("sha2_512", "msg"), ("sha3_256", "buffer"), ("keccak512", "buffer")]:
        res = cproc.eval(f"return crypto.digest.{name}(S).asHex()")
        assert res.error is not None
        assert res.error.endswith(f"attempt to get length of a function value (local '{local}')")
        res = cproc.eval(f"return crypto.digest.{name}({{ 97 }}).asHex()")
        assert res.error is not None
        assert res.error.endswith(f"attempt to concatenate a table value (local '{local}')")
    assert run(cproc, "return crypto.digest.sha1(S).asHex()") == hashlib.sha1(b"abc").hexdigest()


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=300))
def test_digests_match_hashlib(cproc: Proc, data: bytes) -> None:
    names = sorted(DIGESTS)
    code = (
        f"local s = {lua_bytes(data)}\nlocal out = {{}}\n"
        "local STRING_ONLY = { sha2_512 = true, sha3_256 = true, sha3_512 = true }\n"
        f"for _, n in ipairs({{{', '.join(repr(n) for n in names)}}}) do\n"
        "  local input = STRING_ONLY[n] and s or crypto.utils.stream.fromString(s)\n"
        "  out[#out + 1] = crypto.digest[n](input).asHex()\n"
        "end\nreturn table.concat(out, ',')"
    )
    assert run(cproc, code).split(",") == [DIGESTS[n](data) for n in names]


def test_aos_documented_vectors(cproc: Proc) -> None:
    """The values aos's own tests and crypto.md give for "ao"."""
    code = """
local d = crypto.digest
return table.concat({
  d.md5(crypto.utils.stream.fromString("ao")).asHex(),
  d.sha1(crypto.utils.stream.fromString("ao")).asHex(),
  d.sha3_256("ao").asHex(), d.sha3_512("ao").asHex(),
  d.keccak256("ao").asHex(), d.keccak512("ao").asHex(),
  d.blake2b("ao").asHex(), d.blake2b("ao", 32).asHex(), d.blake2b("ao", 32, "secret_key").asHex(),
}, ",")
"""
    assert run(cproc, code).split(",") == [
        "adac5e63f80f8629e9573527b25891d3",
        "c29dd6c83b67a1d6d3b28588a1f068b68689aa1d",
        "1bbe785577db997a394d5b4555eec9159cb51f235aec07514872d2d436c6e985",
        "0c29f053400cb1764ce2ec555f598f497e6fcd1d304ce0125faa03bb724f63f2"
        "13538f41103072ff62ddee701b52c73e621ed4d2254a3e5e9a803d83435b704d",
        "76da52eec05b749b99d6e62bb52333c1569fe75284e6c82f3de12a4618be00d6",
        "046fbfad009a12cef9ff00c2aac361d004347b2991c1fa80fba5582251b8e0be"
        "8def0283f45f020d4b04ff03ead9f6e7c43cc3920810c05b33b4873b99affdea",
        "576701fd79a126f2c414ef94adf1117c88943700f312679d018c29c378b2c807"
        "a3412b4e8d51e191c48fb5f5f54bf1bca29a714dda166797b3baf9ead862ae1d",
        "7050811afc947ba7190bb3c0a7b79b4fba304a0de61d529c8a35bdcbbb5544f4",
        "203c101980fdf6cf24d78879f2e3db86d73d91f7d60960b642022cd6f87408f8",
    ]


def test_hmac_and_pbkdf2_as_aos_computes_them(cproc: Proc) -> None:
    """aos's test vectors: its HMAC pads keys to 32 bytes, and a stream read once is empty."""
    code = """
local data = crypto.utils.stream.fromString("ao")
local key = crypto.utils.array.fromString("super_secret_key")
local r1 = crypto.mac.createHmac(data, key).asHex()
local r2 = crypto.mac.createHmac(data, key, "sha256").asHex()
local A = crypto.utils.array
local salt, password = A.fromString("salt"), A.fromString("password")
return table.concat({r1, r2, crypto.kdf.pbkdf2(password, salt, 4, 16).asHex(),
  crypto.kdf.pbkdf2("password", "salt", 10, 40, "sha256").asHex()}, ",")
"""
    assert run(cproc, code).split(",") == [
        "3966f45acb53f7a1a493bae15afecb1a204fa32d",
        "542da02a324155d688c7689669ff94c6a5f906892aa8eccd7284f210ac66e2a7",
        "C4C21BF2BBF61541408EC2A49C89B9C6",
        hashlib.pbkdf2_hmac("sha256", b"password", b"salt", 10, 40).hex().upper(),
    ]
    # a key past 32 bytes is hashed first
    long_key = b"k" * 40
    k = hashlib.sha256(long_key).digest().ljust(32, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in k) + b"msg").digest()
    want = hashlib.sha256(bytes(b ^ 0x5C for b in k) + inner).hexdigest()
    assert (
        run(cproc, "return crypto.mac.createHmac('msg', string.rep('k', 40), 'sha256').asHex()")
        == want
    )
    assert want != hmac.new(long_key, b"msg", "sha256").hexdigest()
    res = cproc.eval("return crypto.mac.createHmac('m', 'k', 'md5')")
    assert res.error is not None and "Unsupported algorithm: md5" in res.error


def test_result_shapes(cproc: Proc) -> None:
    code = """
local d = crypto.digest
local b = d.sha2_256("abc").asBytes()
local w = d.sha2_512("abc").asBytes()
local k = d.blake2b("abc", 4).asBytes()
return table.concat({#b, b[1], #d.sha1("abc").asString(), #w, math.type(w[1]),
  #k, k[1], crypto.utils.array.toHex({1, 171}), crypto.utils.stream.toHex(
  crypto.utils.stream.fromString("\\1\\171")), crypto.utils.hex.stringToHex("\\1\\171"),
  crypto.utils.hex.hexToString("616f")}, ",")
"""
    sha = hashlib.sha256(b"abc").digest()
    b2 = hashlib.blake2b(b"abc", digest_size=4).digest()
    assert run(cproc, code).split(",") == [
        "32", str(sha[0]), "20", "8", "integer", "4", chr(b2[0]), "01AB", "01AB", "01ab", "ao",
    ]  # fmt: skip


def test_random_is_deterministic_per_message(make_proc: ProcFactory) -> None:
    code = "local c = require('.crypto'); return c.random(1, 1000) .. ',' .. c.random()"
    a, b = make_proc(), make_proc()
    first = [a.eval(code).data for _ in range(3)]
    assert first == [b.eval(code).data for _ in range(3)]
    assert len(set(first)) > 1


def test_digests_charge_the_budget(make_proc: ProcFactory) -> None:
    """Hashing is one C call: the harness charges for its bytes, deterministically."""
    proc = make_proc(limits=Limits(instructions=200_000, memory=64 * 1024 * 1024))
    assert proc.eval("S = string.rep('x', 1 << 20); crypto = require('.crypto')").error is None
    assert proc.eval("return crypto.digest.sha2_256(S).asHex()").error is None
    res = proc.eval("return crypto.digest.keccak256(S).asHex()")
    assert res.error is not None and "instruction budget exceeded" in res.error
    res = proc.eval("return crypto.kdf.pbkdf2('p', 's', 10000000, 32).asHex()")
    assert res.error is not None and "instruction budget exceeded" in res.error


def test_survives_snapshot_and_restore(make_proc: ProcFactory) -> None:
    proc = make_proc()
    code = "C = require('.crypto'); H = C.digest.sha2_256('x'); S = C.utils.stream.fromString('ab')"
    assert proc.eval(code).error is None
    expr = "H.asHex() .. ',' .. C.digest.sha3_256(C.utils.stream.toString(S)).asHex()"
    restored = Proc(LuaRuntime.restore(proc.rt.snapshot(), limits=TEST_LIMITS), pid=proc.pid)
    restored.slot = proc.slot
    try:
        want = hashlib.sha256(b"x").hexdigest() + "," + hashlib.sha3_256(b"ab").hexdigest()
        assert restored.value(expr) == want
        assert proc.value(expr) == want
    finally:
        restored.rt.close()


def test_the_host_refuses_what_the_harness_never_sends() -> None:
    with pytest.raises(ValueError):
        host_digest(b"md4", b"", 0, b"")
