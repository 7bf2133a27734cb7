--[[ aonode's built-in aos module (lua@5.3a).

Written for aonode after the observable behaviour of aos 2 (permaweb/aos).  It
runs inside the runtime's sandbox like any user code, so everything it defines
(ao, Handlers, Inbox, Owner, ...) is ordinary process state that Eval can read
and change, and that a snapshot carries.  The runtime keeps the table returned
at the end and calls its `handle(msg, env)` once per message; the result is
`{ Data, Messages, Spawns, Assignments, Error? }`.  As in aos, the output is
what `print` wrote followed by an Eval's value, tables in aos's stringify
format (with its colours); `Data` is that value alone, `""` when there is none.

Deliberate differences from aos: `receive` (coroutine-suspended handlers) is
not supported; a process that names no
Authority trusts every message (aos trusts none but its owner).  How it
differs from hyper-aos, and why: docs/aos-differences.md (kept true by
tests/process/test_differential.py).
]]

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

---------------------------------------------------------------- stringify
-- How aos 2 shows a table in a terminal: a flat list of strings and numbers on
-- one line, `{ 1, "a" }`; anything else one entry a line, `key = value`, keys
-- red, strings green, other values blue (the ANSI colours aos writes).
local C = { red = "\27[31m", green = "\27[32m", blue = "\27[34m", reset = "\27[0m" }

local function scalar(v)
  if type(v) == "string" then return C.green .. '"' .. v .. '"' .. C.reset end
  return C.blue .. tostring(v) .. C.reset
end

local function flatList(t)
  local n = 0
  for k, v in pairs(t) do
    n = n + 1
    if k ~= n or (type(v) ~= "string" and type(v) ~= "number") then return false end
  end
  return true
end

local function stringify(t, indent, seen)
  indent = indent or 0
  seen = seen or {}
  if flatList(t) then
    local items = {}
    for i, v in ipairs(t) do items[i] = scalar(v) end
    return "{ " .. concat(items, ", ") .. " }"
  end
  local pad, inner = string.rep(" ", indent), string.rep(" ", indent + 2)
  local lines, list, n = {}, true, 0
  for k, v in pairs(t) do
    n = n + 1
    if list and k ~= n then list, lines = false, {} end -- a map after all: start again as one
    local shown
    if type(v) == "table" then
      if seen[v] then return "<circular reference>" end
      seen[v] = true
      shown = stringify(v, indent + 2, seen)
    else
      shown = scalar(v)
    end
    if list then
      lines[#lines + 1] = inner .. shown
    else
      lines[#lines + 1] = inner .. C.red .. tostring(k) .. C.reset .. " = " .. shown
    end
  end
  if list then return "{\n" .. concat(lines, ",\n") .. "\n" .. pad .. " }" end
  return "{\n " .. concat(lines, ",\n ") .. "\n" .. pad .. "}"
end

package.loaded[".stringify"] = { format = stringify, colors = C }

---------------------------------------------------------------- .utils
-- aos 2's functional helpers (`require('.utils')`): curried, data last, so
-- `utils.map(f)(list)` and `utils.map(f, list)` agree.  `curry` needs the arity
-- when it is not 2 (aos reads it from the debug library, which the sandbox lacks).
local U = {}

function U.curry(fn, arity)
  arity = arity or 2
  assert(type(fn) == "function", "curry: a function is required")
  if arity < 2 then return fn end
  local function take(have)
    return function(...)
      local args = { table.unpack(have, 1, have.n) }
      local n = have.n
      for i = 1, select("#", ...) do
        n = n + 1
        args[n] = select(i, ...)
      end
      args.n = n
      if n >= arity then return fn(table.unpack(args, 1, n)) end
      return take(args)
    end
  end
  return take({ n = 0 })
end

function U.isArray(t)
  if type(t) ~= "table" then return false end
  local n = 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 then return false end
    n = n + 1
  end
  return n == #t
end

U.concat = U.curry(function(a, b)
  assert(U.isArray(a) and U.isArray(b), "concat: two arrays are required")
  local out = { table.unpack(a) }
  for _, v in ipairs(b) do out[#out + 1] = v end
  return out
end, 2)

U.reduce = U.curry(function(fn, initial, t)
  assert(type(fn) == "function", "reduce: the first argument must be a function")
  local acc = initial
  for k, v in pairs(t) do
    if acc == nil then acc = v else acc = fn(acc, v, k) end
  end
  return acc
end, 3)

U.map = U.curry(function(fn, data)
  assert(type(fn) == "function" and U.isArray(data), "map: a function and an array are required")
  local out = {}
  for k, v in ipairs(data) do out[#out + 1] = fn(v, k) end
  return out
end, 2)

U.filter = U.curry(function(fn, data)
  assert(type(fn) == "function" and U.isArray(data), "filter: a function and an array are required")
  local out = {}
  for _, v in ipairs(data) do
    if fn(v) then out[#out + 1] = v end
  end
  return out
end, 2)

U.find = U.curry(function(fn, t)
  for _, v in pairs(t) do
    if fn(v) then return v end
  end
  return nil
end, 2)

U.propEq = U.curry(function(name, value, object) -- aos compares strings only
  assert(type(name) == "string", "first argument should be a string")
  assert(type(value) == "string", "second argument should be a string")
  return object[name] == value
end, 3)
U.prop = U.curry(function(name, object) return object[name] end, 2)

U.includes = U.curry(function(value, t)
  assert(U.isArray(t), "includes: an array is required")
  return U.find(function(v) return v == value end, t) ~= nil
end, 2)

function U.reverse(data)
  assert(U.isArray(data), "reverse: an array is required")
  local out = {}
  for i = #data, 1, -1 do out[#out + 1] = data[i] end
  return out
end

function U.compose(...)
  local fns = table.pack(...)
  return function(...)
    local values = table.pack(...)
    for i = fns.n, 1, -1 do values = table.pack(fns[i](table.unpack(values, 1, values.n))) end
    return table.unpack(values, 1, values.n)
  end
end

function U.keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  return out
end

function U.values(t)
  local out = {}
  for _, v in pairs(t) do out[#out + 1] = v end
  return out
end

package.loaded[".utils"] = U
Utils = U

-- print: like Lua's, tables shown as aos shows them (stringify).
function print(...)
  local parts = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    parts[i] = type(v) == "table" and stringify(v) or tostring(v)
  end
  emit(concat(parts, "\t"))
end

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

local function unsupported() error("receive() is not supported by aonode's built-in aos", 2) end

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
  sent.receive = unsupported
  return sent
end

function ao.spawn(module, msg)
  assert(type(module) == "string", "ao.spawn: a module id is required")
  msg = msg or {}
  assert(type(msg) == "table", "ao.spawn: msg must be a table")
  local ref, anchor = nextReference()
  local spawn = {
    Anchor = anchor,
    Tags = outgoing(msg, {
      { name = "Data-Protocol", value = "ao" },
      { name = "Variant", value = "ao.TN.1" },
      { name = "Type", value = "Process" },
      { name = "From-Process", value = ao.id },
      { name = "From-Module", value = ao._module },
      { name = "Module", value = module },
      { name = "Reference", value = ref },
    }),
  }
  spawn.Data = msg.Data or "NODATA"
  insert(ao.outbox.Spawns, spawn)
  local out = {}
  for k, v in pairs(spawn) do out[k] = v end
  out.onReply = function(callback)
    Handlers.once({ Action = "Spawned", From = ao.id, Reference = ref }, callback)
  end
  out.receive = unsupported
  return out
end

function ao.assign(assignment)
  assert(type(assignment) == "table", "ao.assign: assignment must be a table")
  assert(type(assignment.Processes) == "table", "ao.assign: Processes must be a list")
  assert(type(assignment.Message) == "string", "ao.assign: Message must be a message id")
  insert(ao.outbox.Assignments, assignment)
end

function ao.isTrusted(msg)
  if msg.From == msg.Owner or #ao.authorities == 0 then return true end
  for _, a in ipairs(ao.authorities) do
    if msg.From == a or msg.Owner == a then return true end
  end
  return false
end

function Send(msg)
  if msg.Target == nil then print("WARN: no Target; the message will reach no process") end
  local sent = ao.send(msg)
  return { output = "Message added to outbox", onReply = sent.onReply, receive = sent.receive }
end

function Spawn(...)
  local module, msg = ao._module, ...
  if select("#", ...) >= 2 then module, msg = ... end
  local spawned = ao.spawn(module, msg or {})
  return { output = "Spawn process request added to outbox", onReply = spawned.onReply }
end

function Assign(assignment)
  ao.assign(assignment)
  print("Assignment added to outbox.")
  return "Assignment added to outbox."
end

---------------------------------------------------------------- Handlers
Handlers = { _version = "aonode-1", list = {}, onceNonce = 0, utils = {} }

local MAGIC = "[%^%$%(%)%%%.%[%]%*%+%?]" -- a string spec with these is a Lua pattern ('-' alone is not)

local function matchesPattern(pattern, value, msg)
  local tp = type(pattern)
  if pattern == "_" then return true end
  if tp == "function" then return pattern(value, msg) and true or false end
  if tp == "string" then
    if value == pattern then return true end
    return type(value) == "string" and pattern:find(MAGIC) ~= nil and value:match(pattern) ~= nil
  end
  if tp == "table" then -- any of several patterns
    for _, p in pairs(pattern) do
      if matchesPattern(p, value, msg) then return true end
    end
  end
  return false
end

local function matchesSpec(msg, spec)
  local ts = type(spec)
  if ts == "function" then return spec(msg) end
  if ts == "string" then return msg.Action == spec end
  if ts ~= "table" then return false end
  for key, pattern in pairs(spec) do -- every key must match, at the root or among the tags
    local v, tv = msg[key], type(msg.Tags) == "table" and msg.Tags[key] or nil
    if v == nil and tv == nil then return false end
    if not matchesPattern(pattern, v, msg) and not matchesPattern(pattern, tv, msg) then
      return false
    end
  end
  return true
end
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
  result = value
  -- aos: the Eval's Output is what it printed, then its value
  if value ~= nil then emit(tostring(value)) end
end

local function eval(msg) evaluate(type(msg.Data) == "string" and msg.Data or "") end
local function isEval(msg) return msg.Action == "Eval" and msg.From == Owner end

local function default(msg)
  insert(Inbox, msg)
  if #Inbox > MAX_INBOX then remove(Inbox, 1) end
  local from = tostring(msg.From)
  if #from > 12 then from = from:sub(1, 3) .. "..." .. from:sub(-3) end
  local what = msg.Action and ("Action = " .. tostring(msg.Action))
    or ("Data = " .. tostring(msg.Data):sub(1, 20))
  print("New Message From " .. from .. ": " .. what)
end

Handlers.add("_eval", isEval, eval)
Handlers.append("_default", function() return true end, default)

local function boot(msg, env) -- the process message itself (slot 0)
  local ptags = env.Process.Tags
  Owner = Owner or ptags["From-Process"] or msg.From or msg.Owner
  Name = Name or ptags.Name or "aos"
  ao._module = env.Process.Module or ptags.Module or ""
  ao.authorities = {}
  for _, t in ipairs(env.Process.TagArray or {}) do
    if t.name == "Authority" then
      for a in tostring(t.value):gmatch("[^,%s]+") do insert(ao.authorities, a) end
    end
  end
  if ptags["On-Boot"] == "Data" and type(msg.Data) == "string" then evaluate(msg.Data) end
end

local function handle(msg, env)
  ao.env, ao.id = env, env.Process.Id
  ao.outbox = { Messages = {}, Spawns = {}, Assignments = {} }
  result = nil
  msg.TagArray = msg.Tags or {}
  msg.Tags = tagmap(msg.TagArray)
  for name, value in pairs(msg.Tags) do
    if msg[name] == nil then msg[name] = value end
  end
  env.Process.TagArray = env.Process.Tags or {}
  env.Process.Tags = tagmap(env.Process.TagArray)

  local ok, err
  if msg.Id == env.Process.Id then
    ok, err = pcall(boot, msg, env)
  elseif not ao.isTrusted(msg) then
    print("Message is not trusted.")
    ok = true
  else
    if msg.Tags["Content-Type"] == "application/json" and type(msg.Data) == "string" then
      local decoded, value = pcall(json.decode, msg.Data)
      if decoded then msg.Data = value end
    end
    msg.reply = function(reply)
      reply.Target = msg["Reply-To"] or reply.Target or msg.From
      reply["X-Reference"] = msg["X-Reference"] or msg.Reference
      reply["X-Origin"] = msg["X-Origin"]
      return ao.send(reply)
    end
    msg.forward = function(target, extra)
      local fwd = {}
      for k, v in pairs(msg) do
        if type(v) ~= "function" then fwd[k] = v end
      end
      for k, v in pairs(extra or {}) do fwd[k] = v end
      fwd.Target, fwd.Tags, fwd.TagArray = target, nil, nil
      fwd["Reply-To"] = msg["Reply-To"] or msg.From
      fwd["X-Reference"] = msg["X-Reference"] or msg.Reference
      fwd["X-Origin"] = msg["X-Origin"] or msg.From
      return ao.send(fwd)
    end
    Handlers.add("_eval", isEval, eval) -- re-instated if user code removed it, as aos does
    ok, err = pcall(Handlers.evaluate, msg, env)
  end
  if not ok then return { Data = "", Error = type(err) == "string" and err or tostring(err) } end
  local box = ao.outbox
  if result == nil then result = "" end -- aos: no output is "", not null
  return { Data = result, Messages = box.Messages, Spawns = box.Spawns, Assignments = box.Assignments }
end

return { handle = handle }
