--[[ aonode: deterministic snapshots of a Lua 5.3 value graph.

Privileged code (uses debug, string.dump and binary `load`); user code never
sees this module.  It returns { dump = dump, load = load }:

  dump(root, known) -> string
  load(s, known, env) -> root

`known` maps names to objects the runtime provides (C functions, library
tables, the runtime's own Lua helpers).  A known object is written by name and
looked up by name on load; its contents are not serialised (they belong to the
runtime, not to the process).  If one object has several names, the bytewise
smallest name is used.

`load(s, known, env)`: with `env` (a table) the snapshot's root table is
restored *into* env (env is cleared first, its metatable replaced), so every
reference to the root (the `_G` field, and the `_ENV` upvalue of every function
whose environment was the root) points to env afterwards.  An `_ENV` that was
a known object is re-pointed through `known`; any other `_ENV` table is part of
the graph and restored as such.  Without env, a fresh root is built.

What is written
  Everything reachable from root: nil, booleans, integers and floats (exact
  bits: -0.0, inf, NaN), binary-safe strings, tables (shared references and
  cycles kept), metatables (raw, past __metatable), Lua functions (bytecode of
  string.dump, NOT stripped: line info and names keep error messages identical
  after a restore, and upvalue names let us point out a path) with the value of
  every upvalue, upvalue sharing between closures (debug.upvalueid on dump,
  debug.upvaluejoin on load), and known objects by name.  A C function,
  userdata or thread that is not known is an error naming its path, e.g.
  "Handlers.list[3].handle upvalue 2 (fmt)".
  Weak tables are written as a full garbage collection would leave them: an
  entry is kept only if its weak parts (object keys of __mode "k", object
  values of __mode "v") are reachable without it; a weak-key value is traversed
  only once its key is reachable (ephemeron).

Canonical order (the same graph gives the same bytes in any Lua state; pairs
order, hash seeds and addresses are never used)
  Object ids are assigned breadth-first from root, in discovery order; the
  root gets id 1.  Processing object i discovers its children in this order:
    table:    metatable; then values of scalar keys in key order (false, true,
              numbers ascending, strings bytewise); then known object keys not
              yet seen (by name); then values of object keys that already have
              an id (by id).  An object key that has no id yet is deferred.
    function: the values of upvalues 1..n (a shared upvalue cell is visited at
              its first occurrence only).
  When the queue is empty, deferred entries whose key (and, for weak values,
  value) now has an id are resolved in (table id, key order) and the search
  goes on.  Keys reachable *only* as keys of tables are numbered last, when
  nothing else is left: a colour refinement (Weisfeiler-Lehman, over the
  unnumbered part of the graph, with edges both ways) ranks them by structure
  alone, and they are given ids in (table id, colour, value colour) order.
  Keys it cannot tell apart are interchangeable in all but pathological
  graphs; their order then follows `next` (the one case where bytes may
  differ between states).
  Entries of a table are written as: an array part 1..n (the longest run of
  present integer keys from 1), then the other entries in key order (scalars
  as above, then object keys by id).  Strings are interned in write order.

Format (version 1; varint = unsigned LEB128)
  "AOSS" version:u8  nobj:varint
  nobj object heads:  kind:u8 (1 table, 2 Lua function, 3 known)
                      function: bytecode:value   known: name:value
  nobj object bodies: table:    metatable:value narr:varint narr x value
                                nhash:varint nhash x (key:value value:value)
                      function: nup:varint nup x cell, where a cell is
                                0 followed by the value (a new upvalue) or
                                c > 0 (join upvalue cell number c, counted in
                                order of first appearance)
                      known:    nothing
  root:value
  value: 0 nil | 1 false | 2 true | 3 int (zigzag varint) | 4 float (8 bytes,
         little-endian double) | 5 new string (len:varint bytes) |
         6 string ref (index:varint, 1-based, in order of first write) |
         7 object (id:varint)

Snapshots must come from a trusted source: Lua 5.3 does not verify bytecode.
The collector is stopped during dump so that no finalizer (user code) runs
half-way through.
]]

local type, next, rawget, rawset, error, tostring, pcall, select =
  type, next, rawget, rawset, error, tostring, pcall, select
local math_type, huge = math.type, math.huge
local sort, concat = table.sort, table.concat
local schar, sbyte, ssub, spack, sunpack, sdump, sfind, sformat, smatch, sgsub =
  string.char, string.byte, string.sub, string.pack, string.unpack, string.dump,
  string.find, string.format, string.match, string.gsub
local dgetmeta, dsetmeta = debug.getmetatable, debug.setmetatable
local dgetupvalue, dsetupvalue = debug.getupvalue, debug.setupvalue
local dupvalueid, dupvaluejoin, dgetinfo = debug.upvalueid, debug.upvaluejoin, debug.getinfo
local lload, collectgarbage = load, collectgarbage
local setlocale = os and os.setlocale

local MAGIC, VERSION = "AOSS", 1
local V_NIL, V_FALSE, V_TRUE, V_INT, V_FLT, V_STR, V_SREF, V_OBJ = 0, 1, 2, 3, 4, 5, 6, 7
local K_TABLE, K_FUNC, K_KNOWN = 1, 2, 3
-- how an object was reached (for error paths)
local E_ROOT, E_VAL, E_KEY, E_META, E_UPV = 0, 1, 2, 3, 4

local CH = {}
for b = 0, 255 do CH[b] = schar(b) end

local function is_obj(v)
  local t = type(v)
  return t == "table" or t == "function" or t == "userdata" or t == "thread"
end

local function is_cfunction(f)
  return dgetinfo(f, "S").what == "C"
end

-- Bytewise string order.  `<` on strings uses strcoll, which is bytewise only
-- in the C locale; elsewhere fall back to a (slower) explicit comparison.
local function bytes_less(a, b)
  local n = #a < #b and #a or #b
  for i = 1, n do
    local x, y = sbyte(a, i), sbyte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function plain_collate()
  if not setlocale then return true end
  local c = setlocale(nil, "collate")
  return c == "C" or c == "POSIX"
end

local function new_orders()
  if plain_collate() then
    return function(list) sort(list) end, function(a, b) return a < b end
  end
  return function(list) sort(list, bytes_less) end, bytes_less
end

----------------------------------------------------------------------------
-- dump
----------------------------------------------------------------------------

local function dump_graph(root, known)
  if type(known) ~= "table" then error("snapshot: known must be a table", 0) end
  local sort_strings, str_less = new_orders()

  -- known: object -> canonical (bytewise smallest) name, and name -> object
  local kname, kobj = {}, {}
  for name, obj in next, known do
    if type(name) ~= "string" then error("snapshot: known names must be strings", 0) end
    if is_obj(obj) then
      local cur = kname[obj]
      if cur == nil or str_less(name, cur) then kname[obj] = name end
    end
  end
  for obj, name in next, kname do kobj[name] = obj end

  local id, objs, kind = {}, {}, {}
  local vp, vt, vk = {}, {}, {} -- parent id, edge type, key: the path to each object
  local n = 0
  local skeys, okeys = {}, {} -- per table id: scalar keys in order; object keys (raw)
  local cells, ncell = {}, 0 -- upvalueid -> cell number

  local function key_repr(k)
    local tk = type(k)
    if tk == "string" then
      if smatch(k, "^[%a_][%w_]*$") then return "." .. k end
      return "[" .. sformat("%q", k) .. "]"
    elseif tk == "number" or tk == "boolean" then
      return "[" .. tostring(k) .. "]"
    end
    return "[<" .. tk .. ">]"
  end

  local function path(parent, etype, key)
    local segs = {}
    local i, t, k = parent, etype, key
    while true do
      if t == E_VAL then
        segs[#segs + 1] = key_repr(k)
      elseif t == E_KEY then
        segs[#segs + 1] = " (a key)"
      elseif t == E_META then
        segs[#segs + 1] = " metatable"
      elseif t == E_UPV then
        local name = dgetupvalue(objs[i], k)
        segs[#segs + 1] = " upvalue " .. k .. ((name and name ~= "") and (" (" .. name .. ")") or "")
      end
      if t == E_ROOT or i == 0 then break end
      i, t, k = vp[i], vt[i], vk[i]
    end
    local out = {}
    for j = #segs, 1, -1 do out[#out + 1] = segs[j] end
    local s = concat(out)
    s = sgsub(s, "^%.", "")
    s = sgsub(s, "^ ", "")
    if s == "" then s = "root" end
    return s
  end

  local function bad(v, parent, etype, key)
    local tv = type(v)
    local what
    if tv == "function" then
      what = "C function"
    elseif tv == "thread" then
      what = "coroutine (thread)"
    else
      what = tv
    end
    error(sformat("snapshot: cannot serialise %s at %s: not in known", what,
      path(parent, etype, key)), 0)
  end

  local function label(v, k, parent, etype, key)
    n = n + 1
    id[v], objs[n], kind[n] = n, v, k
    vp[n], vt[n], vk[n] = parent, etype, key
  end

  -- Give v an id if it is an object seen for the first time.
  local function discover(v, parent, etype, key)
    if not is_obj(v) or id[v] then return end
    if kname[v] then return label(v, K_KNOWN, parent, etype, key) end
    local tv = type(v)
    if tv == "table" then return label(v, K_TABLE, parent, etype, key) end
    if tv == "function" and not is_cfunction(v) then
      return label(v, K_FUNC, parent, etype, key)
    end
    bad(v, parent, etype, key)
  end

  local function avail(v) -- has (or may be given at once) an id
    return not is_obj(v) or id[v] ~= nil or kname[v] ~= nil
  end

  -- deferred entries: table id, key, value, weak key?, weak value?, active
  local pt, pk, pv, pwk, pwv, pa, np = {}, {}, {}, {}, {}, {}, 0
  local function defer(i, k, v, wk, wv)
    np = np + 1
    pt[np], pk[np], pv[np], pwk[np], pwv[np], pa[np] = i, k, v, wk, wv, true
  end

  local function entry(i, k, v, weakv)
    if weakv and not avail(v) then return defer(i, k, v, false, true) end
    discover(v, i, E_VAL, k)
  end

  local function process_table(i, t)
    local mt = dgetmeta(t)
    local weakk, weakv = false, false
    if mt ~= nil then
      discover(mt, i, E_META)
      local mode = rawget(mt, "__mode")
      if type(mode) == "string" then
        weakk = sfind(mode, "k", 1, true) ~= nil
        weakv = sfind(mode, "v", 1, true) ~= nil
      end
    end
    local hasf, hast = false, false
    local nums, strs, objk, nn, ns, no = {}, {}, {}, 0, 0, 0
    for k in next, t do
      local tk = type(k)
      if tk == "string" then
        ns = ns + 1; strs[ns] = k
      elseif tk == "number" then
        nn = nn + 1; nums[nn] = k
      elseif tk == "boolean" then
        if k then hast = true else hasf = true end
      else
        no = no + 1; objk[no] = k
      end
    end
    sort(nums)
    sort_strings(strs)
    local keys, nk = {}, 0
    if hasf then nk = nk + 1; keys[nk] = false end
    if hast then nk = nk + 1; keys[nk] = true end
    for j = 1, nn do nk = nk + 1; keys[nk] = nums[j] end
    for j = 1, ns do nk = nk + 1; keys[nk] = strs[j] end
    skeys[i], okeys[i] = keys, objk
    for j = 1, nk do
      local k = keys[j]
      entry(i, k, rawget(t, k), weakv)
    end
    if no == 0 then return end
    local names = {}
    for j = 1, no do
      local k = objk[j]
      if not id[k] and kname[k] then names[#names + 1] = kname[k] end
    end
    sort_strings(names)
    for j = 1, #names do discover(kobj[names[j]], i, E_KEY) end
    local ready = {}
    for j = 1, no do
      local k = objk[j]
      local kid = id[k]
      if kid then
        ready[#ready + 1] = kid
      else
        if not weakk and not (type(k) == "table" or (type(k) == "function" and not is_cfunction(k))) then
          bad(k, i, E_KEY)
        end
        defer(i, k, rawget(t, k), weakk, weakv and is_obj(rawget(t, k)))
      end
    end
    sort(ready)
    for j = 1, #ready do
      local k = objs[ready[j]]
      entry(i, k, rawget(t, k), weakv)
    end
  end

  local function process_function(i, f)
    for j = 1, huge do
      local name, v = dgetupvalue(f, j)
      if name == nil then break end
      local uid = dupvalueid(f, j)
      if not cells[uid] then
        ncell = ncell + 1
        cells[uid] = ncell
        discover(v, i, E_UPV, j)
      end
    end
  end

  local TRANK = { boolean = 1, number = 2, string = 3 }
  local function key_less(a, b)
    local ta, tb = TRANK[type(a)] or 4, TRANK[type(b)] or 4
    if ta ~= tb then return ta < tb end
    if ta == 1 then return (not a) and b end
    if ta == 2 then return a < b end
    if ta == 3 then return str_less(a, b) end
    return id[a] < id[b]
  end

  -- Resolve deferred entries whose key (and weak value) now have ids.
  local function resolve()
    local ready, nr = {}, 0
    for p = 1, np do
      if pa[p] and avail(pk[p]) and (not is_obj(pk[p]) or id[pk[p]]) and (not pwv[p] or avail(pv[p])) then
        nr = nr + 1; ready[nr] = p
      end
    end
    if nr == 0 then return false end
    sort(ready, function(a, b)
      if pt[a] ~= pt[b] then return pt[a] < pt[b] end
      return key_less(pk[a], pk[b])
    end)
    for j = 1, nr do
      local p = ready[j]
      pa[p] = false
      discover(pv[p], pt[p], E_VAL, pk[p])
    end
    -- compact
    local m = 0
    for p = 1, np do
      if pa[p] then
        m = m + 1
        pt[m], pk[m], pv[m], pwk[m], pwv[m], pa[m] = pt[p], pk[p], pv[p], pwk[p], pwv[p], true
      end
    end
    for p = m + 1, np do pt[p], pk[p], pv[p], pwk[p], pwv[p], pa[p] = nil end
    np = m
    return true
  end

  -- Colour refinement of the unnumbered objects reachable from deferred
  -- entries: a structural (isomorphism-invariant) rank for keys that are
  -- reachable only as keys.
  local function refine()
    local U, ui = {}, {}
    local outs, ins = {}, {}
    local function add(x)
      if is_obj(x) and not id[x] and not kname[x] and not ui[x] then
        U[#U + 1] = x
        ui[x] = #U
        outs[#U], ins[#U] = {}, {}
      end
    end
    local function edge(src, lab, other, dst) -- src: object (numbered or in U)
      if ui[src] then
        local o = outs[ui[src]]
        o[#o + 1] = { lab, other, dst }
      end
      if ui[dst] then
        local l = ins[ui[dst]]
        l[#l + 1] = { src, lab, other }
      end
    end
    for p = 1, np do
      if pa[p] then add(pk[p]); add(pv[p]) end
    end
    for p = 1, np do
      if pa[p] then
        local t = objs[pt[p]]
        edge(t, "k", pv[p], pk[p])
        edge(t, "v", pk[p], pv[p])
      end
    end
    local colour = {}
    local function sref(x)
      local tx = type(x)
      if x == nil then return "n" end
      if tx == "boolean" then return x and "T" or "F" end
      if tx == "number" then
        if math_type(x) == "integer" then return "i" .. x .. "," end
        return "d" .. spack("<d", x)
      end
      if tx == "string" then return "s" .. #x .. ":" .. x end
      if id[x] then return "#" .. id[x] .. "," end
      if kname[x] then return "K" .. #kname[x] .. ":" .. kname[x] end
      return "c" .. colour[x] .. ","
    end
    local base = {}
    local j = 1
    while j <= #U do
      local x = U[j]
      local tx = type(x)
      if tx == "table" then
        base[j] = "t"
        local mt = dgetmeta(x)
        if mt ~= nil then add(mt); edge(x, "m", nil, mt) end
        for k, v in next, x do
          add(k); add(v)
          if is_obj(k) then
            edge(x, "k", v, k)
            edge(x, "v", k, v)
          else
            edge(x, "e" .. sref(k), nil, v)
          end
        end
      elseif tx == "function" and not is_cfunction(x) then
        base[j] = "f" .. sdump(x)
        for u = 1, huge do
          local name, v = dgetupvalue(x, u)
          if name == nil then break end
          add(v)
          edge(x, "u" .. u .. ",", nil, v)
        end
      else
        base[j] = "x" .. tx
      end
      j = j + 1
    end
    local function rank(sigs)
      local uniq, seen = {}, {}
      for q = 1, #sigs do
        local s = sigs[q]
        if not seen[s] then seen[s] = true; uniq[#uniq + 1] = s end
      end
      sort_strings(uniq)
      local r = {}
      for q = 1, #uniq do r[uniq[q]] = q end
      for q = 1, #U do colour[U[q]] = r[sigs[q]] end
      return #uniq
    end
    local classes = rank(base)
    for _ = 1, #U do
      local sigs = {}
      for q = 1, #U do
        local parts = {}
        for _, e in next, outs[q] do parts[#parts + 1] = e[1] .. sref(e[2]) .. sref(e[3]) end
        sort_strings(parts)
        local inp = {}
        for _, e in next, ins[q] do inp[#inp + 1] = sref(e[1]) .. e[2] .. sref(e[3]) end
        sort_strings(inp)
        sigs[q] = colour[U[q]] .. "|" .. concat(parts, "\1") .. "|" .. concat(inp, "\1")
      end
      local c = rank(sigs)
      if c == classes then break end
      classes = c
    end
    return colour, sref
  end

  -- Number the keys that are reachable only as keys: one refinement, then
  -- the keys in (table id, colour, value) order.
  local function tie_break()
    local chosen = {}
    for p = 1, np do
      if pa[p] and not pwk[p] and not avail(pk[p]) and (not pwv[p] or avail(pv[p])) then
        chosen[#chosen + 1] = p
      end
    end
    if #chosen == 0 then return false end
    local colour, sref = refine()
    local vref = {}
    for q = 1, #chosen do vref[chosen[q]] = sref(pv[chosen[q]]) end
    sort(chosen, function(a, b)
      if pt[a] ~= pt[b] then return pt[a] < pt[b] end
      local ca, cb = colour[pk[a]], colour[pk[b]]
      if ca ~= cb then return ca < cb end
      return str_less(vref[a], vref[b])
    end)
    for q = 1, #chosen do discover(pk[chosen[q]], pt[chosen[q]], E_KEY) end
    return true
  end

  -- number everything
  if is_obj(root) then discover(root, 0, E_ROOT) end
  local head = 1
  repeat
    while head <= n do
      local v, k = objs[head], kind[head]
      if k == K_TABLE then
        process_table(head, v)
      elseif k == K_FUNC then
        process_function(head, v)
      end
      head = head + 1
    end
  until not (resolve() or tie_break())

  -- write
  local buf, nb = {}, 0
  local sidx, nstr = {}, 0
  local function w(s) nb = nb + 1; buf[nb] = s end
  local function wvarint(z)
    if z >= 0 and z < 128 then return w(CH[z]) end
    repeat
      local b = z & 0x7f
      z = z >> 7
      if z ~= 0 then b = b | 0x80 end
      w(CH[b])
    until z == 0
  end
  local function wvalue(v)
    local tv = type(v)
    if v == nil then
      w(CH[V_NIL])
    elseif tv == "boolean" then
      w(v and CH[V_TRUE] or CH[V_FALSE])
    elseif tv == "number" then
      if math_type(v) == "integer" then
        w(CH[V_INT]); wvarint((v << 1) ~ -(v >> 63))
      else
        w(CH[V_FLT]); w(spack("<d", v))
      end
    elseif tv == "string" then
      local si = sidx[v]
      if si then
        w(CH[V_SREF]); wvarint(si)
      else
        nstr = nstr + 1
        sidx[v] = nstr
        w(CH[V_STR]); wvarint(#v); w(v)
      end
    else
      w(CH[V_OBJ]); wvarint(id[v])
    end
  end
  local function included(v) return not is_obj(v) or id[v] ~= nil end
  local written = 0 -- upvalue cells written so far

  w(MAGIC); w(CH[VERSION]); wvarint(n)
  for i = 1, n do
    local k = kind[i]
    w(CH[k])
    if k == K_FUNC then
      wvalue(sdump(objs[i]))
    elseif k == K_KNOWN then
      wvalue(kname[objs[i]])
    end
  end
  for i = 1, n do
    local k, o = kind[i], objs[i]
    if k == K_TABLE then
      wvalue(dgetmeta(o))
      local narr = 0
      while true do
        local v = rawget(o, narr + 1)
        if v == nil or not included(v) then break end
        narr = narr + 1
      end
      wvarint(narr)
      for j = 1, narr do wvalue(rawget(o, j)) end
      local hk, hv, nh = {}, {}, 0
      local keys = skeys[i]
      for j = 1, #keys do
        local key = keys[j]
        if not (math_type(key) == "integer" and key >= 1 and key <= narr) then
          local v = rawget(o, key)
          if v ~= nil and included(v) then
            nh = nh + 1; hk[nh], hv[nh] = key, v
          end
        end
      end
      local ob = {}
      for _, key in next, okeys[i] do
        if id[key] then
          local v = rawget(o, key)
          if v ~= nil and included(v) then ob[#ob + 1] = id[key] end
        end
      end
      sort(ob)
      for j = 1, #ob do
        local key = objs[ob[j]]
        nh = nh + 1; hk[nh], hv[nh] = key, rawget(o, key)
      end
      wvarint(nh)
      for j = 1, nh do wvalue(hk[j]); wvalue(hv[j]) end
    elseif k == K_FUNC then
      local nup = 0
      while dgetupvalue(o, nup + 1) ~= nil do nup = nup + 1 end
      wvarint(nup)
      for j = 1, nup do
        local c = cells[dupvalueid(o, j)]
        if c == written + 1 then
          written = c
          w(CH[0]); wvalue(select(2, dgetupvalue(o, j)))
        elseif c <= written then
          wvarint(c)
        else
          error("snapshot: internal error (upvalue cell order)", 0)
        end
      end
    end
  end
  wvalue(root)
  return concat(buf)
end

local function dump(root, known)
  local running = collectgarbage("isrunning")
  collectgarbage("stop")
  local ok, res = pcall(dump_graph, root, known)
  if running then collectgarbage("restart") end
  if not ok then error(res, 0) end
  return res
end

----------------------------------------------------------------------------
-- load
----------------------------------------------------------------------------

local function load_graph(s, known, env)
  if type(s) ~= "string" then error("snapshot: data must be a string", 0) end
  if type(known) ~= "table" then error("snapshot: known must be a table", 0) end
  if env ~= nil and type(env) ~= "table" then error("snapshot: env must be a table", 0) end
  if ssub(s, 1, 4) ~= MAGIC then error("snapshot: not a snapshot (bad magic)", 0) end
  local version = sbyte(s, 5)
  if version ~= VERSION then
    error("snapshot: unsupported version " .. tostring(version), 0)
  end
  local pos, len = 6, #s
  local strs, nstr = {}, 0

  local function truncated() error("snapshot: truncated or corrupt data at byte " .. pos, 0) end
  local function rbyte()
    local b = sbyte(s, pos)
    if b == nil then truncated() end
    pos = pos + 1
    return b
  end
  local function rvarint()
    local b = rbyte()
    if b < 128 then return b end
    local z, shift = b & 0x7f, 7
    repeat
      if shift > 63 then truncated() end
      b = rbyte()
      z = z | ((b & 0x7f) << shift)
      shift = shift + 7
    until b < 128
    return z
  end

  local objs, kinds, nobj
  local function rvalue()
    local tag = rbyte()
    if tag == V_NIL then return nil
    elseif tag == V_FALSE then return false
    elseif tag == V_TRUE then return true
    elseif tag == V_INT then
      local z = rvarint()
      return (z >> 1) ~ -(z & 1)
    elseif tag == V_FLT then
      if pos + 7 > len then truncated() end
      local v = sunpack("<d", s, pos)
      pos = pos + 8
      return v
    elseif tag == V_STR then
      local n = rvarint()
      if n < 0 or pos + n - 1 > len then truncated() end
      local v = ssub(s, pos, pos + n - 1)
      pos = pos + n
      nstr = nstr + 1
      strs[nstr] = v
      return v
    elseif tag == V_SREF then
      local v = strs[rvarint()]
      if v == nil then truncated() end
      return v
    elseif tag == V_OBJ then
      local v = objs[rvarint()]
      if v == nil then truncated() end
      return v
    end
    truncated()
  end

  nobj = rvarint()
  objs, kinds = {}, {}
  for i = 1, nobj do
    local k = rbyte()
    kinds[i] = k
    if k == K_TABLE then
      if i == 1 and env ~= nil then
        local keys = {}
        for key in next, env do keys[#keys + 1] = key end
        for j = 1, #keys do rawset(env, keys[j], nil) end
        dsetmeta(env, nil)
        objs[i] = env
      else
        objs[i] = {}
      end
    elseif k == K_FUNC then
      local bc = rvalue()
      if type(bc) ~= "string" then truncated() end
      -- env nil: no upvalue ever sees this (privileged) state's globals
      local f, err = lload(bc, "=snapshot", "b", nil)
      if not f then error("snapshot: bad function bytecode: " .. tostring(err), 0) end
      objs[i] = f
    elseif k == K_KNOWN then
      local name = rvalue()
      local obj = rawget(known, name)
      if obj == nil then
        error("snapshot: known object " .. sformat("%q", tostring(name)) .. " is missing", 0)
      end
      objs[i] = obj
    else
      truncated()
    end
  end
  if env ~= nil and kinds[1] ~= K_TABLE then
    error("snapshot: env given but the snapshot's root is not a table", 0)
  end

  local mts = {}
  local cellf, cellj, ncell = {}, {}, 0
  for i = 1, nobj do
    local k, o = kinds[i], objs[i]
    if k == K_TABLE then
      mts[i] = rvalue()
      local narr = rvarint()
      for j = 1, narr do rawset(o, j, rvalue()) end
      for _ = 1, rvarint() do
        local key = rvalue()
        rawset(o, key, rvalue())
      end
    elseif k == K_FUNC then
      local nup = rvarint()
      if (nup > 0 and dgetupvalue(o, nup) == nil) or dgetupvalue(o, nup + 1) ~= nil then
        error("snapshot: upvalue count mismatch in function " .. i, 0)
      end
      for j = 1, nup do
        local c = rvarint()
        if c == 0 then
          ncell = ncell + 1
          cellf[ncell], cellj[ncell] = o, j
          dsetupvalue(o, j, rvalue())
        else
          if c > ncell then truncated() end
          dupvaluejoin(o, j, cellf[c], cellj[c])
        end
      end
    end
  end
  -- metatables last: __gc and __mode see complete tables
  for i = 1, nobj do
    local mt = mts[i]
    if mt ~= nil then
      if type(mt) ~= "table" then truncated() end
      dsetmeta(objs[i], mt)
    end
  end
  local root = rvalue()
  if pos ~= len + 1 then error("snapshot: trailing bytes after root", 0) end
  return root
end

return { dump = dump, load = load_graph }
