--[[ aonode's built-in aos module (lua@5.3a).

Written for aonode after the observable behaviour of aos 2 (permaweb/aos).  It
runs inside the runtime's sandbox like any user code, so everything it defines
(ao, Handlers, Inbox, Owner, ...) is ordinary process state that Eval can read
and change, and that a snapshot carries.  The runtime keeps the table returned
at the end and calls its `handle(msg, env)` once per message; the result is
`{ Data, Messages, Spawns, Assignments, Error? }`.  As in aos, the output is
what `print` wrote followed by an Eval's value, tables in aos's stringify
format (with its colours); `Data` is that value alone, `""` when there is none.

Messages arrive as the legacy CU hands them (tags in `Tags` only); like aos 2
the module title-cases keys and tag names (`action` -> `Action`) and lifts
tags to keys.  Handlers run in a coroutine, so `Handlers.receive`, `Receive`
and `Send(...).receive()` suspend a handler until a matching message arrives
(a state holding such a coroutine cannot be snapshotted: the runtime replays
it instead).  A message whose `Target` is another process (an assignment) is
refused unless `ao.addAssignable` allowed it, as in aos 2.

Deliberate differences from aos: a process that names no Authority trusts
every message (aos trusts none but its owner); a tag cannot overwrite one of
the message's own fields (`Id`, `Timestamp`, `Nonce`, ...).  How it differs
from hyper-aos and aos WASM, and why: docs/aos-differences.md (kept true by
tests/process/test_differential.py) and docs/aos-wasm.md.
]]

local load_part = ... -- the harness's loader of aos_lazy.lua (given to the built-in only)
local json = require("json")
local ENV = _ENV -- Eval runs in the process's globals even if `_G` is reassigned
local emit = print -- the runtime's output sink
local concat, insert, remove, format = table.concat, table.insert, table.remove, string.format

_G.json = json
package.loaded[".json"] = json -- aos and hyper-aos code asks for require(".json")
Colors = { red = "\27[31m", green = "\27[32m", blue = "\27[34m", reset = "\27[0m", gray = "\27[90m" }
Inbox = {}
Name = nil
Owner = nil
local MAX_INBOX = 10000

-- The functions a process calls only now and then are in aos_lazy.lua: each
-- has a stub here, and the first call of one compiles that chunk into the
-- process (given `X`, the locals below it uses).  From then on it is process
-- state like the rest, so a snapshot carries it and every node runs the same
-- instructions.  The stubs stay (a stub is what Utils.map etc. are, forever).
local X, part = {}, nil -- part: aos_lazy.lua's functions, once loaded
local function lazy(name)
  return function(...)
    local fns = part
    if fns == nil then
      fns = load_part()(X)
      part = fns
    end
    return fns[name](...)
  end
end

---------------------------------------------------------------- stringify
-- How aos 2 shows a table in a terminal: a flat list of strings and numbers on
-- one line, `{ 1, "a" }`; anything else one entry a line, `key = value`, keys
-- red, strings green, other values blue (the ANSI colours aos writes).
local C = { red = "\27[31m", green = "\27[32m", blue = "\27[34m", reset = "\27[0m" }
X.C = C

local stringify = lazy("stringify") -- aos_lazy.lua

package.loaded[".stringify"] = { format = stringify, colors = C }

---------------------------------------------------------------- .utils
-- aos 2's functional helpers (`require('.utils')`): curried, data last, so
-- `utils.map(f)(list)` and `utils.map(f, list)` agree.  `curry` needs the arity
-- when it is not 2 (aos reads it from the debug library, which the sandbox lacks).
local U = {}

U.curry = lazy("curry")

function U.isArray(t)
  if type(t) ~= "table" then return false end
  local n = 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 then return false end
    n = n + 1
  end
  return n == #t
end

for _, name in ipairs({ "concat", "reduce", "map", "filter", "find", "propEq", "prop",
  "includes", "reverse", "compose", "keys", "values" }) do U[name] = lazy(name) end

-- aos 2's spec matching (`utils.matchesSpec`, also Handlers'): a string spec is
-- the Action; a table spec needs every key present on the message and its
-- pattern matching: `_` anything, a function called with (value, msg), a table
-- any of its patterns, a string compared without case (a Lua pattern when it
-- holds a magic character, '-' alone is not one).
local MAGIC = "[%^%$%(%)%%%.%[%]%*%+%?]"

function U.matchesPattern(pattern, value, msg)
  if not pattern then return false end
  if pattern == "_" then return true end
  local tp = type(pattern)
  if tp == "function" then return pattern(value, msg) and true or false end
  if tp == "string" then
    local v = value or ""
    if type(v) ~= "string" and type(v) ~= "number" then return false end
    v = string.lower(v)
    if pattern:find(MAGIC) then return v:match(string.lower(pattern)) ~= nil end
    return v == string.lower(pattern)
  end
  if tp == "table" then
    for _, p in pairs(pattern) do
      if U.matchesPattern(p, value, msg) then return true end
    end
  end
  return false
end

function U.matchesSpec(msg, spec)
  local ts = type(spec)
  if ts == "function" then return spec(msg) end
  if ts == "table" then
    for key, pattern in pairs(spec) do
      if not msg[key] then return false end
      if not U.matchesPattern(pattern, msg[key], msg) then return false end
    end
    return true
  end
  if ts == "string" and msg.Action and msg.Action == spec then return true end
  return false
end

-- aos 2's key normalisation: `_` becomes `-`, then Title-Case per dash.
-- Every message's keys and tag names go through it, so results are remembered
-- (at most NORMALIZED_MAX names, then forgotten all at once: a pure function of
-- the messages applied, so every node holds the same table).
local normalized, normalizedCount, NORMALIZED_MAX = {}, 0, 64
function U.normalize(str)
  if type(str) ~= "string" then return str end
  local known = normalized[str]
  if known then return known end
  local out = str:gsub("_", "-"):lower():gsub("^%l", string.upper)
  out = out:gsub("%-(%l)", function(c) return "-" .. c:upper() end)
  if normalizedCount >= NORMALIZED_MAX then normalized, normalizedCount = {}, 0 end
  normalized[str], normalizedCount = out, normalizedCount + 1
  return out
end

U.capitalize = lazy("capitalize")

package.loaded[".utils"] = U
Utils = U

-- print: aos 2's.  One value (further arguments are dropped, as in aos); a
-- table in stringify's format, nil red, a boolean blue, a number green.
function print(a)
  local ta = type(a)
  if ta == "table" then
    a = stringify(a)
  elseif ta == "boolean" then
    a = C.blue .. tostring(a) .. C.reset
  elseif ta == "nil" then
    a = C.red .. "nil" .. C.reset
  elseif ta == "number" then
    a = C.green .. tostring(a) .. C.reset
  end
  emit(tostring(a)) -- answers nothing, as aos's print inside a handler
end

-- aos replaces math.random with its own generator (seeded once per process),
-- so Lua's math.randomseed changes nothing a process can draw.  The built-in's
-- generator is seeded per message by the runtime; re-seeding it is likewise a
-- no-op, so `math.randomseed(x)` cannot make a process's draws predictable.
math.randomseed = function() end

local function tagmap(tags) -- {name, value} list → map; the first value of a name wins
  local m = {}
  for _, t in ipairs(tags or {}) do
    if m[t.name] == nil then m[t.name] = t.value end
  end
  return m
end

---------------------------------------------------------------- ao
ao = { id = "", _module = "", authorities = {}, reference = 0, env = {} }
ao.outbox = { Messages = {}, Spawns = {}, Assignments = {} }

local ROOT_KEYS = { Target = true, Data = true, Anchor = true, Tags = true, From = true }

local function outgoing(msg, tags) -- aos shape: base tags, root keys as tags, then msg.Tags
  if type(msg.Data) == "table" then
    msg["Content-Type"] = "application/json"
    msg.Data = json.encode(msg.Data)
  end
  for k, v in pairs(msg) do
    if not ROOT_KEYS[k] and type(v) ~= "function" then insert(tags, { name = k, value = v }) end
  end
  if type(msg.Tags) == "table" then
    if msg.Tags[1] ~= nil then
      for _, t in ipairs(msg.Tags) do insert(tags, t) end
    else
      for k, v in pairs(msg.Tags) do insert(tags, { name = k, value = v }) end
    end
  end
  return tags
end

local function nextReference()
  ao.reference = ao.reference + 1
  return tostring(ao.reference), format("%032d", ao.reference)
end

function ao.send(msg)
  assert(type(msg) == "table", "ao.send: msg must be a table")
  local ref, anchor = nextReference()
  local message = {
    Target = msg.Target,
    Anchor = anchor,
    Tags = outgoing(msg, {
      { name = "Data-Protocol", value = "ao" },
      { name = "Variant", value = "ao.TN.1" },
      { name = "Type", value = "Message" },
      { name = "Reference", value = ref },
    }),
  }
  message.Data = msg.Data
  insert(ao.outbox.Messages, message)
  local sent = {}
  for k, v in pairs(message) do sent[k] = v end
  sent.onReply = function(...) -- (from, resolver) or (resolver): a one-off handler for the reply
    local from, resolver = message.Target, ...
    if select("#", ...) == 2 then from, resolver = ... end
    Handlers.once({ From = from, ["X-Reference"] = ref }, resolver)
  end
  sent.receive = function(...) -- suspends the handler until the reply arrives; returns it
    local from = message.Target
    if select("#", ...) == 1 then from = ... end
    return Handlers.receive({ From = from, ["X-Reference"] = ref })
  end
  return sent
end

ao.spawn, ao.assign = lazy("spawn"), lazy("assign")

-- aos 2's: only an Authority is trusted here; a message signed by its sender
-- (From = Owner) is let through by `handle`, not by this answer.
function ao.isTrusted(msg)
  for _, a in ipairs(ao.authorities) do
    if msg.From == a or msg.Owner == a then return true end
  end
  return false
end

-- aos 2's assignment rules: a message signed for another process (its Target
-- is not this one) is an assignment, refused unless a spec added with
-- `ao.addAssignable([name,] spec)` matches it.
ao.assignables = {}

ao.addAssignable, ao.removeAssignable = lazy("addAssignable"), lazy("removeAssignable")

function ao.isAssignment(msg) return msg.Target ~= ao.id end

function ao.isAssignable(msg)
  for _, a in pairs(ao.assignables) do
    if U.matchesSpec(msg, a.pattern) then return true end
  end
  return false
end

function Send(msg)
  if msg.Target == nil then print("WARN: no Target; the message will reach no process") end
  local sent = ao.send(msg)
  return { output = "Message added to outbox", onReply = sent.onReply, receive = sent.receive }
end

Spawn, Receive, Assign = lazy("Spawn"), lazy("Receive"), lazy("Assign")

---------------------------------------------------------------- Handlers
Handlers = { _version = "aonode-1", list = {}, coroutines = {}, onceNonce = 0, utils = {} }

local matchesSpec = U.matchesSpec
Handlers.utils.matchesSpec = matchesSpec

-- A pattern's verdict: -1 run and stop (true, "break"), 0 skip (false, nil,
-- "skip"), 1 run and go on (1, "continue"); other numbers count by sign.
local function verdict(m)
  if m == true or m == "break" then return -1 end
  if m == false or m == nil then return 0 end
  if m == "continue" then return 1 end
  if type(m) == "number" then return m end
  if type(m) == "string" then return 0 end
  error("a handler pattern returned a " .. type(m) .. "; expected boolean, number or string")
end

local function indexOf(name)
  for i, h in ipairs(Handlers.list) do
    if h.name == name then return i end
  end
end

local function resolver(handle) -- a function, or a table { [spec] = function } run for the first match
  if type(handle) ~= "table" then return handle end
  return function(msg, env)
    for spec, fn in pairs(handle) do
      if matchesSpec(msg, spec) then return fn(msg, env) end
    end
  end
end

local function place(where, ...)
  local n, name, pattern, handle, maxRuns = select("#", ...), ...
  if n == 2 then pattern, handle = name, pattern end -- (name, handle): the name is the Action
  assert(type(name) == "string", "Handlers: the name must be a string")
  assert(
    ({ ["function"] = true, table = true, string = true })[type(pattern)],
    "Handlers: the pattern must be a table, a function or an Action string"
  )
  local entry = { name = name, pattern = pattern, handle = resolver(handle), maxRuns = maxRuns }
  local i = indexOf(name)
  if i then
    Handlers.list[i] = entry -- a known name is updated where it stands
  elseif where == "prepend" then
    insert(Handlers.list, 1, entry)
  else
    insert(Handlers.list, entry)
  end
  return #Handlers.list
end

-- As in aos, only `add` answers the list's length; `append`, `prepend` and
-- `once` answer nothing (an Eval of one of them shows no value).
function Handlers.add(...) return place("append", ...) end
function Handlers.append(...) place("append", ...) end
function Handlers.prepend(...) place("prepend", ...) end

function Handlers.once(...)
  local name, pattern, handle = ...
  if select("#", ...) == 2 then
    name, pattern, handle = "_once_" .. Handlers.onceNonce, ...
    Handlers.onceNonce = Handlers.onceNonce + 1
  end
  place("prepend", name, pattern, handle, 1)
end

-- Handlers.receive (a handler waits for a matching message), before and after
Handlers.receive, Handlers.before, Handlers.after = lazy("receive"), lazy("before"), lazy("after")

function Handlers.remove(name)
  assert(type(name) == "string", "Handlers.remove: the name must be a string")
  local i = indexOf(name)
  if i then remove(Handlers.list, i) end
end

function Handlers.evaluate(msg, env)
  local handled = false
  local list = {}
  for i, h in ipairs(Handlers.list) do list[i] = h end -- handlers may add or remove handlers
  for _, h in ipairs(list) do
    if h.name ~= "_default" then
      local m = verdict(matchesSpec(msg, h.pattern))
      if m ~= 0 then
        if m < 0 then handled = true end
        h.handle(msg, env)
        if type(h.maxRuns) == "number" then
          h.maxRuns = h.maxRuns - 1
          if h.maxRuns <= 0 then Handlers.remove(h.name) end
        end
        if m < 0 then return handled end
      end
    end
  end
  local d = indexOf("_default")
  if d then Handlers.list[d].handle(msg, env) end
  return handled
end

local utils = Handlers.utils
function utils.hasMatchingTag(name, value)
  assert(type(name) == "string" and type(value) == "string", "hasMatchingTag(name, value)")
  return function(msg) return msg.Tags[name] == value end
end
function utils.hasMatchingTagOf(name, values)
  assert(type(name) == "string" and type(values) == "table", "hasMatchingTagOf(name, values)")
  return function(msg)
    for _, v in ipairs(values) do
      if msg.Tags[name] == v then return true end
    end
    return false
  end
end
function utils.hasMatchingData(value)
  assert(type(value) == "string", "hasMatchingData(value)")
  return function(msg) return msg.Data == value end
end
function utils.reply(input)
  assert(type(input) == "table" or type(input) == "string", "reply(table | string)")
  return function(msg)
    local r = type(input) == "string" and { Data = input } or input
    if msg.reply then return msg.reply(r) end
    r.Target = msg.From
    return ao.send(r)
  end
end
function utils.continue(pattern)
  return function(msg)
    local m = matchesSpec(msg, pattern)
    if not m or m == 0 or m == "skip" then return m end
    return 1
  end
end

---------------------------------------------------------------- messages
local result -- Eval's return value for the message being handled

local SHOWN = { ["function"] = true, thread = true, userdata = true }

local function evaluate(code)
  local fn, err = load("return " .. code, "aos", "t", ENV) -- an expression...
  if not fn then fn, err = load(code, "aos", "t", ENV) end -- ...or a block
  if not fn then error(err, 0) end
  local value, failure = fn()
  if failure then error(failure, 0) end -- aos: a second value reports an error (`return nil, err`)
  if SHOWN[type(value)] then value = tostring(value) end -- shown as aos shows them
  if type(value) == "table" then value = stringify(value) end
  if value == false then value = nil end -- aos shows a value only when it is truthy
  result = value
  -- aos: the Eval's Output is what it printed, then its value
  if value ~= nil then emit(tostring(value)) end
end

local function eval(msg) evaluate(type(msg.Data) == "string" and msg.Data or "") end
local function isEval(msg) return msg.Action == "Eval" and msg.From == Owner end

local function default(msg)
  insert(Inbox, msg)
  if #Inbox > MAX_INBOX then remove(Inbox, 1) end
  local from = msg.From and (msg.From:sub(1, 3) .. "..." .. msg.From:sub(-3)) or "unknown"
  local what = msg.Action and ("Action = " .. tostring(msg.Action))
    or ("Data = " .. tostring(msg.Data):sub(1, 20))
  print("New Message From " .. from .. ": " .. what)
end

-- aos 2's `_boot` handler, run once on the process message: the spawn message
-- becomes the first Inbox entry, and `On-Boot = Data` evaluates its Data.
-- (`On-Boot = <tx id>` loads code through WeaveDrive in aos; aonode has no
-- drive, so it is ignored.)
local function boot(msg)
  if #Inbox == 0 then insert(Inbox, msg) end
  if msg.Tags["On-Boot"] == "Data" then eval(msg) end
end

local function isBoot(msg) return msg.Tags.Type == "Process" and Owner == msg.From end

local function always() return true end
Handlers.add("_eval", isEval, eval)
Handlers.append("_default", always, default)

-- Tags aos does not lift to keys, and (aonode) the message's own fields,
-- which a tag may not overwrite.
local KEEP = {}
for _, k in ipairs({ "Data-Protocol", "Variant", "From-Process", "From-Module", "Type", "From",
  "Owner", "Anchor", "Target", "Data", "Tags", "Read-Only", "Id", "Timestamp", "Block-Height",
  "Epoch", "Nonce", "Hash-Chain", "Cron", "Module", "Signature" }) do KEEP[k] = true end

-- aos 2's message normalisation: keys and tag names title-cased, then each
-- tag's value under its name (the last of a repeated name wins, as in aos).
local function normalize(msg)
  local keys = {}
  for k in pairs(msg) do keys[#keys + 1] = k end
  for _, k in ipairs(keys) do
    local n = U.normalize(k)
    if n ~= k then
      msg[n], msg[k] = msg[k], nil
    end
  end
  if type(msg.Tags) ~= "table" then msg.Tags = {} end
  for _, t in ipairs(msg.Tags) do
    if type(t.name) == "string" then t.name = U.normalize(t.name) end
  end
  for _, t in ipairs(msg.Tags) do
    if not KEEP[t.name] then msg[t.name] = t.value end
  end
end

-- U.includes(value, list) without loading aos_lazy.lua for it (unless replaced)
local INCLUDES, FIND = U.includes, U.find
local function includes(value, list)
  if U.includes ~= INCLUDES or U.find ~= FIND then return U.includes(value, list) end
  assert(U.isArray(list), "includes: an array is required")
  for _, v in pairs(list) do
    if v == value then return true end
  end
  return false
end

local function init(msg, env) -- aos's ao.init and initializeState
  local ptags = env.Process.Tags
  if msg.Id == env.Process.Id and not Owner then
    Owner = ptags["From-Process"] or msg.From or msg.Owner
  end
  Name = Name or ptags.Name or "aos"
  if ao._module == "" then ao._module = env.Process.Module or ptags.Module or "" end
  for _, t in ipairs(env.Process.TagArray) do
    if t.name == "Authority" then
      for a in tostring(t.value):gmatch("[^,%s]+") do
        if not includes(a, ao.authorities) then insert(ao.authorities, a) end
      end
    end
  end
end

local forward = lazy("forward")
local function attach(msg) -- msg.reply and msg.forward, as aos 2 gives them
  msg.reply = function(reply)
    reply.Target = msg["Reply-To"] or reply.Target or msg.From
    reply["X-Reference"] = msg["X-Reference"] or msg.Reference
    reply["X-Origin"] = msg["X-Origin"]
    return ao.send(reply)
  end
  msg.forward = function(target, extra) return forward(msg, target, extra) end
end

-- Handlers run in a coroutine so that one can wait (Handlers.receive); a
-- suspended one is kept in Handlers.coroutines until a message resumes it.
local function run(msg, env)
  local co = coroutine.create(function() return pcall(Handlers.evaluate, msg, env) end)
  local resumed, ok, err = coroutine.resume(co)
  if not resumed then ok, err = false, ok end
  local live = {}
  for _, c in ipairs(Handlers.coroutines) do
    if coroutine.status(c) ~= "dead" then live[#live + 1] = c end
  end
  if coroutine.status(co) ~= "dead" then live[#live + 1] = co end
  Handlers.coroutines = live -- dead ones dropped: a state without them can be snapshotted
  if ok == false then return false, err end
  return true
end

-- aos 2 prints a handler's error before reporting it (then its own stack
-- traceback, which names aos's source lines and is not reproduced here).
local C = Colors
local function report(msg, err)
  local what = msg.Action and (" with Action = " .. tostring(msg.Action)) or " "
  emit(C.red .. "Error" .. C.gray .. " handling message" .. what .. C.reset)
  emit(C.green .. err .. C.reset)
end

local function handle(msg, env)
  ao.env, ao.id = env, env.Process.Id
  ao.outbox = { Messages = {}, Spawns = {}, Assignments = {} }
  result = nil
  normalize(msg)
  env.Process.TagArray = env.Process.Tags or {}
  env.Process.Tags = tagmap(env.Process.TagArray)
  init(msg, env)
  msg.TagArray = msg.Tags
  msg.Tags = tagmap(msg.TagArray)
  if msg.Tags["Content-Type"] == "application/json" and type(msg.Data) == "string" then
    local decoded, value = pcall(json.decode, msg.Data)
    if decoded then msg.Data = value end
  end

  -- a message naming no Target (a dry run built by hand) was sent to this process
  if msg.Target == nil or msg.Target == "" then msg.Target = ao.id end
  local booting = msg.Id == env.Process.Id
  local ok, err = true, nil
  local signed = msg.From == msg.Owner or #ao.authorities == 0 -- no Authority: aonode trusts all
  if not booting and not signed and not ao.isTrusted(msg) then
    print("Message is not trusted.")
  elseif not booting and ao.isAssignment(msg) and not ao.isAssignable(msg) then
    if msg.From ~= ao.id then
      ao.send({ Target = msg.From, Data = "Assignment is not trusted by this process!" })
    end
    print("Assignment is not trusted! From: " .. tostring(msg.From) .. " - Owner: " .. tostring(msg.Owner))
  else
    attach(msg)
    Handlers.add("_eval", isEval, eval) -- re-instated if user code removed it, as aos does
    if booting then Handlers.once("_boot", isBoot, boot) end
    Handlers.append("_default", always, default)
    ok, err = run(msg, env)
  end
  if not ok then
    local text = type(err) == "string" and err or tostring(err)
    if msg.Action ~= "Eval" then report(msg, text) end
    return { Data = "", Error = text }
  end
  local box = ao.outbox
  if result == nil then result = "" end -- aos: no output is "", not null
  return { Data = result, Messages = box.Messages, Spawns = box.Spawns, Assignments = box.Assignments }
end

X.U, X.concat, X.insert, X.remove = U, concat, insert, remove
X.outgoing, X.nextReference = outgoing, nextReference
X.indexOf, X.resolver = indexOf, resolver

return { handle = handle }
