--[[ aonode's built-in aos module, its rarely used half (lua@5.3a).

aos.lua keeps what every message runs; what a process calls only now and then
(stringify, utils' functional helpers, ao.spawn and ao.assign, assignables,
Handlers.receive/before/after, msg.forward) is here.
aos.lua puts a stub in each of their places; the first call of one compiles
this chunk into the process, and from then on it is ordinary process state
(a snapshot carries it), so every node takes the same path.  A process that
never calls one of them carries none of this code: ~20 KiB less Lua heap.

`X` is aos.lua's locals these functions use; the answer maps a stub's name to
its function.  The bodies are aos.lua's, unchanged.
]]

local X = ...
local U, C, concat, insert, remove = X.U, X.C, X.concat, X.insert, X.remove
local outgoing, nextReference = X.outgoing, X.nextReference
local indexOf, resolver = X.indexOf, X.resolver
local F = {}

---------------------------------------------------------------- stringify
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
F.stringify = stringify

---------------------------------------------------------------- .utils
local function curry(fn, arity)
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
F.curry = curry

F.concat = curry(function(a, b)
  assert(U.isArray(a) and U.isArray(b), "concat: two arrays are required")
  local out = { table.unpack(a) }
  for _, v in ipairs(b) do out[#out + 1] = v end
  return out
end, 2)

F.reduce = curry(function(fn, initial, t)
  assert(type(fn) == "function", "reduce: the first argument must be a function")
  local acc = initial
  for k, v in pairs(t) do
    if acc == nil then acc = v else acc = fn(acc, v, k) end
  end
  return acc
end, 3)

F.map = curry(function(fn, data)
  assert(type(fn) == "function" and U.isArray(data), "map: a function and an array are required")
  local out = {}
  for k, v in ipairs(data) do out[#out + 1] = fn(v, k) end
  return out
end, 2)

F.filter = curry(function(fn, data)
  assert(type(fn) == "function" and U.isArray(data), "filter: a function and an array are required")
  local out = {}
  for _, v in ipairs(data) do
    if fn(v) then out[#out + 1] = v end
  end
  return out
end, 2)

F.find = curry(function(fn, t)
  for _, v in pairs(t) do
    if fn(v) then return v end
  end
  return nil
end, 2)

F.propEq = curry(function(name, value, object) -- aos compares strings only
  assert(type(name) == "string", "first argument should be a string")
  assert(type(value) == "string", "second argument should be a string")
  return object[name] == value
end, 3)
F.prop = curry(function(name, object) return object[name] end, 2)

F.includes = curry(function(value, t)
  assert(U.isArray(t), "includes: an array is required")
  return U.find(function(v) return v == value end, t) ~= nil
end, 2)

function F.reverse(data)
  assert(U.isArray(data), "reverse: an array is required")
  local out = {}
  for i = #data, 1, -1 do out[#out + 1] = data[i] end
  return out
end

function F.compose(...)
  local fns = table.pack(...)
  return function(...)
    local values = table.pack(...)
    for i = fns.n, 1, -1 do values = table.pack(fns[i](table.unpack(values, 1, values.n))) end
    return table.unpack(values, 1, values.n)
  end
end

function F.keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  return out
end

function F.values(t)
  local out = {}
  for _, v in pairs(t) do out[#out + 1] = v end
  return out
end

function F.capitalize(str)
  if type(str) ~= "string" or str == "" then return str end
  return str:sub(1, 1):upper() .. str:sub(2):lower()
end

---------------------------------------------------------------- ao
function F.spawn(module, msg)
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
  out.receive = function()
    return Handlers.receive({ Action = "Spawned", From = ao.id, Reference = ref })
  end
  return out
end

function F.assign(assignment)
  assert(type(assignment) == "table", "ao.assign: assignment must be a table")
  assert(type(assignment.Processes) == "table", "ao.assign: Processes must be a list")
  assert(type(assignment.Message) == "string", "ao.assign: Message must be a message id")
  insert(ao.outbox.Assignments, assignment)
end

function F.addAssignable(...)
  local name, spec = nil, ...
  if select("#", ...) ~= 1 then
    name, spec = ...
    assert(type(name) == "string", "MatchSpec name MUST be a string")
  end
  if name then
    for _, a in ipairs(ao.assignables) do
      if a.name == name then
        a.pattern = spec
        return
      end
    end
  end
  insert(ao.assignables, { pattern = spec, name = name })
end

function F.removeAssignable(name)
  local idx
  if type(name) == "string" then
    for i, a in ipairs(ao.assignables) do
      if a.name == name then idx = i break end
    end
  else
    assert(type(name) == "number", "index MUST be a number")
    idx = name
  end
  if idx == nil or idx <= 0 or idx > #ao.assignables then return end
  remove(ao.assignables, idx)
end

function F.Spawn(...)
  local module, msg = ao._module, ...
  if select("#", ...) >= 2 then module, msg = ... end
  local spawned = ao.spawn(module, msg or {})
  return {
    output = "Spawn process request added to outbox",
    receive = spawned.receive, -- aos 2's Spawn answers no onReply (ao.spawn's has one)
  }
end

function F.Receive(match) return Handlers.receive(match) end

function F.Assign(assignment)
  ao.assign(assignment)
  print("Assignment added to outbox.")
  return "Assignment added to outbox."
end

---------------------------------------------------------------- Handlers
-- Suspends the running handler until a message matching `pattern` arrives,
-- and answers that message (aos 2's Handlers.receive): a once-handler resumes
-- the handler's coroutine when it matches.
function F.receive(pattern)
  local self = coroutine.running()
  Handlers.once(pattern, function(msg)
    local _, ok, err = coroutine.resume(self, msg)
    if not ok then error(err) end
  end)
  return coroutine.yield(pattern)
end

local function inserter(handleName, offset)
  assert(type(handleName) == "string", "Handler name MUST be a string")
  local idx = indexOf(handleName)
  return {
    add = function(name, pattern, handle, maxRuns)
      assert(type(name) == "string", "Handlers: the name must be a string")
      if idx then
        insert(Handlers.list, idx + offset,
          { name = name, pattern = pattern, handle = resolver(handle), maxRuns = maxRuns })
      end
    end,
  }
end

-- `Handlers.before(name).add(...)` / `after`: a handler placed next to a named one.
function F.before(handleName) return inserter(handleName, 0) end
function F.after(handleName) return inserter(handleName, 1) end

---------------------------------------------------------------- messages
function F.forward(msg, target, extra)
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

return F
