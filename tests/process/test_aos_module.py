"""The built-in aos module (aos.lua): handlers, messages, Inbox, json, boot."""

from __future__ import annotations

import json

import pytest

from tests.process.conftest import OTHER, OWNER, PID, Proc, ProcFactory
from tests.process.test_differential import ANSI


def test_boot_sets_owner_name_and_ids(proc: Proc) -> None:
    assert proc.value("Owner .. ' ' .. ao.id .. ' ' .. Name .. ' ' .. ao._module") == (
        f"{OWNER} {PID} aos ModuleId"
    )
    assert proc.value("ao.env.Process.Id == ao.id and ao.env.Process.Tags.Type") == "Process"


def test_increment_handler_counts_messages(proc: Proc) -> None:
    """seed 003, Pattern 1: a stateful counter behind { Action = 'Increment' }."""
    setup = proc.eval(
        "Counter = 0 Handlers.add('Increment', { Action = 'Increment' }, "
        "function(m) Counter = Counter + 1 return Counter end)"
    )
    assert setup.error is None
    assert proc.value("Counter") == "0"
    for _ in range(3):
        res = proc.send(tags=[("Action", "Increment")], frm=OTHER)
        assert res.error is None and res.output == ""
    assert proc.value("Counter") == "3"
    assert proc.value("#Inbox") == "1"  # the spawn message (aos 2's _boot)


def test_send_puts_an_aos_message_in_the_outbox(proc: Proc) -> None:
    res = proc.eval("Send({ Target = 'Target1', Action = 'Ping', Count = 1, Data = 'hello' })")
    assert res.error is None
    (msg,) = res.outbox
    assert (msg["Target"], msg["Data"], msg["Anchor"]) == ("Target1", "hello", "0" * 31 + "1")
    tags = [(t["name"], t["value"]) for t in msg["Tags"]]
    assert tags == [
        ("Data-Protocol", "ao"),
        ("Variant", "ao.TN.1"),
        ("Type", "Message"),
        ("Reference", "1"),
        ("Action", "Ping"),
        ("Count", "1"),
    ]
    assert (msg["Action"], msg["Count"], msg["Reference"]) == ("Ping", "1", "1")
    again = proc.eval("ao.send({ Target = 'T2', Data = { b = 1, a = 2 }, Tags = { X = 'y' } })")
    (msg2,) = again.outbox
    assert msg2["Data"] == '{"a":2,"b":1}'
    assert (msg2["Content-Type"], msg2["X"], msg2["Reference"]) == ("application/json", "y", "2")


def test_the_ping_pong_script_sends_to_itself(proc: Proc) -> None:
    """seed 003, Part 3: the script's first Send goes out; a Ping triggers the next."""
    script = """
Handlers.add('Ping', { Action = 'Ping' }, function(m)
  Count = tonumber(m.Count) or 0
  if Count < 10 then Send({ Target = ao.id, Action = 'Ping', Count = Count + 1 }) end
end)
Send({ Target = ao.id, Action = 'Ping', Count = 1 })
"""
    first = proc.eval(script)
    assert [(m["Target"], m["Count"]) for m in first.outbox] == [(PID, "1")]
    pong = proc.send(tags=[("Action", "Ping"), ("Count", "1")], frm=PID, owner=PID)
    assert [(m["Target"], m["Count"]) for m in pong.outbox] == [(PID, "2")]
    last = proc.send(tags=[("Action", "Ping"), ("Count", "10")], frm=PID, owner=PID)
    assert last.outbox == ()


def test_msg_reply_answers_the_sender(proc: Proc) -> None:
    proc.eval(
        "Handlers.add('Info', 'Info', function(m) m.reply({ Data = 'pong', Kind = 'r' }) end)"
    )
    res = proc.send(tags=[("Action", "Info"), ("Reference", "7")], frm=OTHER)
    (msg,) = res.outbox
    assert (msg["Target"], msg["Data"], msg["X-Reference"], msg["Kind"]) == (
        OTHER,
        "pong",
        "7",
        "r",
    )
    via = proc.send(tags=[("Action", "Info"), ("Reply-To", "Elsewhere")], frm=OTHER)
    assert via.outbox[0]["Target"] == "Elsewhere"
    util = proc.eval("Handlers.add('U', 'U', Handlers.utils.reply('ok'))")
    assert util.error is None
    assert proc.send(tags=[("Action", "U")], frm=OTHER).outbox[0]["Data"] == "ok"


def test_unhandled_messages_go_to_the_inbox(proc: Proc) -> None:
    res = proc.send("payload", tags=[("Action", "Unknown")], frm=OTHER)
    assert res.error is None
    assert res.output == "New Message From Som...000: Action = Unknown"
    assert proc.value("#Inbox .. ' ' .. Inbox[2].Data .. ' ' .. Inbox[2].Action") == (
        "2 payload Unknown"
    )


def test_patterns(proc: Proc) -> None:
    proc.eval("""
Hits = {}
local function hit(name) return function() Hits[#Hits + 1] = name end end
Handlers.add('fn', function(m) return m.Data == 'fn' end, hit('fn'))
Handlers.add('Short', hit('short'))
Handlers.add('wild', { Action = 'Wild', Any = '_' }, hit('wild'))
Handlers.add('lua-pattern', { Data = '^num%d+$' }, hit('lua-pattern'))
Handlers.add('dash', { Action = 'Credit-Notice' }, hit('dash'))
Handlers.add('either', { Action = { 'A', 'B' } }, hit('either'))
Handlers.add('value-fn', { Qty = function(v) return tonumber(v) > 5 end }, hit('value-fn'))
Handlers.add('tag', Handlers.utils.hasMatchingTag('Color', 'red'), hit('tag'))
Handlers.add('data', Handlers.utils.hasMatchingData('exact'), hit('data'))
""")
    sends: list[tuple[str, list[tuple[str, str]]]] = [
        ("fn", []),
        ("", [("Action", "Short")]),
        ("", [("Action", "Wild"), ("Any", "whatever")]),
        ("", [("Action", "Wild")]),  # '_' still needs the key to be there
        ("num42", []),
        ("num4x", []),
        ("", [("Action", "Credit-Notice")]),
        ("", [("Action", "CreditNotice")]),  # '-' alone is not a Lua pattern
        ("", [("Action", "B")]),
        ("", [("Qty", "9")]),
        ("", [("Qty", "2")]),
        ("", [("Color", "red")]),
        ("exact", []),
    ]
    for data, tags in sends:
        assert proc.send(data, tags=tags, frm=OTHER).error is None
    assert proc.value("table.concat(Hits, ',')") == (
        "fn,short,wild,lua-pattern,dash,either,value-fn,tag,data"
    )
    assert proc.value("#Inbox") == "5"


def test_continue_break_and_default(proc: Proc) -> None:
    proc.eval("""
Order = {}
Handlers.add('first', function(m) return m.Mode end, function() Order[#Order + 1] = 'first' end)
Handlers.add('second', { Action = 'Go' }, function() Order[#Order + 1] = 'second' end)
""")
    for mode in ("continue", "break", "skip", "1", "-1", "0"):
        proc.send(tags=[("Action", "Go"), ("Mode", mode)], frm=OTHER)
    # "1", "-1", "0" are strings, not numbers: like "skip", they skip
    assert proc.value("table.concat(Order, ',')") == (
        "first,second,first,second,second,second,second"
    )
    proc.eval(
        "Handlers.add('num', function(m) return tonumber(m.N) end, function() Order = {} end)"
    )
    assert proc.value("#Inbox") == "1"  # the spawn message (aos 2's _boot)
    proc.send(tags=[("Action", "None"), ("N", "1")], frm=OTHER)  # continue: default runs too
    assert proc.value("#Inbox .. #Order") == "20"
    proc.send(tags=[("Action", "None"), ("N", "-1")], frm=OTHER)  # break: handled
    assert proc.value("#Inbox") == "2"


def test_once_prepend_remove(proc: Proc) -> None:
    proc.eval("""
Log = {}
Handlers.add('a', 'Go', function() Log[#Log + 1] = 'a' end)
Handlers.prepend('b', function(m) return m.Action == 'Go' and 'continue' end,
  function() Log[#Log + 1] = 'b' end)
Handlers.once(function(m) return m.Action == 'Go' and 'continue' end,
  function() Log[#Log + 1] = 'once' end)
Handlers.add('a', 'Go', function() Log[#Log + 1] = 'A' end) -- same name: replaced in place
""")
    proc.send(tags=[("Action", "Go")], frm=OTHER)
    proc.send(tags=[("Action", "Go")], frm=OTHER)
    proc.eval("Handlers.remove('a')")
    proc.send(tags=[("Action", "Go")], frm=OTHER)
    assert proc.value("table.concat(Log, ',')") == "once,b,A,b,A,b"
    assert proc.value("#Inbox") == "2"  # the last Go only matched a 'continue' handler


def test_handler_error_is_reported_and_earlier_changes_stay(proc: Proc) -> None:
    proc.eval(
        "Handlers.add('Bad', 'Bad', function(m) Touched = true print('working') "
        "Send({ Target = 'x' }) error('bad input') end)"
    )
    res = proc.send(tags=[("Action", "Bad")], frm=OTHER)
    assert res.error is not None and "bad input" in res.error
    assert res.outbox == ()
    # as aos 2 prints it: what ran, then the report (aos's stack traceback aside)
    assert ANSI.sub("", res.output).split("\n") == [
        "working",
        "Error handling message with Action = Bad",
        '[string "aos"]:1: bad input',
    ]
    assert proc.value("Touched") == "true"


def test_json_round_trip(proc: Proc) -> None:
    assert proc.value("json.encode({ b = 1, a = { 3, 2 }, c = { d = true, e = 'x\\n\"' } })") == (
        '{"a":[3,2],"b":1,"c":{"d":true,"e":"x\\n\\""}}'
    )
    doc = {"a": [1, 2.5, "é😀", {"k": False}], "n": -3, "big": 12345678901234, "s": "\x01"}
    text = json.dumps({**doc, "gone": None})  # ASCII-escaped, surrogate pairs and all
    proc.eval(f"Doc = json.decode([==[{text}]==])")
    assert json.loads(proc.value("json.encode(Doc)") or "") == doc  # null: no key, as in aos
    assert proc.value("Doc.a[3] .. math.type(Doc.n) .. math.type(Doc.a[2])") == "é😀integerfloat"
    assert proc.value("require('json') == json") == "true"
    bad = proc.eval("return json.decode('{\"a\": }')")
    assert bad.error is not None and "json" in bad.error


def test_json_content_type_decodes_data(proc: Proc) -> None:
    proc.eval("Handlers.add('J', 'J', function(m) Got = m.Data.x end)")
    proc.send('{"x": 7}', tags=[("Action", "J"), ("Content-Type", "application/json")], frm=OTHER)
    assert proc.value("Got") == "7"


def test_spawn_and_assign(proc: Proc) -> None:
    res = proc.eval(
        "Spawn('Mod2', { Data = 'init', Name = 'child' }) "
        "Assign({ Processes = { 'P1', 'P2' }, Message = 'M1' })"
    )
    assert res.error is None
    (spawn,) = res.spawns
    assert (spawn["Module"], spawn["From-Process"], spawn["Name"], spawn["Type"]) == (
        "Mod2",
        PID,
        "child",
        "Process",
    )
    assert spawn["Data"] == "init"
    assert res.assignments == ({"Processes": ["P1", "P2"], "Message": "M1"},)
    assert res.output == "Assignment added to outbox."
    default_module = proc.eval("Spawn({})").spawns[0]
    assert (default_module["Module"], default_module["Data"]) == ("ModuleId", "NODATA")


def test_on_reply_runs_once_for_the_answer(proc: Proc) -> None:
    proc.eval("Send({ Target = 'Other', Action = 'Q' }).onReply(function(m) Answer = m.Data end)")
    proc.send("42", tags=[("X-Reference", "1")], frm="Other", owner="Other")
    proc.send("43", tags=[("X-Reference", "1")], frm="Other", owner="Other")
    assert proc.value("Answer") == "42"
    assert proc.value("#Inbox") == "2"


@pytest.mark.parametrize(
    ("frm", "owner", "handled"),
    [
        (OTHER, OTHER, True),  # signed by the sender itself
        ("ProcB", "Authority1", True),  # pushed by an authority
        ("ProcB", "Stranger", False),
    ],
)
def test_trust_follows_authorities(
    make_proc: ProcFactory, frm: str, owner: str, handled: bool
) -> None:
    proc = make_proc(tags=[("Authority", "Authority1")])
    proc.eval("Handlers.add('T', 'T', function() Handled = true end)")
    res = proc.send(tags=[("Action", "T")], frm=frm, owner=owner)
    assert proc.value("tostring(Handled == true)") == str(handled).lower()
    assert ("not trusted" in res.output) is not handled


def test_on_boot_evaluates_the_process_data(make_proc: ProcFactory) -> None:
    proc = make_proc(tags=[("On-Boot", "Data")], boot=False)
    res = proc.boot("Booted = 'yes' return 'ready'")
    assert (res.data, res.error) == ("ready", None)
    assert proc.value("Booted") == "yes"
