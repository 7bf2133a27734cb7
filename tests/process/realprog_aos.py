"""Real-program corpus, part 2: the aos 2 features real programs lean on.

Written for this suite after what aos's own process tests check (receive,
once, assignments, normalised messages, the boot handlers, print, Inbox):
``Handlers.receive``/``Receive``/``Send().receive()``/``onReply`` flows,
``.crypto`` digests, ``.base64``, assignments, normalised tag names,
``Handlers.once``/``prepend``/``append``/``remove``, ``print``, json,
``.utils``, ``os.time`` and ``math.random``.
"""

from __future__ import annotations

from tests.process.conftest import OTHER
from tests.process.test_differential import PEER, A, E, M, P, Program

# Senders that reply to what the process sent; the process's first Send is
# Reference 1, its second 2, …
ASKER = """
Handlers.add('ask', 'Ask', function(msg)
  local answer = Send({ Target = msg.Tags.Peer, Action = 'Question', Data = msg.Data }).receive()
  print('answer: ' .. answer.Data)
  msg.reply({ Action = 'Answered', Data = answer.Data })
end)
"""

FLOWS: tuple[Program, ...] = (
    # -- receive / await
    P(
        "receive-send-then-reply",
        E(ASKER),
        A("Ask", ("Peer", PEER), data="2+2?", frm=OTHER),
        A("Answer", ("X-Reference", "1"), data="4", frm=PEER, owner=PEER),
        E("return #Inbox"),
    ),
    P(
        "receive-unrelated-message-first",
        E(ASKER),
        A("Ask", ("Peer", PEER), data="color?", frm=OTHER),
        A("Noise", data="not it", frm=OTHER),
        A("Answer", ("X-Reference", "1"), data="blue", frm=PEER, owner=PEER),
    ),
    P(
        "receive-global-pattern",
        E(
            "Handlers.add('wait', 'Wait', function(msg)"
            " local m = Receive({ Action = 'Go' }) print('went with ' .. m.Data) end)"
        ),
        A("Wait", frm=OTHER),
        A("Go", data="now", frm=OTHER),
        E("return 'after'"),
    ),
    P(
        "handlers-receive-pattern",
        E(
            "Handlers.add('w', 'W', function(msg)"
            " local m = Handlers.receive({ Action = 'Done', From = msg.From })"
            " print('done: ' .. m.Data) end)"
        ),
        A("W", frm=OTHER),
        A("Done", data="from someone else", frm=PEER, owner=PEER),
        A("Done", data="ok", frm=OTHER),
    ),
    P(
        "on-reply-callback",
        E(
            f"Send({{ Target = '{PEER}', Action = 'Q' }}).onReply(function(m)"
            " Answer = m.Data end); Sent = 1"
        ),
        A("R", ("X-Reference", "1"), data="the answer", frm=PEER, owner=PEER),
        E("return Answer"),
    ),
    P(
        "spawn-then-receive",
        E(
            "Handlers.add('make', 'Make', function(msg)"
            " local child = ao.spawn('ModuleChild', { Data = 'init', Name = 'kid' }).receive()"
            " print('child ' .. child.Process) end)"
        ),
        A("Make", frm=OTHER),
        A("Spawned", ("X-Reference", "1"), ("Process", "ChildProcess0001"), frm=PEER, owner=PEER),
    ),
    P(
        "spawn-plain",
        E("Spawn('ModuleX', { Data = 'seed', Tags = { Name = 'child', Kind = 'worker' } }); S = 1"),
        E("ao.spawn('ModuleY', { Data = 'y', Purpose = 'test' }); S = 2"),
    ),
    # -- crypto and base64
    P(
        "crypto-sha256",
        E("crypto = require('.crypto')"),
        E("return crypto.digest.sha2_256(crypto.utils.stream.fromString('hello')).asHex()"),
        E("return crypto.digest.sha2_256(crypto.utils.stream.fromString('')).asHex()"),
    ),
    P(
        "crypto-other-digests",
        E("crypto = require('.crypto')"),
        E("return crypto.digest.sha2_512(crypto.utils.stream.fromString('abc')).asHex()"),
        E("return crypto.digest.sha1(crypto.utils.stream.fromString('abc')).asHex()"),
        E("return crypto.digest.md5(crypto.utils.stream.fromString('abc')).asHex()"),
        E("return crypto.digest.sha3_256(crypto.utils.stream.fromString('abc')).asHex()"),
        E("return crypto.digest.keccak256(crypto.utils.stream.fromString('abc')).asHex()"),
    ),
    P(
        "crypto-in-handler",
        E(
            "local crypto = require('.crypto') Handlers.add('h', 'Hash', function(msg)"
            " local s = crypto.utils.stream.fromString(msg.Data)"
            " msg.reply({ Data = crypto.digest.sha2_256(s).asHex() }) end)"
        ),
        A("Hash", data="payload", frm=OTHER),
    ),
    P(
        "base64",
        E("b64 = require('.base64')"),
        E("return b64.encode('hello world')"),
        E("return b64.decode('aGVsbG8gd29ybGQ=')"),
        E("return b64.decode(b64.encode('\\0\\1\\2 bytes'))  == '\\0\\1\\2 bytes'"),
    ),
    # -- assignments
    P(
        "assignment-is-assignment",
        E(
            "Handlers.add('seen', 'Seen', function(msg)"
            " print(tostring(ao.isAssignment(msg)) .. ' ' .. msg.Target:sub(1, 7)) end)"
        ),
        A("Seen", frm=OTHER),
    ),
    P(
        "assignment-assign-out",
        E(f"Assign({{ Processes = {{ '{PEER}' }}, Message = 'SomeMessageId' }}); A = 1"),
        E("ao.assign({ Processes = { 'P1', 'P2' }, Message = 'Other' }); A = 2"),
    ),
    P(
        "assignment-assignables",
        E("ao.addAssignable('from-peer', { From = '" + PEER + "' }); return #ao.assignables"),
        E("return ao.isAssignable({ From = '" + PEER + "' })"),
        E("return ao.isAssignable({ From = 'someone' })"),
        E("ao.removeAssignable('from-peer'); return #ao.assignables"),
    ),
    # -- normalised messages
    P(
        "normalised-lowercase-action",
        E("Handlers.add('ping', 'Ping', function(msg) print('pong ' .. msg.Action) end)"),
        M("", ("action", "Ping"), frm=OTHER),
        M("", ("ACTION", "Ping"), frm=OTHER),
    ),
    P(
        "normalised-tag-keys",
        E(
            "Handlers.add('k', 'K', function(msg)"
            " print(tostring(msg['X-Custom']) .. ' ' .. tostring(msg['Content-Type'])) end)"
        ),
        A("K", ("x-custom", "v"), ("content-type", "text/plain"), frm=OTHER),
        A("K", ("X-Custom", "w"), frm=OTHER),
    ),
    P(
        "msg-tags-map",
        E(
            "Handlers.add('t', 'T', function(msg)"
            " print(msg.Tags.Color .. ' ' .. msg.Tags.Action .. ' ' .. #msg.TagArray) end)"
        ),
        A("T", ("Color", "red"), frm=OTHER),
    ),
    P(
        "msg-fields",
        E(
            "Handlers.add('f', 'F', function(msg) print(msg.From:sub(1, 8) .. ' '"
            " .. msg.Owner:sub(1, 8) .. ' ' .. math.type(msg.Timestamp) .. ' '"
            " .. tostring(msg['Block-Height'])) end)"
        ),
        A("F", frm=OTHER),
        A("F", frm=PEER, owner=OTHER),
    ),
    # -- handler list semantics
    P(
        "handlers-boot-list",
        E(
            "local n = {} for _, h in ipairs(Handlers.list) do n[#n + 1] = h.name end"
            " return table.concat(n, ',')"
        ),
    ),
    P(
        "handlers-once",
        E(
            "Handlers.once('greet', 'Greet', function(msg)"
            " print('hello ' .. msg.From:sub(1, 4)) end)"
        ),
        A("Greet", frm=OTHER),
        A("Greet", frm=OTHER),
        E("return #Handlers.list"),
    ),
    P(
        "handlers-once-name-less",
        E("Handlers.once('Solo', function() print('solo once') end)"),
        A("Solo", frm=OTHER),
        A("Solo", frm=OTHER),
    ),
    P(
        "handlers-before",
        E("Handlers.add('main', 'Hit', function() print('main') end)"),
        E("Handlers.before('main').add('pre', 'Hit', function() print('pre') end)"),
        A("Hit", frm=OTHER),
    ),
    P(
        "handlers-prepend-append-order",
        E("Log = {} Handlers.add('b', 'Go', function() Log[#Log + 1] = 'b' end)"),
        E(
            "Handlers.prepend('a', function(m) return m.Action == 'Go' and 'continue' end,"
            " function() Log[#Log + 1] = 'a' end)"
        ),
        E("Handlers.append('c', 'Go', function() Log[#Log + 1] = 'c' end)"),
        A("Go", frm=OTHER),
        E("return table.concat(Log, ',')"),
    ),
    P(
        "handlers-remove",
        E("Handlers.add('x', 'X', function() print('x ran') end)"),
        A("X", frm=OTHER),
        E("Handlers.remove('x')"),
        A("X", frm=OTHER),
    ),
    P(
        "handlers-max-runs",
        E("Handlers.add('twice', 'Two', function() print('ran') end, 2)"),
        A("Two", frm=OTHER),
        A("Two", frm=OTHER),
        A("Two", frm=OTHER),
    ),
    P(
        "handlers-utils",
        E(
            "Handlers.add('tag', Handlers.utils.hasMatchingTag('Kind', 'fruit'),"
            " function(msg) print('fruit: ' .. msg.Data) end)"
        ),
        M("apple", ("Kind", "fruit"), frm=OTHER),
        E(
            "Handlers.add('d', Handlers.utils.hasMatchingData('ping'),"
            " Handlers.utils.reply('pong'))"
        ),
        M("ping", frm=OTHER),
    ),
    # -- Inbox and the default handler
    P(
        "inbox-collects-unhandled",
        A("Hello", data="one", frm=OTHER),
        A("Hello", data="two", frm=PEER, owner=PEER),
        E("return Inbox[#Inbox].Data .. ' ' .. Inbox[#Inbox].Action"),
    ),
    P(
        "inbox-handled-stays-out",
        E("Handlers.add('h', 'H', function() end)"),
        A("H", frm=OTHER),
        E(
            "local n = 0 for _, m in ipairs(Inbox) do"
            " if m.Action == 'H' then n = n + 1 end end return n"
        ),
    ),
    # -- print and values
    P(
        "print-several-values",
        E("print('a', 1, true)"),
        E("print(nil)"),
        E("print('x', nil, 'y')"),
        E("print(1.5, -0, 2^63)"),
    ),
    P(
        "print-in-handler",
        E("Handlers.add('p', 'P', function(msg) print('got ' .. msg.Data) print({ k = 1 }) end)"),
        A("P", data="d", frm=OTHER),
    ),
    P(
        "eval-state",
        E("Counter = 0"),
        E("Counter = Counter + 1 return Counter"),
        E("return Name .. ' ' .. Owner:sub(1, 5) .. ' ' .. ao.id:sub(1, 5)"),
    ),
    # -- json
    P(
        "json-encode-decode",
        E("json = require('json')"),
        E("return json.encode({ list = { 1, 2, 3 }, name = 'x' })"),
        E('return json.decode(\'{"a": {"b": [true, null, 3]}}\').a.b[3]'),
    ),
    P(
        "json-reply-data",
        E("Handlers.add('j', 'J', function(msg) msg.reply({ Data = { n = 1, s = 'two' } }) end)"),
        A("J", frm=OTHER),
    ),
    # -- utils
    P(
        "utils-matches-spec",
        E("U = require('.utils')"),
        E("return U.matchesSpec({ Action = 'Go' }, 'Go')"),
        E("return U.matchesSpec({ Action = 'Go', N = '5' }, { N = '%d' })"),
        E("return U.matchesSpec({ Action = 'Stop' }, { Action = 'Go' })"),
        E("return U.matchesSpec({ Action = 'Go' }, function(m) return m.Action == 'Go' end)"),
    ),
    P(
        "utils-curried",
        E("U = require('.utils')"),
        E("return table.concat(U.map(function(x) return x * x end)({ 1, 2, 3 }), ' ')"),
        E("return U.reduce(function(a, b) return a .. b end)('')({ 'x', 'y' })"),
        E("return U.find(U.propEq('k')('v'))({ { k = 'w' }, { k = 'v', n = 9 } }).n"),
        E("return U.includes('b')({ 'a', 'b' })"),
    ),
    # -- time and randomness
    P(
        "os-time-is-timestamp",
        E("return os.time()"),
        E("return math.type(os.time())"),
        E("Handlers.add('t', 'T', function(msg) print(os.time() == msg.Timestamp) end)"),
        A("T", frm=OTHER),
    ),
    P(
        "math-random-range",
        E("local r = math.random(1, 10) return r >= 1 and r <= 10"),
        E("return math.type(math.random(5))"),
        E("local r = math.random() return r >= 0 and r < 1"),
    ),
    # -- trust
    P(
        "trust-owner-and-authority",
        E("Handlers.add('t', 'T', function(msg) print(tostring(msg.From == msg.Owner)) end)"),
        A("T", frm=OTHER),
        E("return ao.isTrusted({ From = Owner, Owner = Owner })"),
        E("return ao.isTrusted({ From = 'x', Owner = 'y' })"),
    ),
)
