"""aos.lua's rarely used half (aos_lazy.lua) is compiled into a process on the
first call of one of its functions: smaller until then, and exact either way
(a snapshot taken before or after the load resumes to the same bytes)."""

from __future__ import annotations

from aonode.process.runtime.lua import LuaRuntime
from tests.process.conftest import OTHER, TEST_LIMITS, Proc, ProcFactory

# One call of each kind of lazy function: utils (curried), stringify, ao.spawn,
# assignables, Handlers.before, msg.forward (and Handlers.utils, in aos.lua).
USES = [
    "return table.concat(Utils.map(function(x) return x * 2 end)({ 1, 2, 3 }), ',')",
    "return { a = 1, b = { 2, 3 } }",
    "ao.spawn('Module1', { Data = 'hi' }) return #ao.outbox.Spawns",
    "ao.addAssignable('any', { Action = 'X' }) return #ao.assignables",
    "Handlers.before('_default').add('Fwd', { Action = 'Fwd' }, "
    "function(m) m.forward('Target1', { Extra = 'y' }) end) return #Handlers.list",
    "return Handlers.utils.hasMatchingTag('Action', 'Fwd')({ Tags = { Action = 'Fwd' } })",
]


def _use_all(p: Proc) -> list[tuple[object, object, object]]:
    seen: list[tuple[object, object, object]] = []
    for code in USES:
        res = p.eval(code)
        seen.append((res.error, res.data, res.output))
    fwd = p.send(tags=[("Action", "Fwd")], frm=OTHER, owner=OTHER)
    seen.append((fwd.error, fwd.data, [m.get("Target") for m in fwd.outbox]))
    return seen


def _restored(p: Proc, state: bytes) -> Proc:
    q = Proc(LuaRuntime.restore(state, limits=TEST_LIMITS))
    q.slot = p.slot
    return q


def test_lazy_half_loads_on_first_use_and_resumes_exactly(make_proc: ProcFactory) -> None:
    p = make_proc()
    p.eval("Count = 0")
    stub = p.value("tostring(Utils.map)")
    before = p.rt.snapshot()
    q = _restored(p, before)  # resumed from a state that has not loaded it yet
    try:
        results = _use_all(p)
        assert results[0][:2] == (None, "2,4,6")
        assert "\x1b[31ma\x1b[0m = \x1b[34m1\x1b[0m" in str(results[1][1])  # stringify's colours
        assert results[2][:2] == (None, "1") and results[3][:2] == (None, "1")
        assert results[6][2] == ["Target1"]  # msg.forward ran
        assert _use_all(q) == results
        after = p.rt.snapshot()
        # the code came in with the first use, and a snapshot carries it
        assert len(after) > len(before) + 10_000
        assert q.rt.snapshot() == after
        assert p.value("tostring(Utils.map)") == stub  # the same function, before and after
        r = _restored(p, after)  # resumed from a state that has it: same bytes again
        try:
            assert r.value("Utils.reduce(function(a, b) return a + b end, 0, { 1, 2, 3 })") == "6"
            assert p.value("Utils.reduce(function(a, b) return a + b end, 0, { 1, 2, 3 })") == "6"
            assert r.rt.snapshot() == p.rt.snapshot()
        finally:
            r.rt.close()
    finally:
        q.rt.close()


def test_a_rollback_after_the_load_replays_to_the_same_state(make_proc: ProcFactory) -> None:
    p = make_proc()
    p.eval("return Utils.keys({ a = 1 })[1]")
    res = p.eval("X = Utils.values({ 5 })[1] while true do end")  # budget: rolled back
    assert res.extra["rolled-back"] is True
    assert p.value("X") == ""  # nil
    assert p.value("Utils.values({ 7 })[1]") == "7"
    fresh = make_proc()
    fresh.eval("return Utils.keys({ a = 1 })[1]")
    fresh.slot = 2  # the same messages at the same slots, without the failed one
    assert fresh.value("X") == ""
    fresh.value("Utils.values({ 7 })[1]")
    assert fresh.rt.snapshot() == p.rt.snapshot()


def test_only_the_builtin_module_is_given_the_loader(make_proc: ProcFactory) -> None:
    module = "local n = select('#', ...) return function() return { Data = tostring(n) } end"
    p = make_proc([module])
    assert p.send().data == "0"
