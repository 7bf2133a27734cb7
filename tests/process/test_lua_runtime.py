"""lua@5.3a on the runtime directly: seed 003's process behaviours, the sandbox,
the limits, rollback, dry runs, determinism and snapshots."""

from __future__ import annotations

import datetime
import re

import pytest

from aonode.process.runtime import lua
from aonode.process.runtime.base import Limits
from aonode.process.runtime.lua import LuaRuntime, random_seed
from tests.process.conftest import OTHER, PID, TEST_LIMITS, Proc, ProcFactory

R, G, B, Z = "\x1b[31m", "\x1b[32m", "\x1b[34m", "\x1b[0m"  # aos's ANSI colours

# -- seed 003, Part 1 ------------------------------------------------------------


def test_eval_sequence_returns_twenty(proc: Proc) -> None:
    """process_basic_test: X = 10, X = X * 2, return X → "20"."""
    assert proc.eval("X = 10").error is None
    assert proc.eval("X = X * 2").error is None
    res = proc.eval("return X")
    assert (res.data, res.error) == ("20", None)


def test_counter_script_three_times(proc: Proc) -> None:
    """complete_workflow_test: the same script scheduled three times → "Count: 3"."""
    script = """
Counter = Counter or 0
Counter = Counter + 1
return 'Count: ' .. Counter
"""
    assert [proc.eval(script).data for _ in range(3)] == ["Count: 1", "Count: 2", "Count: 3"]


def test_now_returns_hello(proc: Proc) -> None:
    assert proc.eval("return 'hello'").data == "hello"


def test_dryrun_of_return_99_changes_nothing(proc: Proc) -> None:
    proc.eval("X = 20")
    dry = proc.dryrun("X = 99; Handlers.add('dry', {Action = 'Dry'}, print); return X")
    assert (dry.data, dry.error) == ("99", None)
    assert proc.dryrun("return 99").data == "99"
    assert proc.value("X") == "20"
    assert proc.value("#Handlers.list") == "2"  # _eval and _default only


def test_dryrun_sees_the_latest_state_and_reports_its_outbox(proc: Proc) -> None:
    proc.eval("X = 5")
    dry = proc.dryrun("Send({Target = 'T', Data = 'd'}); return X + 1")
    assert dry.data == "6"
    assert [m["Target"] for m in dry.outbox] == ["T"]
    proc.eval("X = 6")
    assert proc.dryrun("return X").data == "6"


# -- results ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "data"),
    [
        ("return 42", "42"),
        ("return 1.5", "1.5"),
        ("return 7 // 2", "3"),
        ("return true", "true"),
        # aos 2's stringify, colours included (keys red, strings green, others blue)
        (
            "return {b = 1, a = {1, 2}, c = 'x'}",
            "{\n "
            + ",\n ".join(
                [
                    f"  {R}a{Z} = {{ {B}1{Z}, {B}2{Z} }}",
                    f"  {R}b{Z} = {B}1{Z}",
                    f'  {R}c{Z} = {G}"x"{Z}',
                ]
            )
            + "\n}",
        ),
        ("return {}", "{  }"),
        ("return {'a', 2}", f'{{ {G}"a"{Z}, {B}2{Z} }}'),
        ("return {{1}, true}", f"{{\n  {{ {B}1{Z} }},\n  {B}true{Z}\n }}"),
        ("return nil", ""),
        ("Y = 1", ""),
    ],
)
def test_eval_value_becomes_data(proc: Proc, code: str, data: str) -> None:
    res = proc.eval(code)
    assert (res.data, res.error) == (data, None)
    assert res.output == data  # aos: the Eval's Output ends with its value


def test_print_reaches_the_eval_output_before_its_value(proc: Proc) -> None:
    res = proc.eval("print('a', 1, nil) print({k = 'v'}) return 'r'")  # aos: one value
    assert res.output == f'a\n{{\n   {R}k{Z} = {G}"v"{Z}\n}}\nr'
    assert res.data == "r"


def test_utils_is_aos_utils(proc: Proc) -> None:
    """require('.utils'): aos 2's curried helpers, data last."""
    proc.eval("U = require('.utils')")
    cases = {
        "table.concat(U.map(function(v) return v * 2 end, {1, 2, 3}), ',')": "2,4,6",
        "table.concat(U.map(function(v) return v + 1 end)({1, 2}), ',')": "2,3",
        "table.concat(U.filter(function(v) return v % 2 == 1 end, {1, 2, 3}), ',')": "1,3",
        "U.reduce(function(a, v) return a + v end, 0, {1, 2, 3})": "6",
        "U.reduce(function(a, v) return a + v end)(10)({1, 2})": "13",
        "U.find(U.propEq('id', '2'), {{id = '1'}, {id = '2', n = 'two'}}).n": "two",
        "tostring(U.includes(2, {1, 2})) .. tostring(U.includes(5)({1, 2}))": "truefalse",
        "U.prop('x', {x = 'y'})": "y",
        "table.concat(U.reverse({1, 2, 3}), ',')": "3,2,1",
        "table.concat(U.concat({1}, {2, 3}), ',')": "1,2,3",
        "U.compose(function(x) return x + 1 end, function(x) return x * 10 end)(2)": "21",
        "table.concat(U.keys({a = 1, b = 2}), ',')": "a,b",
        "table.concat(U.values({a = 1, b = 2}), ',')": "1,2",
        "U.curry(function(a, b, c) return a .. b .. c end, 3)('x')('y', 'z')": "xyz",
        "require('.utils') == Utils": "true",
    }
    for expr, want in cases.items():
        assert proc.value(expr) == want, expr
    res = proc.eval("return U.map(print, {a = 1})")
    assert res.error is not None and "array" in res.error


def test_syntax_error_is_an_error_result(proc: Proc) -> None:
    proc.eval("X = 1")
    res = proc.eval("X = = 2")
    assert res.error is not None and "unexpected symbol" in res.error
    assert res.data == ""
    assert proc.value("X") == "1"


def test_user_error_keeps_what_ran_before_it(proc: Proc) -> None:
    """As in aos: the error is reported and earlier changes stay."""
    res = proc.eval("Y = 'before'; Send({Target = 'T'}); error('boom'); Y = 'after'")
    assert res.error is not None and "boom" in res.error
    assert res.outbox == ()  # an errored message sends nothing
    assert proc.value("Y") == "before"


def test_non_owner_eval_is_refused(proc: Proc) -> None:
    proc.eval("X = 1")
    res = proc.eval("X = 666; return 'pwned'", frm=OTHER)
    assert res.data == "" and res.error is None
    assert proc.value("X") == "1"
    assert proc.value("#Inbox") == "2"  # it lands in the Inbox, after the spawn message


# -- sandbox and limits ----------------------------------------------------------------

SANDBOX = [
    ("while true do end", "instruction budget exceeded"),
    ("while true do pcall(function() while true do end end) end", "instruction budget exceeded"),
    ("coroutine.wrap(function() while true do end end)()", "instruction budget exceeded"),
    (
        "local co = coroutine.create(function() while true do end end) coroutine.resume(co)",
        "instruction budget exceeded",
    ),
    ("string.rep('x', 1e9)", "memory limit exceeded"),
    (
        "local t, s = {}, string.rep('x', 2^20) for i = 1, 500 do t[i] = s .. i end",
        "memory limit exceeded",
    ),
    ("pcall(string.rep, 'x', 1e9)", "memory limit exceeded"),
    ("io.open('/etc/passwd')", "global 'io'"),
    ("os.execute('true')", "field 'execute'"),
    ("os.remove('/tmp/x')", "field 'remove'"),
    ("os.exit(1)", "field 'exit'"),
    ("os.getenv('HOME')", "field 'getenv'"),
    ("require('os')", "module 'os' not found"),
    ("require('io')", "module 'io' not found"),
    ("package.loadlib('libc.so.6', 'system')", "field 'loadlib'"),
    ("dofile('/etc/passwd')", "global 'dofile'"),
    ("loadfile('/etc/passwd')", "global 'loadfile'"),
    ("debug.getinfo(1)", "global 'debug'"),
    ("python.eval('1')", "global 'python'"),
    ("assert(load(string.dump(function() return 1 end)))()", "binary chunk"),
    ("assert(load(string.dump(function() return 1 end), 'x', 'b'))()", "binary chunk"),
    ("setmetatable({}, {__gc = function() end})", "__gc"),
]


@pytest.mark.parametrize(("code", "error"), SANDBOX, ids=[c for c, _ in SANDBOX])
def test_sandbox(proc: Proc, code: str, error: str) -> None:
    """Each escape or runaway fails its own message; the next one still works."""
    proc.eval("X = 20")
    res = proc.eval(f"X = 'touched'; {code}")
    assert res.error is not None and error in res.error, res.error
    assert res.data == ""
    assert proc.value("X") in ("20", "touched")
    assert proc.value("1 + 1") == "2"


@pytest.mark.parametrize(
    "code",
    [
        "while true do end",
        "string.rep('x', 1e9)",
        "Handlers.add('h', 'H', print) while true do end",
    ],
)
def test_budget_and_memory_failures_roll_back(proc: Proc, code: str) -> None:
    proc.eval("X = 20")
    res = proc.eval(f"X = 'partial'; Inbox = nil; {code}")
    assert res.error in ("instruction budget exceeded", "memory limit exceeded")
    assert res.extra["rolled-back"] is True
    assert proc.value("X") == "20"
    assert proc.value("#Inbox .. ' ' .. #Handlers.list") == "1 2"


def test_safe_library_functions_work(proc: Proc) -> None:
    code = (
        "local co = coroutine.wrap(function(a) local b = coroutine.yield(a + 1) return b * 2 end) "
        "local f = load('return 1 + ...') "
        "return table.concat({co(1), co(5), f(2), ('x'):rep(3), utf8.char(233), "
        "select('#', pcall(error, 'e')), collectgarbage('count')}, ',')"
    )
    assert proc.value(f"(function() {code} end)()") == "2,10,3,xxx,é,2,0"


def test_string_methods_see_the_process_string_table(proc: Proc) -> None:
    proc.eval("function string.shout(s) return s:upper() .. '!' end")
    assert proc.value("('hey'):shout()") == "HEY!"


# -- determinism --------------------------------------------------------------------------


def test_os_time_is_the_message_timestamp(proc: Proc) -> None:
    ts = 1_712_345_678_901
    res = proc.eval(
        "return os.time() .. ' ' .. os.clock() .. ' ' .. os.date('%Y-%m-%d %H:%M')", timestamp=ts
    )
    when = datetime.datetime.fromtimestamp(ts // 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M")
    assert res.data == f"{ts} 0.0 {when}"


RANDOM = "return math.random(1, 1000000) .. ' ' .. math.random(6) .. ' ' .. math.random()"


def test_math_random_is_seeded_by_process_and_slot(make_proc: ProcFactory) -> None:
    a, b, c = make_proc(), make_proc(), make_proc(pid="AnotherProcess" + "0" * 29)
    ra, rb, rc = (p.eval(RANDOM, slot=5).data for p in (a, b, c))
    assert ra == rb and ra != rc
    assert a.eval(RANDOM, slot=6).data != ra
    assert random_seed(PID, 5) != random_seed(PID, 6)
    assert a.value("math.random(3, 3)") == "3"
    # as in aos, math.randomseed does not reset the stream math.random draws from
    a.eval("math.randomseed(42) R1 = math.random(10^6) math.randomseed(42) R2 = math.random(10^6)")
    assert a.value("tostring(R1 == R2)") == "false"


def test_pairs_order_and_tostring_do_not_depend_on_the_vm(make_proc: ProcFactory) -> None:
    code = """
local t = {}
for _, k in ipairs({'zeta', 'alpha', 'mu', 'beta', 'omega', 'eta', 'delta'}) do t[k] = true end
t[10], t[2], t[1.5] = 1, 1, 1
local keys = {}
for k in pairs(t) do keys[#keys + 1] = tostring(k) end
return table.concat(keys, ',') .. ' ' .. tostring({}) .. ' ' .. tostring(print)
"""
    results = {make_proc().eval(code).data for _ in range(3)}
    assert len(results) == 1
    (text,) = results
    assert text is not None
    assert text.startswith("1.5,2,10,alpha,beta,delta,eta,mu,omega,zeta ")
    assert re.fullmatch(r".* table: 0x[0-9a-f]{8} function: 0x[0-9a-f]{8}", text)


def test_same_messages_same_snapshot_bytes(make_proc: ProcFactory) -> None:
    def run() -> bytes:
        p = make_proc()
        p.eval(
            "Balances = {alice = 10, bob = 5} Handlers.add('Inc', {Action = 'Inc'}, "
            "function(m) Balances[m.From] = (Balances[m.From] or 0) + 1 end)"
        )
        p.send(tags=[("Action", "Inc")], frm=OTHER, owner=OTHER)
        p.eval("Rand = math.random()")
        return p.rt.snapshot()

    assert run() == run()


# -- snapshots, checkpoints, replay ------------------------------------------------------------


def test_restore_from_snapshot_continues(proc: Proc) -> None:
    proc.eval("X = 20 Handlers.add('Inc', {Action = 'Inc'}, function() X = X + 1 end)")
    state = proc.rt.snapshot()
    restored = Proc(LuaRuntime.restore(state, limits=TEST_LIMITS))
    restored.slot = proc.slot
    try:
        restored.send(tags=[("Action", "Inc")])
        assert restored.value("X") == "21"
        assert restored.value("Owner") == proc.value("Owner")
        assert restored.value("('x'):rep(2)") == "xx"
    finally:
        restored.rt.close()


def test_rollback_after_a_checkpoint_replays_the_journal(make_proc: ProcFactory) -> None:
    proc = make_proc(checkpoint_every=3)
    for i in range(7):
        proc.eval(f"L = L or {{}}; L[#L + 1] = {i}")
    assert proc.eval("L[#L + 1] = 'x'; while true do end").error == "instruction budget exceeded"
    assert proc.value("table.concat(L, ',')") == "0,1,2,3,4,5,6"


def test_without_the_serializer_replay_keeps_dryrun_and_rollback_exact(
    make_proc: ProcFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = lua._resource
    monkeypatch.setattr(
        lua, "_resource", lambda name: None if name == "lua_snapshot.lua" else real(name)
    )
    proc = make_proc()
    proc.eval("X = 20")
    assert proc.dryrun("X = 1; return X").data == "1"
    assert proc.eval("X = 2; while true do end").error == "instruction budget exceeded"
    assert proc.value("X") == "20"
    with pytest.raises(NotImplementedError):
        proc.rt.snapshot()


# -- plugged-in modules -----------------------------------------------------------------------


def test_a_module_can_be_plugged_in(make_proc: ProcFactory) -> None:
    module = """
Seen = 0
return { handle = function(msg, env)
  Seen = Seen + 1
  print('got ' .. msg.Nonce)
  local out = { { Target = env.Process.Id, Tags = { Seen = Seen } } }
  return { Data = msg.Data:upper() .. #msg.Data, Messages = out }
end }
"""
    proc = make_proc([module], boot=False)
    assert proc.boot("boot").data == "BOOT4"
    res = proc.send("\xe9t\xe9")
    assert (res.data, res.output) == ("\xe9T\xe95", "got 1")
    assert res.outbox[0]["Target"] == PID and res.outbox[0]["Seen"] == "2"


def test_binary_data_reaches_lua_unchanged(make_proc: ProcFactory) -> None:
    module = "return function(msg) return { Data = #msg.Data .. ':' .. msg.Data:byte(1) } end"
    proc = make_proc([module], boot=False)
    assert proc.send(b"\xff\x00\x01").data == "3:255"


def test_a_broken_module_fails_every_message(make_proc: ProcFactory) -> None:
    for module, why in [("this is not lua", "failed to load"), ("X = 1", "no handle")]:
        proc = make_proc([module], boot=False)
        res = proc.boot()
        assert res.error is not None and why in res.error
        assert proc.send("x").error == res.error


def test_limits_apply_to_module_loading(make_proc: ProcFactory) -> None:
    proc = make_proc(["while true do end"], boot=False, limits=Limits(instructions=10_000))
    res = proc.boot()
    assert res.error is not None and "instruction budget exceeded" in res.error


def test_a_state_the_serializer_cannot_write_still_rolls_back(make_proc: ProcFactory) -> None:
    """A coroutine cannot be snapshotted: checkpoints are skipped, replay still works."""
    proc = make_proc(checkpoint_every=1)
    proc.eval("X = 1 Co = coroutine.create(function() end)")
    proc.eval("X = 2")
    with pytest.raises(NotImplementedError):
        proc.rt.snapshot()
    assert proc.dryrun("X = 3 return X").data == "3"
    assert proc.eval("X = 4 while true do end").error == "instruction budget exceeded"
    assert proc.value("X .. type(Co)") == "2thread"
    proc.eval("Co = nil")
    assert proc.rt.snapshot()
