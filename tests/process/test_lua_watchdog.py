"""Time inside one C function: each attack ends its message with an error, the
state rolled back, while another process keeps computing; the Lua port of the
pattern matcher gives C's results exactly."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from lupa import lua53  # type: ignore[import-untyped]

from aonode.process.runtime import lua
from aonode.process.runtime.lua import LuaRuntime
from tests.process.conftest import TEST_LIMITS, Proc, ProcFactory

# Each runs far longer than the budget allows if C were free (or allocates past the cap).
ATTACKS = [
    # backtracking: 20 quantifiers over 50 KB with no match (the Lua matcher runs, counted)
    ("string.find(string.rep('a', 50000), string.rep('a*', 20) .. 'b')", "budget"),
    ("string.match(string.rep('a', 50000), string.rep('a-', 20) .. 'b')", "budget"),
    (
        "for x in string.gmatch(string.rep('a', 50000), string.rep('a*', 20) .. 'b') do end",
        "budget",
    ),
    ("string.gsub(string.rep('a', 50000), string.rep('a?', 30) .. 'b', '')", "budget"),
    ("string.find(string.rep('(', 50000), '%b()')", "budget"),
    ("pcall(string.find, string.rep('a', 50000), string.rep('a*', 20) .. 'b')", "budget"),
    # output sizes checked before C allocates
    ("string.rep('x', 2^40)", "memory"),
    ("string.rep('x', 2^20, string.rep('y', 2^20))", "memory"),
    ("string.gsub(string.rep('a', 2^16), '', string.rep('b', 2^12))", "memory"),
    ("table.concat({1, 2}, string.rep('x', 2^20), 1, 2^20)", "memory"),
    # many cheap-looking calls that each ask C for a lot
    ("local s = string.rep('x', 2^20) for i = 1, 1e9 do local t = s:upper() end", "budget"),
    ("for i = 1, 1e9 do local t = string.rep('x', 2^20) end", "budget"),
    ("for i = 1, 1e9 do local t = string.format('%99d%99d%99d', 1, 2, 3) end", "budget"),
    ("local s = string.rep('ab', 2^19) for i = 1, 1e9 do s:find('ba', 1, true) end", "budget"),
    (
        "local t = {} for i = 1, 2^16 do t[i] = 'x' end for i = 1, 1e9 do table.concat(t) end",
        "budget",
    ),
    ("local t = {} for i = 1, 2^16 do t[i] = -i end for i = 1, 1e9 do table.sort(t) end", "budget"),
]
ERRORS = {"budget": "instruction budget exceeded", "memory": "memory limit exceeded"}


@pytest.mark.parametrize(("code", "kind"), ATTACKS, ids=[c[:60] for c, _ in ATTACKS])
def test_attack_fails_and_rolls_back(proc: Proc, code: str, kind: str) -> None:
    proc.eval("X = 20")
    res = proc.eval(f"X = 'touched'; {code}")
    assert res.error == ERRORS[kind]
    assert res.extra["rolled-back"] is True
    assert "non-deterministic" not in res.extra
    assert proc.value("X") == "20"  # a later message sees the old state


def test_attack_fails_the_same_way_twice(make_proc: ProcFactory) -> None:
    """Deterministic bounds: two runtimes fed the same messages give the same results."""
    code = "string.find(string.rep('a', 50000), string.rep('a*', 20) .. 'b')"
    a, b = make_proc(), make_proc()
    assert a.eval(code).error == b.eval(code).error == ERRORS["budget"]
    assert a.rt.snapshot() == b.rt.snapshot()


def test_ordinary_patterns_on_long_subjects_still_work(make_proc: ProcFactory) -> None:
    """Patterns above the C bound run in Lua, counted: same results, a budget's worth of work."""
    proc = make_proc(limits=type(TEST_LIMITS)(instructions=50_000_000, memory=TEST_LIMITS.memory))
    script = (
        "local s = string.rep(' a,b ', 2000) "
        "local t = s:match('^%s*(.-)%s*$') "
        "local n = 0 for w in s:gmatch('[^,]+') do n = n + 1 end "
        "return #t .. ' ' .. n .. ' ' .. select(2, s:gsub('%s*,%s*', ';'))"
    )
    assert proc.eval(script).data == "9998 2001 2000"


def test_wall_clock_backstop_is_marked_non_deterministic() -> None:
    """`..` on long strings is one VM instruction: only the backstop bounds a loop of them."""
    rt = LuaRuntime(None, limits=TEST_LIMITS, cpu_backstop=0.2)
    try:
        p = Proc(rt)
        assert p.boot().error is None
        loop = "local s = string.rep('x', 2^22) for i = 1, 1e9 do local t = s .. 'a' end"
        res = p.eval(f"X = 1; {loop}")
        assert res.error is not None and "backstop" in res.error
        assert res.extra == {"rolled-back": True, "non-deterministic": True}
    finally:
        rt.close()


def test_other_processes_compute_while_one_is_stuck_in_c(make_proc: ProcFactory) -> None:
    """Lua runs without the GIL on the compute threads: a second process keeps going."""
    big = type(TEST_LIMITS)(instructions=100_000_000, memory=TEST_LIMITS.memory)
    stuck, other = make_proc(limits=big), make_proc()
    code = "string.find(string.rep('a', 50000), string.rep('a*', 20) .. 'b')"
    done_before = 0
    with ThreadPoolExecutor(1) as pool:
        attack = pool.submit(stuck.eval, code)
        while not attack.done():
            assert other.eval("C = (C or 0) + 1; return C").error is None
            done_before += 1 if not attack.done() else 0
        assert attack.result().error == ERRORS["budget"]
    assert done_before >= 1
    evals = other.slot  # slot 0 is the boot
    assert other.value("C") == str(evals)  # every one of them applied once


# -- the Lua matcher against C -------------------------------------------------------

SUBJECTS = [
    "",
    "hello world",
    "  trim me  ",
    "a,b,,c",
    "(foo(bar))baz",
    "THE (quick) fox",
    "aaa",
    "key = value; k2=v2",
    "x^y$z",
    "\0\1abc\255",
    "[[]]%",
]
PATTERNS = [
    "",
    "o",
    "l+",
    "l*",
    "l-",
    "l?",
    "^h",
    "d$",
    "^%s*(.-)%s*$",
    "[^,]*",
    "[^,]+",
    "(%w+)",
    "()",
    "(%w+)%s*=%s*(%w+)",
    "%b()",
    "%f[%w]%w+",
    "(a)(a)%2",
    "(a*(.)%w(%s*))",
    "[%a_][%w_]*",
    "[a-c]+",
    "[]]",
    "[^]]",
    "%^",
    "%$",
    "^$",
    ".-$",
    "%x+",
    "[%z\1]",
    "%",
    "(",
    ")",
    "]",
    "a)",
    "[a",
    "%b",
    "%f",
    "%1",
    "(()",
    "%g+",
    "%p",
    "[%]]",
    "x^",
    "a-b",
    "^(.-)(%p)",
    "[-a]",
    "[a-]",
]


@pytest.fixture(scope="module")
def matcher() -> Iterator[Any]:
    rt = lua53.LuaRuntime(encoding=None, register_eval=False)
    ctor = rt.execute(lua._COSTED)
    limits = rt.eval("{max_string = 1 << 40}")
    _, _, impl = ctor(rt.eval("function() end"), limits, rt.eval("function() return false end"))
    harness = rt.execute(
        b"""local impl = ...
        local function pack(ok, ...) return { ok = ok, n = select('#', ...), ... } end
        local function same(a, b)
          if a.ok ~= b.ok then return false end
          if not a.ok then return a[1] == b[1] end
          if a.n ~= b.n then return false end
          for i = 1, a.n do if a[i] ~= b[i] then return false end end
          return true
        end
        local function show(r)
          local t = {}
          for i = 1, r.n or 1 do t[i] = tostring(r[i]) end
          return tostring(r.ok) .. ':' .. table.concat(t, '|')
        end
        return function(s, p, init)
          local c, l = pack(pcall(string.find, s, p, init)), pack(pcall(impl.find, s, p, init))
          if not same(c, l) then return 'find ' .. show(c) .. ' vs ' .. show(l) end
          c, l = pack(pcall(string.match, s, p, init)), pack(pcall(impl.match, s, p, init))
          if not same(c, l) then return 'match ' .. show(c) .. ' vs ' .. show(l) end
          c = pack(pcall(string.gsub, s, p, '<%0>'))
          l = pack(pcall(impl.gsub, s, p, '<%0>'))
          if not same(c, l) then return 'gsub ' .. show(c) .. ' vs ' .. show(l) end
          c = pack(pcall(string.gsub, s, p, function(x) return x and '[' .. x .. ']' end, 2))
          l = pack(pcall(impl.gsub, s, p, function(x) return x and '[' .. x .. ']' end, 2))
          if not same(c, l) then return 'gsub-f ' .. show(c) .. ' vs ' .. show(l) end
          local function all(f)
            local ok, r = pcall(function()
              local out = {}
              for a, b in f(s, p) do out[#out + 1] = tostring(a) .. '/' .. tostring(b) end
              return table.concat(out, ',')
            end)
            return pack(ok, r)
          end
          c, l = all(string.gmatch), all(impl.gmatch)
          if not same(c, l) then return 'gmatch ' .. show(c) .. ' vs ' .. show(l) end
          return nil
        end""",
        impl,
    )
    yield harness


@pytest.mark.parametrize("pattern", PATTERNS)
def test_lua_matcher_matches_c(matcher: Any, pattern: str) -> None:
    """Every pattern item, error and position rule, on subjects with and without matches."""
    for subject in SUBJECTS:
        for init in (None, 1, 3, -2, 100):
            diff = matcher(subject.encode("latin-1"), pattern.encode("latin-1"), init)
            assert diff is None, (subject, pattern, init, diff)
