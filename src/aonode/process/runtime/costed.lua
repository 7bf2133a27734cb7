-- aonode: the sandbox's string and table functions, made to pay for their C work.
-- Loaded by lua.py and handed to sandbox.lua, which calls it once per VM.
--
-- Why: the instruction budget counts VM instructions, and one call into C is
-- one instruction however long the C code runs (string.rep of 60 MiB, a
-- backtracking pattern over a long subject).  Each wrapper here charges the
-- budget for the work it is about to ask of C, computed from its arguments
-- alone (lengths, counts), never from a clock, so the same message fails or
-- succeeds the same way on every node (invariant 7).
--
-- Patterns: the worst case of Lua's backtracking matcher grows as the subject
-- length to the power of the number of quantifiers that can backtrack.  When
-- that bound is small the C matcher runs and its bound is charged; when it is
-- not, the match runs in the Lua port below instead (the same algorithm as
-- lstrlib.c, the same results), whose every step the budget counts, so only a
-- match that really does that much work runs out of budget.
local type, tostring, select, error, rawlen = type, tostring, select, error, rawlen
local tointeger, ipairs = math.tointeger, ipairs
local sbyte, ssub, schar, sfind = string.byte, string.sub, string.char, string.find
local concat = table.concat

return function(charge, limits, fatal)
  local C = {
    find = string.find, match = string.match, gmatch = string.gmatch, gsub = string.gsub,
    rep = string.rep, format = string.format, upper = string.upper, lower = string.lower,
    reverse = string.reverse, sub = string.sub, byte = string.byte,
    concat = table.concat, sort = table.sort, unpack = table.unpack,
  }
  local C_STEPS = 1 << 22 -- worst-case steps above which the Lua matcher runs
  local PER_UNIT = 16     -- bytes (or C matcher steps) per instruction of budget

  local function pay(steps) charge(1 + steps // PER_UNIT) end
  -- A result past the memory cap fails as the cap would, before C allocates it
  -- (the same message whatever the heap holds, so the same on every node).
  local function too_large() error("memory limit exceeded", 0) end

  local function str(v, n, fname)
    local tv = type(v)
    if tv == "string" then return v end
    if tv == "number" then return tostring(v) end
    error("bad argument #" .. n .. " to '" .. fname .. "' (string expected, got " ..
          (tv == "nil" and "no value" or tv) .. ")", 3)
  end

  ------------------------------------------------------------ cost of a pattern
  local SPECIALS = "[%^%$%*%+%?%.%(%)%[%]%%%-]"
  local DIGIT = {}
  for d = 48, 57 do DIGIT[d] = true end

  -- Worst-case steps of matching pattern p against n bytes from every start.
  local function pattern_cost(p, n, plain)
    local m = #p
    if plain or not sfind(p, SPECIALS) then return (m + 1) * (n + 1) end
    local anchored = sbyte(p, 1) == 94
    local i, factor, last_risky = anchored and 2 or 1, 1, nil
    local risky = {} -- positions where a backtracking item ends
    while i <= m do
      local c = sbyte(p, i)
      local item_end
      if c == 37 then -- %
        local d = sbyte(p, i + 1)
        if d == 98 then item_end = i + 3; risky[#risky + 1] = { item_end, n + 1, true }
        elseif d == 102 then
          local j = i + 3
          if sbyte(p, j) == 94 then j = j + 1 end
          j = j + 1
          while j <= m and sbyte(p, j) ~= 93 do j = j + (sbyte(p, j) == 37 and 2 or 1) end
          item_end = j
        elseif d and DIGIT[d] then item_end = i + 1; risky[#risky + 1] = { item_end, n + 1, true }
        else item_end = i + 1 end
      elseif c == 91 then -- [set]
        local j = i + 1
        if sbyte(p, j) == 94 then j = j + 1 end
        j = j + 1
        while j <= m and sbyte(p, j) ~= 93 do j = j + (sbyte(p, j) == 37 and 2 or 1) end
        item_end = j
      else
        item_end = i
      end
      local q = sbyte(p, item_end + 1)
      if c ~= 40 and c ~= 41 and (q == 42 or q == 43 or q == 45 or q == 63) then
        item_end = item_end + 1
        risky[#risky + 1] = { item_end, q == 63 and 2 or n + 1 }
      end
      i = item_end + 1
    end
    -- A quantifier followed only by captures always succeeds once reached, so it
    -- runs once per match (additive); every other one multiplies.
    for k = 1, #risky do
      local r = risky[k]
      if k == #risky and r[2] == n + 1 and not r[3] and sfind(p, "^[()]*$", r[1] + 1) then
        last_risky = n + 1
      else
        factor = factor * r[2]
        if factor > C_STEPS then return C_STEPS + 1 end
      end
    end
    local cost = (m + 1) * factor * (anchored and 1 or n + 1) + (last_risky or 0)
    return cost
  end

  ------------------------------------------------------------ the Lua matcher
  -- A port of lstrlib.c's match(): same items, same backtracking order.
  local CAP_UNFINISHED, CAP_POSITION, MAXCCALLS = -1, -2, 200
  -- %a, %d, ...: a 256-entry table per class, built the first time the Lua
  -- matcher meets the class (most processes never run it: no memory spent).
  local CLASS, LETTERS = {}, {}
  for _, k in ipairs({ "a", "c", "d", "g", "l", "p", "s", "u", "w", "x", "z" }) do
    LETTERS[sbyte(k)], LETTERS[sbyte(k:upper())] = k, k
  end
  local function class_table(cl)
    local k = LETTERS[cl]
    if not k then return nil end
    local yes, no = {}, {}
    for b = 0, 255 do
      local hit = (k == "z" and b == 0) or (k ~= "z" and sfind(schar(b), "^%" .. k) ~= nil)
      yes[b], no[b] = hit, not hit
    end
    CLASS[sbyte(k)], CLASS[sbyte(k:upper())] = yes, no
    return CLASS[cl]
  end

  local function new_state(src, pat)
    local ms = { src = src, n = #src, pat = pat, m = #pat, level = 0, depth = MAXCCALLS,
                 init = {}, len = {} }
    return ms
  end

  local function match_class(c, cl)
    local t = CLASS[cl] or class_table(cl)
    if t then return t[c] end
    return cl == c
  end

  local function class_end(ms, p)
    local pat, m = ms.pat, ms.m
    local c = sbyte(pat, p)
    p = p + 1
    if c == 37 then
      if p > m then error("malformed pattern (ends with '%')", 0) end
      return p + 1
    elseif c == 91 then
      if sbyte(pat, p) == 94 then p = p + 1 end
      repeat
        if p > m then error("malformed pattern (missing ']')", 0) end
        local cc = sbyte(pat, p)
        p = p + 1
        if cc == 37 and p <= m then p = p + 1 end
      until sbyte(pat, p) == 93
      return p + 1
    end
    return p
  end

  local function match_bracket(ms, c, p, ec)
    local pat, sig = ms.pat, true
    p = p + 1
    if sbyte(pat, p) == 94 then sig = false; p = p + 1 end
    while p < ec do
      local pc = sbyte(pat, p)
      if pc == 37 then
        p = p + 1
        if match_class(c, sbyte(pat, p)) then return sig end
        p = p + 1
      elseif sbyte(pat, p + 1) == 45 and p + 2 < ec then
        if pc <= c and c <= sbyte(pat, p + 2) then return sig end
        p = p + 3
      else
        if pc == c then return sig end
        p = p + 1
      end
    end
    return not sig
  end

  local function single(ms, s, p, ep)
    if s > ms.n then return false end
    local c, pc = sbyte(ms.src, s), sbyte(ms.pat, p)
    if pc == 46 then return true end
    if pc == 37 then return match_class(c, sbyte(ms.pat, p + 1)) end
    if pc == 91 then return match_bracket(ms, c, p, ep - 1) end
    return pc == c
  end

  local do_match

  local function max_expand(ms, s, p, ep)
    local i = 0
    while single(ms, s + i, p, ep) do i = i + 1 end
    while i >= 0 do
      local r = do_match(ms, s + i, ep + 1)
      if r then return r end
      i = i - 1
    end
    return nil
  end

  local function min_expand(ms, s, p, ep)
    while true do
      local r = do_match(ms, s, ep + 1)
      if r then return r end
      if single(ms, s, p, ep) then s = s + 1 else return nil end
    end
  end

  local function start_capture(ms, s, p, what)
    local level = ms.level + 1
    ms.init[level], ms.len[level], ms.level = s, what, level
    local r = do_match(ms, s, p)
    if not r then ms.level = ms.level - 1 end
    return r
  end

  local function end_capture(ms, s, p)
    local l
    for k = ms.level, 1, -1 do
      if ms.len[k] == CAP_UNFINISHED then l = k break end
    end
    if not l then error("invalid pattern capture", 0) end
    ms.len[l] = s - ms.init[l]
    local r = do_match(ms, s, p)
    if not r then ms.len[l] = CAP_UNFINISHED end
    return r
  end

  local function check_capture(ms, d)
    local l = d - 48
    if l < 1 or l > ms.level or ms.len[l] == CAP_UNFINISHED then
      error("invalid capture index %" .. l, 0)
    end
    return l
  end

  local function match_capture(ms, s, d)
    local l = check_capture(ms, d)
    local len = ms.len[l]
    if ms.n - s + 1 >= len and
       ssub(ms.src, ms.init[l], ms.init[l] + len - 1) == ssub(ms.src, s, s + len - 1) then
      return s + len
    end
    return nil
  end

  local function match_balance(ms, s, p)
    if p + 1 > ms.m then error("malformed pattern (missing arguments to '%b')", 0) end
    local src, n = ms.src, ms.n
    if s > n or sbyte(src, s) ~= sbyte(ms.pat, p) then return nil end
    local b, e, cont = sbyte(ms.pat, p), sbyte(ms.pat, p + 1), 1
    while s < n do
      s = s + 1
      local c = sbyte(src, s)
      if c == e then
        cont = cont - 1
        if cont == 0 then return s + 1 end
      elseif c == b then
        cont = cont + 1
      end
    end
    return nil
  end

  local function step(ms, s, p)
    local pat = ms.pat
    while true do
      if p > ms.m then return s end
      local pc = sbyte(pat, p)
      local nx = sbyte(pat, p + 1)
      if pc == 40 then
        if nx == 41 then return start_capture(ms, s, p + 2, CAP_POSITION) end
        return start_capture(ms, s, p + 1, CAP_UNFINISHED)
      elseif pc == 41 then
        return end_capture(ms, s, p + 1)
      elseif pc == 36 and p == ms.m then
        return s == ms.n + 1 and s or nil
      elseif pc == 37 and nx == 98 then
        s = match_balance(ms, s, p + 2)
        if not s then return nil end
        p = p + 4
      elseif pc == 37 and nx == 102 then
        p = p + 2
        if sbyte(pat, p) ~= 91 then error("missing '[' after '%f' in pattern", 0) end
        local ep = class_end(ms, p)
        local prev = s == 1 and 0 or sbyte(ms.src, s - 1)
        local cur = s <= ms.n and sbyte(ms.src, s) or 0
        if match_bracket(ms, prev, p, ep - 1) or not match_bracket(ms, cur, p, ep - 1) then
          return nil
        end
        p = ep
      elseif pc == 37 and nx and DIGIT[nx] then
        s = match_capture(ms, s, nx)
        if not s then return nil end
        p = p + 2
      else
        local ep = class_end(ms, p)
        local epc = sbyte(pat, ep)
        if not single(ms, s, p, ep) then
          if epc == 42 or epc == 63 or epc == 45 then p = ep + 1 else return nil end
        elseif epc == 63 then
          local r = do_match(ms, s + 1, ep + 1)
          if r then return r end
          p = ep + 1
        elseif epc == 43 then
          return max_expand(ms, s + 1, p, ep)
        elseif epc == 42 then
          return max_expand(ms, s, p, ep)
        elseif epc == 45 then
          return min_expand(ms, s, p, ep)
        else
          s, p = s + 1, ep
        end
      end
    end
  end

  do_match = function(ms, s, p)
    ms.depth = ms.depth - 1
    if ms.depth == 0 then error("pattern too complex", 0) end
    local r = step(ms, s, p)
    ms.depth = ms.depth + 1
    return r
  end

  local function capture(ms, i, s, e)
    if i > ms.level then
      if i ~= 1 then error("invalid capture index %" .. i, 0) end
      return ssub(ms.src, s, e - 1)
    end
    local l = ms.len[i]
    if l == CAP_UNFINISHED then error("unfinished capture", 0) end
    if l == CAP_POSITION then return ms.init[i] end
    return ssub(ms.src, ms.init[i], ms.init[i] + l - 1)
  end

  local function captures(ms, s, e, whole)
    local nl = (ms.level == 0 and whole) and 1 or ms.level
    local r = {}
    for i = 1, nl do r[i] = capture(ms, i, s, e) end
    return table.unpack(r, 1, nl)
  end

  local function reset(ms) ms.level, ms.depth = 0, MAXCCALLS end

  local function start_at(init, ls)
    init = init == nil and 1 or tointeger(init)
    if init == nil then error("bad argument #3 (number has no integer representation)", 3) end
    if init < 0 then init = ls + init + 1 end
    if init < 1 then init = 1 end
    return init
  end

  -- C's plain find compares the pattern at every candidate: n × m in the worst
  -- case.  Here C finds the next candidate (memchr) and one comparison is paid.
  local function plain_find(s, p, init)
    local ls, m = #s, #p
    init = start_at(init, ls)
    if init > ls + 1 then return nil end
    if m == 0 then return init, init - 1 end
    local first = ssub(p, 1, 1)
    local pos = init
    while true do
      pos = C.find(s, first, pos, true)
      if not pos or pos + m - 1 > ls then return nil end
      charge(1 + m // PER_UNIT)
      if ssub(s, pos, pos + m - 1) == p then return pos, pos + m - 1 end
      pos = pos + 1
    end
  end

  local function lua_find(find, s, p, init)
    local ls = #s
    init = start_at(init, ls)
    if init > ls + 1 then return nil end
    local ms = new_state(s, p)
    local anchored = sbyte(p, 1) == 94
    local s1 = init
    while true do
      reset(ms)
      local e = do_match(ms, s1, anchored and 2 or 1)
      if e then
        if find then return s1, e - 1, captures(ms, nil, 0, false) end
        return captures(ms, s1, e, true)
      end
      if anchored or s1 > ls then return nil end
      s1 = s1 + 1
    end
  end

  local function any_find(s, p, init, plain)
    if plain or not sfind(p, "[%^%$%*%+%?%.%(%[%%%-]") then -- C's own test for a plain find
      return plain_find(s, p, init)
    end
    return lua_find(true, s, p, init)
  end

  local function add_value(ms, buf, s, e, repl, tr)
    local v
    if tr == "string" then
      local parts, i, lr = {}, 1, #repl
      while i <= lr do
        local j = sfind(repl, "%", i, true)
        if not j then parts[#parts + 1] = ssub(repl, i); break end
        parts[#parts + 1] = ssub(repl, i, j - 1)
        local d = sbyte(repl, j + 1)
        if d == 37 then parts[#parts + 1] = "%"
        elseif d and DIGIT[d] then
          if d == 48 then parts[#parts + 1] = ssub(ms.src, s, e - 1)
          else
            local c = capture(ms, d - 48, s, e)
            parts[#parts + 1] = type(c) == "number" and tostring(c) or c
          end
        else
          error("invalid use of '%' in replacement string", 0)
        end
        i = j + 2
      end
      buf[#buf + 1] = concat(parts)
      return
    elseif tr == "table" then
      v = repl[capture(ms, 1, s, e)]
    else
      v = repl(captures(ms, s, e, true))
    end
    if not v then buf[#buf + 1] = ssub(ms.src, s, e - 1)
    elseif type(v) == "string" or type(v) == "number" then buf[#buf + 1] = tostring(v)
    else error("invalid replacement value (a " .. type(v) .. ")", 0) end
  end

  local function lua_gsub(s, p, repl, max_n)
    local tr = type(repl)
    if tr == "number" then repl, tr = tostring(repl), "string" end
    local ls, anchored = #s, sbyte(p, 1) == 94
    max_n = max_n == nil and ls + 1 or tointeger(max_n)
    local ms, buf = new_state(s, p), {}
    local src, n, lastmatch = 1, 0, nil
    while n < max_n do
      reset(ms)
      local e = do_match(ms, src, anchored and 2 or 1)
      if e and e ~= lastmatch then
        n = n + 1
        add_value(ms, buf, src, e, repl, tr)
        src, lastmatch = e, e
      elseif src <= ls then
        buf[#buf + 1] = ssub(s, src, src)
        src = src + 1
      else
        break
      end
      if anchored then break end
    end
    buf[#buf + 1] = ssub(s, src)
    return concat(buf), n
  end

  -- Errors from the Lua matcher name the caller's line, as C's do (luaL_error).
  local function relocate(ok, ...)
    if ok then return ... end
    local e = ...
    error(e, fatal(e) and 0 or 2)
  end

  local function lua_gmatch(s, p)
    local ms, src, lastmatch, ls = new_state(s, p), 1, nil, #s
    local function iterate()
      while src <= ls + 1 do
        reset(ms)
        local e = do_match(ms, src, 1)
        if e and e ~= lastmatch then
          local from = src
          src, lastmatch = e, e
          return captures(ms, from, e, true)
        end
        src = src + 1
      end
      return nil
    end
    return function() return relocate(pcall(iterate)) end
  end

  ------------------------------------------------------------ the wrappers
  local W = {}
  local function subject(s, init)
    local n = #s
    local i = init and tointeger(init)
    if i and i < 0 then i = n + i + 1 end
    if i and i > 1 then n = n - i + 1 end
    return n < 0 and 0 or n
  end

  function W.find(s, p, init, plain)
    s, p = str(s, 1, "find"), str(p, 2, "find")
    local cost = pattern_cost(p, subject(s, init), plain)
    if cost <= C_STEPS then pay(cost); return C.find(s, p, init, plain) end
    return relocate(pcall(any_find, s, p, init, plain))
  end

  function W.match(s, p, init)
    s, p = str(s, 1, "match"), str(p, 2, "match")
    local cost = pattern_cost(p, subject(s, init), false)
    if cost <= C_STEPS then pay(cost); return C.match(s, p, init) end
    return relocate(pcall(lua_find, false, s, p, init))
  end

  function W.gmatch(s, p)
    s, p = str(s, 1, "gmatch"), str(p, 2, "gmatch")
    local cost = pattern_cost(sbyte(p, 1) == 94 and "%" .. p or p, #s, false)
    if cost <= C_STEPS then pay(cost); return C.gmatch(s, p) end
    return lua_gmatch(s, p)
  end

  function W.gsub(s, p, repl, max_n)
    s, p = str(s, 1, "gsub"), str(p, 2, "gsub")
    local tr = type(repl)
    if not (tr == "string" or tr == "number" or tr == "table" or tr == "function") then
      error("bad argument #3 to 'gsub' (string/function/table expected)", 2)
    end
    local ls = #s
    local out = tr == "string" and ls + (ls + 1) * #repl or ls
    if tr == "string" and out > limits.max_string then
      too_large()
    end
    local cost = pattern_cost(p, ls, false)
    if cost <= C_STEPS then pay(cost + out); return C.gsub(s, p, repl, max_n) end
    pay(out)
    return relocate(pcall(lua_gsub, s, p, repl, max_n))
  end

  function W.rep(s, n, sep)
    s = str(s, 1, "rep")
    local count = tointeger(n) or (type(n) == "number" and n) or n
    sep = sep == nil and "" or str(sep, 3, "rep")
    if type(count) == "number" and count > 0 then
      local total = #s * count + #sep * (count - 1)
      if total > limits.max_string then too_large() end
      pay(total)
    end
    return C.rep(s, n, sep)
  end

  function W.format(fmt, ...)
    fmt = str(fmt, 1, "format")
    local size = #fmt
    for i = 1, select("#", ...) do
      local v = select(i, ...)
      size = size + (type(v) == "string" and #v or 0) + 100 -- widths are two digits at most
    end
    if size > limits.max_string then too_large() end
    pay(size)
    return C.format(fmt, ...)
  end

  local function linear(name)
    local f = C[name]
    return function(s, ...)
      if type(s) == "string" then pay(#s) end
      return f(s, ...)
    end
  end
  W.upper, W.lower, W.reverse, W.sub, W.byte =
    linear("upper"), linear("lower"), linear("reverse"), linear("sub"), linear("byte")

  local T = {}
  function T.concat(t, sep, i, j)
    if type(t) ~= "table" then return C.concat(t, sep, i, j) end
    local first = tointeger(i) or 1
    local last = tointeger(j) or rawlen(t)
    local count = last - first + 1
    if count > 0 then
      local seplen = type(sep) == "string" and #sep or 0
      if seplen * (count - 1) > limits.max_string then too_large() end
      pay(count * PER_UNIT + seplen * (count - 1))
    end
    return C.concat(t, sep, i, j)
  end

  function T.sort(t, cmp)
    if type(t) == "table" then
      local n = rawlen(t)
      local log = 1
      while (1 << log) < n do log = log + 1 end
      pay(n * log * PER_UNIT)
    end
    return C.sort(t, cmp)
  end

  local L = { -- the Lua versions, as the wrappers call them (tests compare them with C)
    find = function(...) return relocate(pcall(any_find, ...)) end,
    match = function(...) return relocate(pcall(lua_find, false, ...)) end,
    plain_find = function(...) return relocate(pcall(plain_find, ...)) end,
    gsub = function(...) return relocate(pcall(lua_gsub, ...)) end,
    gmatch = lua_gmatch,
    cost = pattern_cost,
  }
  return W, T, L
end
