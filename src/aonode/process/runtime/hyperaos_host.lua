-- The host side of HyperBEAM's Lua device for hyper-aos (loaded by hyperaos.py).
-- Called with the snapshot serializer (lua_snapshot.lua's table), loaded before
-- anything here is replaced, so it holds the real debug/string.dump/load.
local SNAP = ...
local rawnext, rawget, rawset, type, error, select = next, rawget, rawset, type, error, select
local getmt, sethook, traceback = debug.getmetatable, debug.sethook, debug.traceback
local real_load, real_tostring, real_gc, sort = load, tostring, collectgarbage, table.sort
local real_pcall, real_xpcall, real_resume = pcall, xpcall, coroutine.resume
local real_create = coroutine.create
local real_setmt = setmetatable
local pack, unpack = table.pack, table.unpack
local os_date, difftime, format, tointeger = os.date, os.difftime, string.format, math.tointeger

io, dofile, loadfile, python, string.dump = nil, nil, nil, nil, nil
debug = {traceback = traceback}
print = function() end
package.path, package.cpath, package.loadlib, package.searchpath = "", "", nil, nil
package.searchers = {package.searchers[1]}
load = function(chunk, name, mode, ...)
  if select("#", ...) > 0 then return real_load(chunk, name, "t", ...) end
  return real_load(chunk, name, "t")
end
collectgarbage = function(opt)
  if opt == nil or opt == "collect" then real_gc("collect") end
  if opt == "isrunning" then return true end
  return 0
end

-- A finalizer would run user code whenever the collector decides.
setmetatable = function(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("aonode: __gc metamethods are not allowed (not deterministic)", 2)
  end
  return real_setmt(t, mt)
end

-- The instruction budget: a count hook.  debug.sethook keys the Lua hook by
-- thread, so every coroutine gets it set explicitly; once the budget is spent
-- no pcall or resume may swallow the error.
local budget = 0
local function hook()
  budget = budget - HOOK_STEP
  if budget < 0 then error("aonode: instruction budget exhausted", 0) end
end
local function rethrow(r)
  if not r[1] and budget < 0 then error(r[2], 0) end
  return unpack(r, 1, r.n)
end
pcall = function(...) return rethrow(pack(real_pcall(...))) end
xpcall = function(...) return rethrow(pack(real_xpcall(...))) end
coroutine.resume = function(...) return rethrow(pack(real_resume(...))) end
coroutine.create = function(f)
  local co = real_create(f)
  sethook(co, hook, "", HOOK_STEP)
  return co
end
coroutine.wrap = function(f)
  local co = coroutine.create(f)
  return function(...)
    local r = pack(real_resume(co, ...))
    if not r[1] then error(r[2], 0) end
    return unpack(r, 2, r.n)
  end
end

local RANK = {number = 1, boolean = 2, string = 3}
local function before(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return (RANK[ta] or 4) < (RANK[tb] or 4) end
  if ta == "number" or ta == "string" then return a < b end
  if ta == "boolean" then return b and not a end
  return false
end
function pairs(t)
  local mt = getmt(t)
  local mp = mt and rawget(mt, "__pairs")
  if mp then return mp(t) end
  if type(t) ~= "table" then
    error("bad argument #1 to 'pairs' (table expected, got " .. type(t) .. ")", 2)
  end
  local keys, n, i = {}, 0, 0
  for k in rawnext, t do n = n + 1; keys[n] = k end
  sort(keys, before)
  return function()
    while i < n do
      i = i + 1
      local k = keys[i]
      local v = rawget(t, k)
      if v ~= nil then return k, v end
    end
  end, t, nil
end

local ids, last_id = setmetatable({}, {__mode = "k"}), 0
local ADDRESSED = {table = true, ["function"] = true, thread = true, userdata = true}
tostring = function(v)
  if ADDRESSED[type(v)] then
    local mt = getmt(v)
    if not (mt and rawget(mt, "__tostring")) then
      local id = ids[v]
      if not id then last_id = last_id + 1; id = last_id; ids[v] = id end
      return format("%s: 0x%08x", type(v), id)
    end
  end
  return real_tostring(v)
end

local rng = 1
local function step()
  local x = rng
  x = x ~ (x << 13); x = x ~ (x >> 7); x = x ~ (x << 17)
  rng = x
  return x
end
local function seed(s)
  s = tointeger(s) or string.unpack("<i8", string.pack("<d", s))
  rng = (s ~= 0) and s or 0x2545F4914F6CDD1D
  step()
end
math.randomseed = function(s) seed(tonumber(s) or 0) end
math.random = function(m, n)
  local r = step()
  if m == nil then return (r >> 11) * (1.0 / 9007199254740992.0) end
  local lo, hi = 1, tointeger(m)
  if n ~= nil then lo, hi = hi, tointeger(n) end
  if lo == nil or hi == nil then
    error("bad argument to 'random' (number has no integer representation)", 2)
  end
  if lo > hi then error("bad argument to 'random' (interval is empty)", 2) end
  local span = hi - lo + 1
  if span <= 0 then return r end
  return lo + (r >> 1) % span
end

local now = 0
local function days(y, m, d)
  y = (m <= 2) and (y - 1) or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
  return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
end
os = {
  time = function(t)
    if t == nil then return now end
    local secs = (t.hour or 12) * 3600 + (t.min or 0) * 60 + (t.sec or 0)
    return days(t.year, t.month, t.day) * 86400 + secs
  end,
  date = function(fmt, t)
    fmt = fmt or "%c"
    if fmt:sub(1, 1) ~= "!" then fmt = "!" .. fmt end
    return os_date(fmt, t or now)
  end,
  clock = function() return 0.0 end,
  difftime = difftime,
  getenv = function() return nil end,
}

-- require() finds the libraries here first: only the sandboxed ones.
for name in rawnext, package.loaded do
  if name ~= "_G" and rawget(_G, name) == nil then package.loaded[name] = nil end
end
package.loaded.os, package.loaded.debug = os, debug

local H, last_handle, trace = {}, nil, nil
local STRING_MT = getmt("")

-- hyper-aos's handle, wrapped by H.install, reports its result through this
-- (a named host function, so a restored state reaches the new VM's copy).
local function remember(...)
  last_handle = (...)
  return ...
end

-- What the host provides, by name: a snapshot refers to these, never copies
-- them.  Built now, before any module runs: every function in the globals and
-- in the tables they hold (string.*, math.random, os.time, package.searchers …).
local KNOWN = { ["(string metatable)"] = STRING_MT, ["(aonode) remember"] = remember }
for name, v in rawnext, _G do
  if type(v) == "function" then
    KNOWN[name] = v
  elseif type(v) == "table" and v ~= _G then
    for k, f in rawnext, v do
      if type(f) == "function" then KNOWN[name .. "." .. real_tostring(k)] = f end
      if type(f) == "table" and f ~= _G then
        for j, g in rawnext, f do
          if type(g) == "function" then
            KNOWN[name .. "." .. real_tostring(k) .. "." .. real_tostring(j)] = g
          end
        end
      end
    end
  end
end
-- Tables the C side holds on to (require reads the registry's package.loaded
-- and its own package table): a snapshot names them and carries their contents
-- separately, and a restore refills the new state's own tables.
local ANCHORED = { ["(package)"] = package, ["(package.loaded)"] = package.loaded,
                   ["(package.preload)"] = package.preload,
                   ["(package.searchers)"] = package.searchers }
for name, t in rawnext, ANCHORED do KNOWN[name] = t end
local STASH = "\0aonode host state" -- a root key used only while dumping/loading

local function shallow(t)
  local c = {}
  for k, v in rawnext, t do c[k] = v end
  return c
end

function H.load_module(src, name, instructions)
  local chunk, err = real_load(src, "=" .. name, "t", _G)
  if not chunk then error(err, 0) end
  budget = instructions
  sethook(hook, "", HOOK_STEP)
  local ok, e = real_pcall(chunk)
  sethook()
  if not ok then error(e, 0) end
end

local function copy(v, seen)
  if type(v) ~= "table" then return v end
  if seen[v] then error("recursive table in the ao table", 0) end
  seen[v] = true
  local out = {}
  for k, x in rawnext, v do out[copy(k, seen)] = copy(x, seen) end
  seen[v] = nil
  return out
end

-- dev_lua_lib:install, then a hook that remembers what hyper-aos's handle returned.
function H.install()
  local existing = rawget(_G, "ao")
  local ao = type(existing) == "table" and copy(existing, {}) or {}
  ao.event = function() return "ok" end
  ao.resolve = function() return "error", "ao.resolve: no AO-Core resolver in aonode" end
  ao.get = function(key, base)
    for part in tostring(key):gmatch("[^/]+") do
      if type(base) ~= "table" then return "not_found" end
      base = base[part]
    end
    if base == nil then return "not_found" end
    return base
  end
  ao.set = function(base, key, value)
    local out = {}
    for k, v in rawnext, base do out[k] = v end
    if type(key) ~= "table" then key = {[key] = value} end
    for k, v in rawnext, key do out[k] = v end
    return out
  end
  rawset(_G, "ao", ao)
  local proc = package.loaded[".process"]
  if type(proc) == "table" and type(rawget(proc, "handle")) == "function" then
    local inner = proc.handle
    proc.handle = function(...) return remember(inner(...)) end
  end
end

local function ao_outbox()
  local ao = rawget(_G, "ao")
  local ob = type(ao) == "table" and rawget(ao, "outbox")
  return type(ob) == "table" and ob or nil
end

local function on_error(e)
  trace = traceback(real_tostring(e), 2)
  return e
end

-- One compute call, as dev_lua makes it.  Returns status, result, and the
-- hyper-aos error texts this harness could see (Eval parse error, handle's Error).
function H.run(base, req, s, t, instructions)
  seed(s); now = t
  last_handle, trace = nil, nil
  local ob = ao_outbox()
  if ob then rawset(ob, "Error", nil) end
  local body = req.body
  local fname = (type(body) == "table" and body["function"]) or req["function"]
    or base["function"] or "compute"
  local f = _G[fname]
  if type(f) ~= "function" then error("no Lua function '" .. tostring(fname) .. "' to call", 0) end
  budget = instructions
  sethook(hook, "", HOOK_STEP)
  local ok, a, b = real_xpcall(f, on_error, base, req, {})
  sethook()
  local handled = type(last_handle) == "table" and rawget(last_handle, "Error") or nil
  if not ok then return "raised", a, handled, trace end
  if a == nil and b == nil then return "raised", "compute returned nothing", handled, nil end
  local status, result = "ok", a
  if b ~= nil then status, result = a, b end
  ob = status == "ok" and ao_outbox()
  return status, result, ob and rawget(ob, "Error") or handled, nil
end

-- The state (the globals, hyper-aos and everything it made) as bytes, with
-- the host's own per-state data that user-visible behaviour depends on.
function H.dump()
  local string_index = rawget(STRING_MT, "__index")
  local anchored = {}
  for name, t in rawnext, ANCHORED do anchored[name] = shallow(t) end
  rawset(_G, STASH, { ids = ids, last_id = last_id, strings = string_index, anchored = anchored })
  local ok, s = real_pcall(SNAP.dump, _G, KNOWN)
  rawset(_G, STASH, nil)
  if not ok then error(s, 0) end
  return s
end

-- Replace this (fresh, module-less) state's globals with a dumped state.
function H.restore(s)
  SNAP.load(s, KNOWN, _G)
  local host = rawget(_G, STASH)
  rawset(_G, STASH, nil)
  if type(host) ~= "table" then error("not a hyper-aos snapshot", 0) end
  ids, last_id = host.ids, host.last_id
  for name, t in rawnext, ANCHORED do
    local keep = host.anchored[name]
    for k in rawnext, shallow(t) do rawset(t, k, nil) end
    for k, v in rawnext, keep do rawset(t, k, v) end
  end
  rawset(STRING_MT, "__index", host.strings)
end

return H
