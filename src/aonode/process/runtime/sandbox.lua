-- aonode's privileged Lua harness: sandbox, limits, determinism (loaded by lua.py).
-- The privileged half of a process VM.  Runs in the real globals; nothing here
-- is reachable from the sandbox except the wrappers deliberately put there.
local debug_sethook, debug_getmetatable = debug.sethook, debug.getmetatable
local rawload, rawpcall, rawxpcall, rawerror, rawtostring = load, pcall, xpcall, error, tostring
local type, next, select, rawget, rawlen, tonumber = type, next, select, rawget, rawlen, tonumber
local setmetatable, getmetatable, ipairs = setmetatable, getmetatable, ipairs
local sort, concat = table.sort, table.concat
local sformat, sbyte, schar, sfind, ssub, sgsub =
  string.format, string.byte, string.char, string.find, string.sub, string.gsub
local spack, sunpack = string.pack, string.unpack
local mtype, huge, tointeger = math.type, math.huge, math.tointeger
local utf8char = utf8.char
local os_date, os_difftime = os.date, os.difftime
local co_create, co_resume = coroutine.create, coroutine.resume
local STRING_MT = getmetatable("")
python = nil -- lupa's bridge: a process never reaches Python
-- The collector starts a cycle as soon as one ends and works 4x as fast as the
-- process allocates (Lua's defaults: when the heap doubles, 2x).  A message
-- makes ~11 KiB of garbage over a ~160 KiB live heap: with the defaults an aos
-- process's heap swings up to twice that (~410 KiB on average over an Inc
-- loop), with these ~220 KiB, for a few per cent of apply rate (BENCHMARKS.md,
-- issue 22).  Collection timing is node-local anyway (no __gc, see lua.py).
collectgarbage("setpause", 100)
collectgarbage("setstepmul", 400)
-- costed.lua's constructor; the node's libraries (name -> compiled chunk, or
-- nil); the host's digests; aos_lazy.lua compiled (lua.py passes all four:
-- only strings cross)
local costed, library_code, host_digest, aos_lazy_code = ...
local os_clock = os.clock

local BUDGET, MEMORY = "instruction budget exceeded", "memory limit exceeded"
local TIMEOUT = "cpu time backstop exceeded (node-local, not deterministic)"
local P = {} -- env: the sandbox's globals; process: the module's entry table
local budget = { used = 0, limit = 0, step = 1, tripped = false, timed_out = false,
                 started = 0.0, backstop = 60.0 }
local limits = { max_string = 1 << 30 } -- read by costed.lua's wrappers
local now, rng, out = 0, 0, {}
local ids, last_id = setmetatable({}, { __mode = "k" }), 0

------------------------------------------------------------------ JSON
local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
              ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function esc(c) return ESC[c] or sformat("\\u%04x", sbyte(c)) end
local function quote(s) return '"' .. sgsub(s, '[%c"\\]', esc) .. '"' end

local function number_text(x)
  if mtype(x) == "integer" then return sformat("%d", x) end
  if x ~= x or x == huge or x == -huge then
    rawerror("json: cannot encode " .. rawtostring(x), 0)
  end
  local s = sformat("%.14g", x)
  if tonumber(s) ~= x then s = sformat("%.17g", x) end
  return s
end

-- Objects get their keys sorted (same table, same text); `lenient` turns what
-- JSON cannot hold into null instead of an error (for results, not for users).
local encode_into
local function encode_table(t, buf, seen, lenient)
  if seen[t] then rawerror("json: cannot encode a table that contains itself", 0) end
  seen[t] = true
  local n, count = rawlen(t), 0
  for _ in next, t do count = count + 1 end
  local array = count == n
  for i = 1, array and n or 0 do
    if rawget(t, i) == nil then array = false break end
  end
  if array then
    buf[#buf + 1] = "["
    for i = 1, n do
      if i > 1 then buf[#buf + 1] = "," end
      encode_into(rawget(t, i), buf, seen, lenient)
    end
    buf[#buf + 1] = "]"
  else
    local keys, orig = {}, {}
    for k in next, t do
      local tk = type(k)
      local s = tk == "string" and k or tk == "number" and number_text(k) or nil
      if s then keys[#keys + 1] = s; orig[s] = k
      elseif not lenient then rawerror("json: cannot encode a " .. tk .. " key", 0) end
    end
    sort(keys)
    buf[#buf + 1] = "{"
    local first = true
    for i = 1, #keys do
      local v = rawget(t, orig[keys[i]])
      local tv = type(v)
      if not (lenient and (tv == "function" or tv == "userdata" or tv == "thread")) then
        if not first then buf[#buf + 1] = "," end
        first = false
        buf[#buf + 1] = quote(keys[i]) .. ":"
        encode_into(v, buf, seen, lenient)
      end
    end
    buf[#buf + 1] = "}"
  end
  seen[t] = nil
end

encode_into = function(v, buf, seen, lenient)
  local tv = type(v)
  if tv == "string" then buf[#buf + 1] = quote(v)
  elseif tv == "number" then buf[#buf + 1] = number_text(v)
  elseif tv == "boolean" then buf[#buf + 1] = v and "true" or "false"
  elseif tv == "nil" then buf[#buf + 1] = "null"
  elseif tv == "table" then encode_table(v, buf, seen, lenient)
  elseif lenient then buf[#buf + 1] = "null"
  else rawerror("json: cannot encode a " .. tv, 0) end
end

local function json_encode(v, lenient)
  local buf = {}
  encode_into(v, buf, {}, lenient)
  return concat(buf)
end

local UNESC = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/",
                b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function json_decode(s)
  if type(s) ~= "string" then rawerror("json: decode expects a string", 2) end
  local pos = 1
  local function fail(what) rawerror(sformat("json: %s at byte %d", what, pos), 0) end
  local function skip() pos = sfind(s, "[^ \t\r\n]", pos) or #s + 1 end
  local function str()
    local i, buf = pos + 1, nil
    while true do
      local j = sfind(s, '["\\]', i)
      if not j then fail("unterminated string") end
      if sbyte(s, j) == 34 then
        pos = j + 1
        if not buf then return ssub(s, i, j - 1) end
        buf[#buf + 1] = ssub(s, i, j - 1)
        return concat(buf)
      end
      buf = buf or {}
      buf[#buf + 1] = ssub(s, i, j - 1)
      local c = ssub(s, j + 1, j + 1)
      if c == "u" then
        if not sfind(s, "^%x%x%x%x", j + 2) then pos = j; fail("bad \\u escape") end
        local cp = tonumber(ssub(s, j + 2, j + 5), 16)
        i = j + 6
        if cp >= 0xD800 and cp <= 0xDBFF and sfind(s, "^\\u[dD][c-fC-F]%x%x", i) then
          cp = 0x10000 + (cp - 0xD800) * 0x400 + (tonumber(ssub(s, i + 2, i + 5), 16) - 0xDC00)
          i = i + 6
        end
        buf[#buf + 1] = utf8char(cp)
      else
        local r = UNESC[c]
        if not r then pos = j; fail("bad escape") end
        buf[#buf + 1] = r
        i = j + 2
      end
    end
  end
  local value
  local function collection(close, item)
    pos = pos + 1
    skip()
    if sbyte(s, pos) == close then pos = pos + 1; return end
    while true do
      item()
      skip()
      local d = sbyte(s, pos)
      if d == close then pos = pos + 1; return end
      if d ~= 44 then fail("expected ',' or '" .. schar(close) .. "'") end
      pos = pos + 1
    end
  end
  value = function()
    skip()
    local c = sbyte(s, pos)
    if c == 34 then return str() end
    if c == 123 then
      local obj = {}
      collection(125, function()
        skip()
        if sbyte(s, pos) ~= 34 then fail("expected a string key") end
        local k = str()
        skip()
        if sbyte(s, pos) ~= 58 then fail("expected ':'") end
        pos = pos + 1
        obj[k] = value()
      end)
      return obj
    end
    if c == 91 then
      local arr, n = {}, 0
      collection(93, function() n = n + 1; arr[n] = value() end)
      return arr
    end
    if sfind(s, "^true", pos) then pos = pos + 4; return true end
    if sfind(s, "^false", pos) then pos = pos + 5; return false end
    if sfind(s, "^null", pos) then pos = pos + 4; return nil end
    local a, b = sfind(s, "^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
    local x = a and tonumber(ssub(s, a, b))
    if not x then fail("unexpected character") end
    pos = b + 1
    return x
  end
  local v = value()
  skip()
  if pos <= #s then fail("trailing characters") end
  return v
end

local JSON = { encode = function(v) return json_encode(v) end, decode = json_decode }

------------------------------------------------------------------ limits
-- The wall-clock backstop: the one non-deterministic bound, for work no
-- argument-based charge sees (the `..` operator on long strings, long-string
-- comparisons).  It is the process's CPU time (os.clock), checked here, so it
-- trips between instructions; costed.lua bounds each C call itself.
local function hook()
  local b = budget
  b.used = b.used + b.step
  if b.used >= b.limit then b.tripped = true; rawerror(BUDGET, 0) end
  if os_clock() - b.started > b.backstop then b.timed_out = true; rawerror(TIMEOUT, 0) end
end

-- What costed.lua's wrappers pay for the C work they are about to ask for.
local function charge(units)
  local b = budget
  b.used = b.used + units
  if b.used >= b.limit then b.tripped = true; rawerror(BUDGET, 0) end
end

local function is_memory(e)
  return e == MEMORY or type(e) == "string" and sfind(e, "not enough memory", 1, true) ~= nil
end

-- A failure of the budget or of memory must not be caught by user code.
local function rethrow(ok, ...)
  if not ok then
    if budget.tripped then rawerror(BUDGET, 0) end
    if budget.timed_out then rawerror(TIMEOUT, 0) end
    if is_memory((...)) then rawerror(MEMORY, 0) end
  end
  return ok, ...
end

local function hooked(co)
  debug_sethook(co, hook, "", budget.step) -- hooks are per coroutine: new ones need it too
  return co
end

local function unwrap(ok, ...)
  if ok then return ... end
  rethrow(false, ...)
  rawerror((...), 0)
end

------------------------------------------------------------------ sandbox
local load_library -- below: the node's libraries, compiled on first require
local function det_pairs(t)
  local mt = debug_getmetatable(t)
  local mp = mt and rawget(mt, "__pairs")
  if mp then
    local f, s, c = mp(t)
    return f, s, c
  end
  if type(t) ~= "table" then
    rawerror("bad argument #1 to 'pairs' (table expected, got " .. type(t) .. ")", 2)
  end
  local nums, strs, rest = {}, {}, {}
  for k in next, t do
    local tk = type(k)
    if tk == "number" then nums[#nums + 1] = k
    elseif tk == "string" then strs[#strs + 1] = k
    else rest[#rest + 1] = k end
  end
  sort(nums)
  sort(strs)
  local n = #nums
  for i = 1, #strs do n = n + 1; nums[n] = strs[i] end
  for i = 1, #rest do n = n + 1; nums[n] = rest[i] end
  local i = 0
  return function()
    while i < n do
      i = i + 1
      local k = nums[i]
      local v = rawget(t, k)
      if v ~= nil then return k, v end
    end
  end, t, nil
end

local function det_tostring(v)
  local tv = type(v)
  if tv == "table" or tv == "function" or tv == "thread" or tv == "userdata" then
    local mt = debug_getmetatable(v)
    if mt and rawget(mt, "__tostring") then return rawtostring(v) end
    local id = ids[v]
    if not id then last_id = last_id + 1; id = last_id; ids[v] = id end
    return sformat("%s: 0x%08x", tv, id)
  end
  return rawtostring(v)
end

local function rng_next() -- splitmix64
  rng = rng + 0x9E3779B97F4A7C15
  local z = rng
  z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
  z = (z ~ (z >> 27)) * 0x94D049BB133111EB
  return z ~ (z >> 31)
end

local function random(m, n)
  local r = rng_next()
  if m == nil then return (r >> 11) * 0.5 ^ 53 end
  local lo, up
  if n == nil then lo, up = 1, tointeger(m) else lo, up = tointeger(m), tointeger(n) end
  if not lo or not up then
    rawerror("bad argument to 'random' (number has no integer representation)", 2)
  end
  if lo > up then rawerror("bad argument to 'random' (interval is empty)", 2) end
  local span = up - lo + 1
  if span <= 0 then return lo + r end -- the interval spans all integers (or more)
  return lo + r % span
end

local function randomseed(x)
  rng = tointeger(x) or sunpack("<i8", spack("<d", tonumber(x) or 0))
end

local function copy(t)
  local c = {}
  for k, v in next, t do c[k] = v end
  return c
end

-- The node's Lua libraries (aos's `.bint`, `.crypto`, `.base64`), each under
-- the names aos programs require it by.  One is compiled into a process on its
-- first require, so a process that never asks for one carries none of it; its
-- functions then live in the process's state like the process's own code.
local LIBRARIES = {
  [".bint"] = "bint", bint = "bint",
  [".base64"] = "base64", base64 = "base64",
  [".crypto"] = "crypto", [".crypto.init"] = "crypto", crypto = "crypto",
}

-- What a library's chunk is given: the host's digests, charged by the bytes
-- they read (a digest is one call into C however long its input).
local DIGESTS = { md5 = true, sha1 = true, sha256 = true, sha512 = true, sha3_256 = true,
                  sha3_512 = true, keccak256 = true, keccak512 = true, blake2b = true }
local SLOW = { keccak256 = true, keccak512 = true }
local function digest(algo, data, outlen, key)
  if type(algo) ~= "string" or not DIGESTS[algo] then
    rawerror("unknown digest " .. rawtostring(algo), 2)
  end
  if type(data) ~= "string" then rawerror("a digest reads a string", 2) end
  key = key or ""
  outlen = tointeger(outlen or 0)
  if type(key) ~= "string" or not outlen or outlen < 0 or outlen > 64 or #key > 64 then
    rawerror("blake2b: bad output length or key", 2)
  end
  -- keccak has no C implementation on the host: charged as the slow one it is
  charge(1 + (SLOW[algo] and #data * 64 or (#data + #key) // 16))
  return host_digest(algo, data, outlen, key)
end

local function pbkdf2(algo, password, salt, iterations, keylen)
  iterations, keylen = tointeger(iterations), tointeger(keylen)
  if (algo ~= "sha1" and algo ~= "sha256") or type(password) ~= "string"
     or type(salt) ~= "string" or not iterations or iterations < 1
     or not keylen or keylen < 1 or keylen > 1 << 16 then
    rawerror("pbkdf2: bad arguments", 2)
  end
  -- two compressions per iteration for each output block of 32 bytes (or fewer)
  charge(1 + (#password + #salt) // 16 + iterations * 2 * ((keylen + 19) // 20))
  return host_digest("pbkdf2_" .. algo, password, keylen, salt, iterations)
end
local HOST = { digest = digest, pbkdf2 = pbkdf2 }

load_library = function(loaded, name)
  local lib = LIBRARIES[name]
  if lib == nil then return nil end
  local code = library_code(lib)
  if code == nil then return nil end
  local m = assert(rawload(code, "=" .. lib .. ".lua", "b", P.env))(copy(HOST))
  for alias, file in next, LIBRARIES do
    if file == lib and rawget(loaded, alias) == nil then loaded[alias] = m end
  end
  return m
end

-- The built-in aos module's rarely used half (aos_lazy.lua), compiled into the
-- process when aos first calls one of its functions.  Only aos.lua is given
-- this loader (see load_module): user code never reaches it.
local function aos_part()
  return assert(rawload(aos_lazy_code(), "=aos.lua", "b", P.env))
end

local function new_sandbox()
  local S = {}
  for _, k in ipairs({ "assert", "error", "ipairs", "next", "rawequal", "rawget", "rawlen",
                       "rawset", "select", "tonumber", "type", "getmetatable", "_VERSION" }) do
    S[k] = _G[k]
  end
  S.pairs, S.tostring = det_pairs, det_tostring
  S.print = function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = det_tostring((select(i, ...))) end
    out[#out + 1] = concat(parts, "\t")
  end
  S.load = function(chunk, name, mode, ...) -- text only, in the process's globals by default
    if type(chunk) == "string" then charge(1 + #chunk // 16) end
    local env = P.env
    if select("#", ...) > 0 then env = ... end
    return rawload(chunk, name, "t", env)
  end
  S.loadstring = function(s, name)
    if type(s) == "string" then charge(1 + #s // 16) end
    return rawload(s, name, "t", P.env)
  end
  S.require = function(name)
    local pkg = rawget(P.env, "package")
    local loaded = type(pkg) == "table" and rawget(pkg, "loaded")
    local m = type(loaded) == "table" and rawget(loaded, name) or nil
    if m == nil and type(loaded) == "table" then m = load_library(loaded, name) end
    if m == nil then
      rawerror("module '" .. det_tostring(name) .. "' not found (only loaded modules can be)", 2)
    end
    return m
  end
  S.pcall = function(f, ...) return rethrow(rawpcall(f, ...)) end
  S.xpcall = function(f, h, ...) return rethrow(rawxpcall(f, h, ...)) end
  S.setmetatable = function(t, mt)
    if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
      rawerror("__gc metamethods are not allowed in a process", 2)
    end
    return setmetatable(t, mt)
  end
  S.collectgarbage = function() return 0 end
  S.unpack = table.unpack
  S.string, S.table, S.utf8 = copy(string), copy(table), copy(utf8)
  local W, T = costed(charge, limits, function(e)
    return e == BUDGET or e == TIMEOUT or is_memory(e)
  end)
  for k, f in next, W do S.string[k] = f end
  for k, f in next, T do S.table[k] = f end
  S.math = copy(math)
  S.math.random, S.math.randomseed = random, randomseed
  S.coroutine = copy(coroutine)
  S.coroutine.create = function(f) return hooked(co_create(f)) end
  S.coroutine.resume = function(co, ...) return rethrow(co_resume(co, ...)) end
  S.coroutine.wrap = function(f)
    local co = hooked(co_create(f))
    return function(...) return unwrap(co_resume(co, ...)) end
  end
  S.os = {
    time = function() return now end,
    clock = function() return 0.0 end,
    date = function(fmt, t)
      fmt = fmt or "%c"
      if ssub(fmt, 1, 1) ~= "!" then fmt = "!" .. fmt end
      return os_date(fmt, t or now // 1000)
    end,
    difftime = os_difftime,
  }
  S.package = { loaded = { json = JSON, string = S.string, table = S.table, math = S.math,
                           utf8 = S.utf8, coroutine = S.coroutine } }
  S._G = S
  return S
end

P.env = new_sandbox()
STRING_MT.__index = P.env.string -- ("x"):f() sees the process's own string table

-- What the runtime provides, by name: a snapshot refers to these, never copies them.
local KNOWN = { ["(string metatable)"] = STRING_MT }
for name, v in next, P.env do
  if type(v) == "function" then KNOWN[name] = v end
end
for _, lib in ipairs({ "string", "table", "math", "utf8", "coroutine", "os" }) do
  for name, v in next, P.env[lib] do
    if type(v) == "function" then KNOWN[lib .. "." .. name] = v end
  end
end
for name, v in next, JSON do KNOWN["json." .. name] = v end
for name, v in next, HOST do KNOWN["(aonode) " .. name] = v end
KNOWN["(aonode) aos_lazy.lua"] = aos_part

------------------------------------------------------------------ results
local function text(v)
  local tv = type(v)
  if tv == "string" then return v end
  if tv == "number" or tv == "boolean" then return rawtostring(v) end
  if tv == "nil" then return nil end
  return json_encode(v, true)
end

local function tag_list(tags)
  local list = {}
  if type(tags) ~= "table" then return list end
  if rawget(tags, 1) ~= nil or next(tags) == nil then
    for i = 1, rawlen(tags) do
      local t = rawget(tags, i)
      if type(t) == "table" then
        list[#list + 1] = { name = text(rawget(t, "name")) or "",
                            value = text(rawget(t, "value")) or "" }
      end
    end
  else -- a { name = value } map
    local names = {}
    for k in next, tags do if type(k) == "string" then names[#names + 1] = k end end
    sort(names)
    for i = 1, #names do
      list[i] = { name = names[i], value = text(rawget(tags, names[i])) or "" }
    end
  end
  return list
end

local function message_doc(m) -- aos shape, plus every tag as a key (the first value wins)
  if type(m) ~= "table" then rawerror("an outbox entry is a " .. type(m) .. ", not a table", 0) end
  local doc = { Tags = tag_list(rawget(m, "Tags")), Target = text(rawget(m, "Target")),
                Anchor = text(rawget(m, "Anchor")), Data = text(rawget(m, "Data")) or "" }
  for _, t in ipairs(doc.Tags) do
    if doc[t.name] == nil then doc[t.name] = t.value end
  end
  return doc
end

local function list_of(v, f)
  local r = {}
  if type(v) == "table" then
    for i = 1, rawlen(v) do r[i] = f(rawget(v, i)) end
  end
  return r
end

local function same(v) return v end

local function results_json(res)
  if type(res) ~= "table" then res = {} end
  local output = rawget(res, "Output")
  if type(output) == "table" then output = rawget(output, "data") end
  return json_encode({
    data = text(rawget(res, "Data")),
    output = output ~= nil and text(output) or concat(out, "\n"),
    error = text(rawget(res, "Error")),
    outbox = list_of(rawget(res, "Messages"), message_doc),
    spawns = list_of(rawget(res, "Spawns"), message_doc),
    assignments = list_of(rawget(res, "Assignments"), same),
  }, true)
end

------------------------------------------------------------------ API
local function errtext(e)
  local te = type(e)
  if te == "string" then return e end
  if te == "number" or te == "boolean" or te == "nil" then return rawtostring(e) end
  if te == "table" and type(rawget(e, "message")) == "string" then return rawget(e, "message") end
  return "(error object is a " .. te .. " value)"
end

-- Runs fn under the budget: ("ok", value, output) or (kind, message, output).
local function guarded(fn, a, b, c, limit, step)
  budget.used, budget.limit, budget.step, budget.tripped = 0, limit, step, false
  budget.timed_out, budget.started = false, os_clock()
  out = {}
  debug_sethook(hook, "", step)
  local ok, v = rawpcall(fn, a, b, c)
  debug_sethook()
  local output = concat(out, "\n")
  if ok then return "ok", v, output end
  if budget.tripped then return "budget", BUDGET, output end
  if budget.timed_out then return "timeout", TIMEOUT, output end
  if is_memory(v) then return "memory", MEMORY, output end
  return "error", errtext(v), output
end

local function load_module(src, name, binary) -- binary: the node's own compiled module only
  local chunk, err = rawload(src, "=" .. name, binary and "b" or "t", P.env)
  if not chunk then rawerror(err, 0) end
  local r
  if binary then r = chunk(aos_part) else r = chunk() end -- a user's module gets no loader
  if type(r) == "function" then r = { handle = r } end
  if type(r) == "table" and type(rawget(r, "handle")) == "function" then P.process = r end
  return ""
end

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in next, v do c[k] = deep_copy(x) end
  return c
end

local last_env_json, last_env -- a process's env rarely changes: decode it once
local function run_message(msg_json, data, env_json)
  local msg = json_decode(msg_json)
  if data ~= nil then msg.Data = data end
  if env_json ~= last_env_json then last_env_json, last_env = env_json, json_decode(env_json) end
  return results_json(P.process.handle(msg, deep_copy(last_env))) -- the module may change it
end

-- The serializer (lua_snapshot.lua; its chunk keeps the name snapshot.lua, which error texts show) is compiled when a dump or restore needs it and
-- dropped after: its code would otherwise be ~55 KiB of every live process's
-- heap for an operation that runs once per hundred messages.  Python keeps the
-- one copy of its source and passes it in.
local function with_serializer(src, f, arg)
  local serializer = assert(rawload(src, "=snapshot.lua", "t", _G))()
  local r = f(serializer, arg)
  serializer = nil
  collectgarbage() -- the dump's or load's working tables, and the serializer
  return r
end

local function dump_with(serializer)
  return serializer.dump({ env = P.env, process = P.process, strings = STRING_MT.__index,
                           ids = ids, last_id = last_id }, KNOWN)
end

local function restore_with(serializer, s)
  local root = serializer.load(s, KNOWN)
  P.env, P.process, ids, last_id = root.env, root.process, root.ids, root.last_id
  STRING_MT.__index = root.strings
end

return {
  load_module = function(src, name, binary, limit, step)
    return guarded(load_module, src, name, binary, limit, step)
  end,
  has_process = function() return P.process ~= nil end,
  set_limits = function(max_string, backstop) limits.max_string, budget.backstop = max_string, backstop end,
  run = function(msg_json, data, env_json, seed, ts, limit, step)
    rng, now = seed, ts
    return guarded(run_message, msg_json, data, env_json, limit, step)
  end,
  dump = function(src) return with_serializer(src, dump_with) end,
  restore = function(src, s) with_serializer(src, restore_with, s) end,
  collect = function() collectgarbage() end,
}
