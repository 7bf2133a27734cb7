"""``require('.bint')`` on the built-in aos: aos's 256-bit integers against a
Python model of the same semantics (two's complement wrap-around, floored
``//`` and ``%``, logical ``>>``), the token blueprint's expressions, loading
on first require and surviving a snapshot."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aonode.process.runtime.lua import LuaRuntime
from tests.process.conftest import TEST_LIMITS, Proc, ProcFactory

BITS = 256
MOD = 1 << BITS


def wrap(v: int) -> int:
    """``v`` as aos's bint(256) holds it: modulo 2^256, read as signed."""
    v %= MOD
    return v - MOD if v >= MOD >> 1 else v


def int64(v: int) -> int:
    v %= 1 << 64
    return v - (1 << 64) if v >= 1 << 63 else v


def lua_str(v: int) -> str:
    return f"'{v}'"


def lua_hex(v: int) -> str:
    return f"'{'-' if v < 0 else ''}0x{abs(v):x}'"


@pytest.fixture(scope="module")
def bproc() -> Proc:
    """One process for the whole module (the properties only read its state)."""
    proc = Proc(LuaRuntime(None, limits=TEST_LIMITS))
    assert proc.boot().error is None
    assert proc.eval("bint = require('.bint')(256)").error is None
    return proc


def run(proc: Proc, code: str) -> str:
    res = proc.eval(code)
    assert res.error is None, res.error
    assert res.data is not None
    return res.data


wide = st.integers(min_value=-(1 << 300), max_value=1 << 300)
edge = st.sampled_from(
    [0, 1, -1, 2, (1 << 255) - 1, -(1 << 255), 1 << 255, MOD - 1, MOD, 1 << 64, -(1 << 63)]
)
ints = st.one_of(wide, edge, st.integers(min_value=-1000, max_value=1000))

OPS = """
local x, y = bint(@A@), bint(@B@)
local function q(f) local ok, v = pcall(f); return ok and tostring(v) or 'E' end
return table.concat({
  tostring(x), tostring(y), tostring(x + y), tostring(x - y), tostring(x * y),
  q(function() return x // y end), q(function() return x % y end),
  tostring(-x), tostring(x == y), tostring(x < y), tostring(x <= y),
  tostring(x & y), tostring(x | y), tostring(x ~ y), tostring(~x),
  tostring(x << @S@), tostring(x >> @S@), bint.tobase(x, 16), bint.tobase(x, 10, true),
  tostring(bint.tointeger(x)), tostring(bint.ipow(x, @E@)), tostring(bint.abs(x)),
  q(function() local a, b = bint.tdivmod(x, y); return tostring(a) .. '/' .. tostring(b) end),
  tostring(bint.eq(x, @B@)), tostring(bint.ult(x, y)), bint.tobase(x, 2), bint.tobase(x, 36),
}, ',')
"""


def model(a: int, b: int, s: int, e: int) -> list[str]:
    x, y = wrap(a), wrap(b)

    def t(v: bool) -> str:
        return "true" if v else "false"

    def tdiv() -> str:
        if y == 0:
            return "E"
        if x == -(1 << 255) and y == -1:
            return "E"  # 'division overflow'
        q = abs(x) // abs(y)
        r = abs(x) % abs(y)
        return f"{wrap(-q if (x < 0) != (y < 0) else q)}/{-r if x < 0 else r}"

    def base(v: int, b_: int) -> str:
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"
        v %= MOD
        out = ""
        while True:
            v, d = divmod(v, b_)
            out = digits[d] + out
            if v == 0:
                return out

    return [
        str(x), str(y), str(wrap(x + y)), str(wrap(x - y)), str(wrap(x * y)),
        "E" if y == 0 else str(wrap(x // y)), "E" if y == 0 else str(x % y),
        str(wrap(-x)), t(x == y), t(x < y), t(x <= y),
        str(wrap(x & y)), str(wrap(x | y)), str(wrap(x ^ y)), str(wrap(~x)),
        str(wrap(x << s)) if s < BITS else "0", str(wrap((x % MOD) >> s)),
        base(x, 16), base(x, 10), str(int64(x)), str(wrap(pow(x % MOD, e % MOD, MOD))),
        str(wrap(abs(x))), tdiv(), t(x == y), t(x % MOD < y % MOD), base(x, 2), base(x, 36),
    ]  # fmt: skip


@settings(max_examples=120, deadline=None)
@given(
    a=ints,
    b=ints,
    shift=st.integers(min_value=0, max_value=300),
    exp=st.one_of(st.integers(min_value=0, max_value=70), st.sampled_from([-1, -2, 255])),
    hexa=st.booleans(),
)
def test_bint_matches_the_model(
    bproc: Proc, a: int, b: int, shift: int, exp: int, hexa: bool
) -> None:
    code = (
        OPS.replace("@A@", lua_hex(a) if hexa else lua_str(a))
        .replace("@B@", lua_str(b))
        .replace("@S@", str(shift))
        .replace("@E@", str(exp))
    )
    assert run(bproc, code).split(",") == model(a, b, shift, exp)


@settings(max_examples=60, deadline=None)
@given(a=ints, n=st.integers(min_value=-(1 << 62), max_value=1 << 62))
def test_bint_mixes_with_lua_integers(bproc: Proc, a: int, n: int) -> None:
    """Integers and decimal strings convert; comparisons with plain numbers are signed."""
    code = (
        f"local x = bint({lua_str(a)}); local n = {n}\n"
        "return table.concat({tostring(x + n), tostring(n - x), tostring(x < n), "
        "tostring(n <= x), tostring(x * '3'), tostring(bint(n))}, ',')"
    )
    x = wrap(a)
    t = {True: "true", False: "false"}
    assert run(bproc, code).split(",") == [
        str(wrap(x + n)), str(wrap(n - x)), t[x < n], t[n <= x], str(wrap(x * 3)), str(n),
    ]  # fmt: skip


def test_floats_and_division_give_floats(bproc: Proc) -> None:
    assert run(bproc, "return tostring(bint(7) / 2)") == "3.5"
    assert run(bproc, "return tostring(bint(2) ^ 10)") == "1024.0"
    assert run(bproc, "return tostring(bint(3) + 0.5)") == "3.5"
    assert run(bproc, "return tostring(bint(1e16))") == "10000000000000000"
    assert run(bproc, "return math.type(bint.tonumber(bint(42)))") == "integer"
    assert run(bproc, "return bint.tonumber(bint('1' .. string.rep('0', 30)))") == "1e+30"
    assert run(bproc, "return tostring(bint(3) < 3.5) .. tostring(bint(4) <= 3.5)") == "truefalse"


@pytest.mark.parametrize(
    "text", ["abc", "1.5", " 12", "12 ", "", "0x", "--1", "1e3", "0b102", "+-1", "0x-1"]
)
def test_bad_strings_are_refused_as_aos_refuses_them(bproc: Proc, text: str) -> None:
    assert run(bproc, f"return tostring(bint.fromstring({text!r}))") == "nil"
    assert run(bproc, f"return tostring(bint.tobint({text!r}))") == "nil"
    res = bproc.eval(f"return bint({text!r})")
    assert res.error is not None and "value cannot be represented by a bint" in res.error


def test_non_integral_numbers_are_refused(bproc: Proc) -> None:
    for v in ("1.5", "0/0", "1/0", "2^63"):
        res = bproc.eval(f"return bint({v})")
        assert res.error is not None and "cannot be represented" in res.error, v
    assert run(bproc, "return bint.parse('1.5')") == "1.5"


def test_division_by_zero_is_an_error(bproc: Proc) -> None:
    for expr in ("bint(1) // 0", "bint(1) % bint(0)", "bint.udiv(1, 0)"):
        res = bproc.eval(f"return {expr}")
        assert res.error is not None and "attempt to divide by zero" in res.error, expr


def test_api_surface(bproc: Proc) -> None:
    code = """
return table.concat({
  tostring(bint.zero()), tostring(bint.one()), tostring(bint.maxinteger()),
  tostring(bint.mininteger()), tostring(bint.isbint(bint(1))), tostring(bint.isbint(1)),
  bint.type(bint(1)), bint.type(1), bint.type(1.5), tostring(bint.iszero(bint(0))),
  tostring(bint.isneg(bint(-3))), tostring(bint.iseven(bint(4))), tostring(bint.isodd(4)),
  tostring(bint.max(3, bint(9))), tostring(bint.min('-2', 5)), tostring(bint.inc(bint(1))),
  tostring(bint.dec(0)), tostring(bint.frombase('zz', 36)), tostring(bint.frombase('12', 40)),
  tostring(bint.frombe('\\1\\0')), tostring(bint.fromle('\\1\\0')), bint.tobe(258, true),
  tostring(#bint.tole(1)), tostring(bint.upowmod(3, 200, 1000)), tostring(bint.bits),
  tostring(bint(5):tobase(2)), tostring(bint.udivmod(bint(-1), 3) % 10),
  tostring(bint.brol(1, 257)), tostring(bint.bror(1, 1) == bint.mininteger()),
  tostring(rawequal(require('.bint')(256), bint)), tostring(require('.bint')(64).bits),
  tostring(bint.bwrap(-1, 8)), tostring(bint.trunc(-2.7)), tostring(bint.ceil(2.5)),
}, ',')
"""
    assert run(bproc, code).split(",") == [
        "0", "1", str((1 << 255) - 1), str(-(1 << 255)), "true", "false", "bint", "integer",
        "float", "true", "true", "true", "false", "9", "-2", "2", "-1", "1295", "nil", "256", "1",
        "\x01\x02", "32", str(pow(3, 200, 1000)), "256", "101", str(((MOD - 1) // 3) % 10),
        "2", "true", "true", "64", "255", "-2", "3",
    ]  # fmt: skip


def test_in_place_methods(bproc: Proc) -> None:
    code = """
local x = bint(10)
x:_add(5):_sub(1):_inc():_dec():_unm()
local y = bint(-7):_abs()
return tostring(x) .. ' ' .. tostring(y) .. ' ' .. tostring(bint(1):_shlwords(1))
"""
    assert run(bproc, code) == f"-14 7 {1 << 32}"


TOKEN_HANDLERS = """
local bint = require('.bint')(256)
Balances = Balances or { [ao.id] = tostring(bint(10000 * 10 ^ 12)) }
Handlers.add('transfer', { Action = 'Transfer' }, function(msg)
  assert(bint.__lt(0, bint(msg.Quantity)), 'Quantity must be greater than 0')
  if not Balances[msg.Recipient] then Balances[msg.Recipient] = '0' end
  if bint(msg.Quantity) <= bint(Balances[msg.From] or '0') then
    Balances[msg.From] = tostring(bint(Balances[msg.From]) - bint(msg.Quantity))
    Balances[msg.Recipient] = tostring(bint(Balances[msg.Recipient]) + bint(msg.Quantity))
    print('sent')
  else
    print('Insufficient Balance!')
  end
end)
"""


def test_token_blueprint_expressions(make_proc: ProcFactory) -> None:
    proc = make_proc()
    pid = proc.pid
    assert proc.eval(f"ao.id = ao.id or '{pid}'" + TOKEN_HANDLERS).error is None
    assert proc.eval(f"Balances['{proc.message('')['From']}'] = '1000'").error is None
    res = proc.send(tags=[("Action", "Transfer"), ("Recipient", "Bob"), ("Quantity", "250")])
    assert res.error is None and "sent" in res.output
    res = proc.send(tags=[("Action", "Transfer"), ("Recipient", "Bob"), ("Quantity", "751")])
    assert "Insufficient Balance!" in res.output
    res = proc.send(tags=[("Action", "Transfer"), ("Recipient", "Bob"), ("Quantity", "-1")])
    assert res.error is not None and "Quantity must be greater than 0" in res.error
    assert proc.value("Balances.Bob") == "250"
    assert proc.value("Balances[ao.id]") == "10000000000000000"


def test_loaded_on_first_require_only(make_proc: ProcFactory) -> None:
    proc = make_proc()
    assert proc.value("tostring(package.loaded['.bint'])") == "nil"
    assert proc.value("tostring(package.loaded['.bint'] == nil)") == "true"
    assert proc.value("tostring(require('bint') == require('.bint'))") == "true"
    res = proc.eval("return require('.nothing')")
    assert res.error is not None and "not found" in res.error


def test_survives_snapshot_and_restore(make_proc: ProcFactory) -> None:
    proc = make_proc()
    setup = "bint = require('.bint')(256); X = bint('123456789012345678901234567890') * 3"
    assert proc.eval(setup).error is None
    expr = "tostring(X * X // 7) .. ' ' .. tostring(X < bint(5)) .. ' ' .. bint.tobase(X, 16)"
    before = proc.value(expr)
    state = proc.rt.snapshot()
    restored = Proc(LuaRuntime.restore(state, limits=TEST_LIMITS), pid=proc.pid)
    restored.slot = proc.slot
    try:
        assert restored.value(expr) == before
        big = 123456789012345678901234567890 * 3
        assert restored.value("tostring(bint(1) + X)") == str(big + 1)
    finally:
        restored.rt.close()
