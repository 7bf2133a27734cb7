-- aonode's `.bint`: fixed-width two's-complement integers with aos's API.
--
-- `require('.bint')` returns a constructor; `require('.bint')(256)` returns the
-- class of 256-bit integers (one class per width, made once).  Values are
-- tables holding little-endian words of `wordbits` bits (32 by default) at
-- 1..n, with the class as metatable, so a snapshot writes them as plain tables.
-- Semantics are the ones aos programs rely on: arithmetic wraps around at the
-- width, `//` and `%` round toward minus infinity, `/` and `^` give floats,
-- mixing with a number that is not integral falls back to float arithmetic,
-- `>>` is a logical shift, `tostring` is signed decimal and `tobase` is
-- unsigned for bases other than 10.  Written for aonode from the documented
-- behaviour of aos's bint module; loaded on a process's first require.
local type, tonumber, tostring, error, assert = type, tonumber, tostring, error, assert
local setmetatable, getmetatable = setmetatable, getmetatable
local mtype, mtointeger, mmax, mmin = math.type, math.tointeger, math.max, math.min
local mabs, mfloor, mceil, mmodf = math.abs, math.floor, math.ceil, math.modf
local MININT = math.mininteger
local concat, unpack = table.concat, table.unpack
local sfind, slower, ssub, srep, sgsub, spack, sunpack, sreverse =
  string.find, string.lower, string.sub, string.rep, string.gsub,
  string.pack, string.unpack, string.reverse

local DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
local classes = {}

-- A Lua value as a Lua integer, if it is one (integral floats count), else nil.
local function as_integer(v)
  v = tonumber(v)
  if v == nil then return nil end
  if mtype(v) == "integer" then return v end
  return mtointeger(v)
end

local function class(bits, wordbits)
  bits = bits or 256
  wordbits = wordbits or 32
  local key = bits * 64 + wordbits
  if classes[key] then return classes[key] end
  assert(bits % wordbits == 0, "bitsize is not multiple of word bitsize")
  assert(2 * wordbits <= 64, "word bitsize must be half of the lua integer bitsize")
  assert(bits >= 64, "bitsize must be >= 64")
  assert(wordbits >= 8, "wordbits must be at least 8")
  assert(bits % 8 == 0, "bitsize must be multiple of 8")

  local B = {}
  B.__index = B
  B.bits = bits
  local W, N = wordbits, bits // wordbits
  local MASK, SIGN = (1 << wordbits) - 1, 1 << (wordbits - 1)
  local PACK = "<" .. srep("I" .. (wordbits // 8), N)
  local BYTES = bits // 8

  local function isb(v) return getmetatable(v) == B end
  local function blank() return setmetatable({}, B) end
  local function neg(x) return x[N] & SIGN ~= 0 end

  local function copy(x)
    local z = blank()
    for i = 1, N do z[i] = x[i] end
    return z
  end

  local function filled(w)
    local z = blank()
    for i = 1, N do z[i] = w end
    return z
  end

  function B.zero() return filled(0) end
  function B.one() local z = filled(0); z[1] = 1; return z end
  function B.maxinteger() local z = filled(MASK); z[N] = MASK ~ SIGN; return z end
  function B.mininteger() local z = filled(0); z[N] = SIGN; return z end

  -- two's complement of a Lua integer, sign-extended (or not) to the width
  local function from_lua(n, signed)
    local z = blank()
    local negative = signed and n < 0
    for i = 1, N do
      local s = W * (i - 1)
      local w = s < 64 and (n >> s) & MASK or 0
      if negative and s + W > 64 then -- the bits above bit 63 are ones
        local from = s < 64 and 64 - s or 0
        w = w | (MASK & ~((1 << from) - 1))
      end
      z[i] = w
    end
    return z
  end

  function B.frominteger(v)
    local n = as_integer(v)
    if n ~= nil then return from_lua(n, true) end
  end

  function B.fromuinteger(v)
    local n = as_integer(v)
    if n ~= nil then return from_lua(n, false) end
  end

  -- in place: x = x * m + a, for 0 <= m, a < 2^30 (words stay below 2^62)
  local function muladd(x, m, a)
    local carry = a
    for i = 1, N do
      local t = x[i] * m + carry
      x[i] = t & MASK
      carry = t >> W
    end
    return x
  end

  -- in place: x = x // d (unsigned), d < 2^31; returns the remainder
  local function divsmall(x, d)
    local r = 0
    for i = N, 1, -1 do
      local t = (r << W) | x[i]
      x[i] = t // d
      r = t % d
    end
    return r
  end

  local function negate(x) -- in place
    local carry = 1
    for i = 1, N do
      local t = ((~x[i]) & MASK) + carry
      x[i] = t & MASK
      carry = t >> W
    end
    return x
  end

  local function iszero(x)
    for i = 1, N do if x[i] ~= 0 then return false end end
    return true
  end

  local function ipow(b, e)
    local p = 1
    for _ = 1, e do p = p * b end
    return p
  end

  -- how many digits of `base` fit below 2^30
  local function chunk(base)
    local k = 1
    while ipow(base, k + 1) < (1 << 30) do k = k + 1 end
    return k
  end

  function B.frombase(s, base)
    if type(s) ~= "string" then return nil end
    base = base or 10
    if not (base >= 2 and base <= 36) then return nil end
    local sign, digits = slower(s):match("^([+-]?)(%w+)$")
    if not digits then return nil end
    local k = chunk(base)
    local z = filled(0)
    local i, len = 1, (#digits - 1) % k + 1 -- the leading chunk may be short
    while i <= #digits do
      local d = tonumber(ssub(digits, i, i + len - 1), base)
      if d == nil then return nil end
      muladd(z, ipow(base, len), d)
      i, len = i + len, k
    end
    if sign == "-" then negate(z) end
    return z
  end

  function B.fromstring(s)
    if type(s) ~= "string" then return nil end
    if sfind(s, "^[+-]?[0-9]+$") then return B.frombase(s, 10) end
    if sfind(s, "^[+-]?0[xX]%x+$") then return B.frombase((sgsub(s, "0[xX]", "", 1)), 16) end
    if sfind(s, "^[+-]?0[bB][01]+$") then return B.frombase((sgsub(s, "0[bB]", "", 1)), 2) end
    return nil
  end

  function B.fromle(buffer)
    assert(type(buffer) == "string", "buffer is not a string")
    if #buffer > BYTES then buffer = ssub(buffer, 1, BYTES)
    else buffer = buffer .. srep("\0", BYTES - #buffer) end
    local z = setmetatable({ sunpack(PACK, buffer) }, B)
    z[N + 1] = nil -- string.unpack's next position
    return z
  end

  function B.frombe(buffer)
    assert(type(buffer) == "string", "buffer is not a string")
    if #buffer > BYTES then buffer = ssub(buffer, -BYTES)
    else buffer = srep("\0", BYTES - #buffer) .. buffer end
    return B.fromle(sreverse(buffer))
  end

  local function tobint(v, clone)
    if isb(v) then return clone and copy(v) or v end
    local tv = type(v)
    if tv == "number" then return B.frominteger(v) end
    if tv == "string" then return B.fromstring(v) end
    return nil
  end
  B.tobint = tobint

  function B.new(v)
    if isb(v) then return copy(v) end
    local z = tobint(v)
    assert(z, "value cannot be represented by a bint")
    return z
  end

  function B.parse(v, clone)
    local z = tobint(v, clone)
    if z then return z end
    return tonumber(v)
  end

  local function need(v)
    return assert(tobint(v), "value has not integer representation")
  end

  local function low64(x) -- the low 64 bits, as a Lua integer
    local n = 0
    for i = 1, N do
      local shift = W * (i - 1)
      if shift >= 64 then break end
      n = n | (x[i] << shift)
    end
    return n
  end

  function B.touinteger(v)
    if isb(v) then return low64(v) end
    return as_integer(v)
  end

  function B.tointeger(v)
    if isb(v) then return low64(v) end
    return as_integer(v)
  end

  local function need_integer(v)
    local n = B.tointeger(v)
    if n == nil then error("value has no integer representation") end
    return n
  end

  local function ucmp(x, y) -- -1, 0, 1 as unsigned
    for i = N, 1, -1 do
      local a, b = x[i], y[i]
      if a ~= b then return a < b and -1 or 1 end
    end
    return 0
  end

  local function fits64(x) return ucmp(x, from_lua(low64(x), true)) == 0 end

  function B.tobase(v, base, unsigned)
    local x = tobint(v)
    if not x then return nil end
    base = base or 10
    if not (base >= 2 and base <= 36) then return nil end
    if unsigned == nil then unsigned = base ~= 10 end
    local minus = not unsigned and neg(x)
    local m = copy(x)
    if minus then negate(m) end
    if iszero(m) then return "0" end
    local k = chunk(base)
    local p = ipow(base, k)
    local chunks = {} -- least significant first
    while not iszero(m) do chunks[#chunks + 1] = divsmall(m, p) end
    local out = { minus and "-" or "" }
    for c = #chunks, 1, -1 do
      local r, buf = chunks[c], {}
      for j = k, 1, -1 do
        local d = r % base
        buf[j] = ssub(DIGITS, d + 1, d + 1)
        r = r // base
      end
      local text = concat(buf)
      if c == #chunks then text = sgsub(text, "^0+", "") end
      out[#out + 1] = text
    end
    return concat(out)
  end

  function B.tonumber(v)
    if isb(v) then
      if fits64(v) then return low64(v) end
      return tonumber(B.tobase(v, 10))
    end
    return tonumber(v)
  end
  local num = B.tonumber

  function B.tole(v, trim)
    local s = spack(PACK, unpack(need(v), 1, N))
    if trim then
      s = sgsub(s, "\0+$", "")
      if s == "" then s = "\0" end
    end
    return s
  end

  function B.tobe(v, trim)
    local s = sreverse(spack(PACK, unpack(need(v), 1, N)))
    if trim then
      s = sgsub(s, "^\0+", "")
      if s == "" then s = "\0" end
    end
    return s
  end

  ------------------------------------------------------------------ predicates
  function B.iszero(v) if isb(v) then return iszero(v) end return v == 0 end
  function B.isone(v)
    if isb(v) then
      if v[1] ~= 1 then return false end
      for i = 2, N do if v[i] ~= 0 then return false end end
      return true
    end
    return v == 1
  end
  function B.isminusone(v)
    if isb(v) then
      for i = 1, N do if v[i] ~= MASK then return false end end
      return true
    end
    return v == -1
  end
  function B.isbint(v) return isb(v) end
  function B.isintegral(v) return isb(v) or mtype(v) == "integer" end
  function B.isnumeric(v) return isb(v) or type(v) == "number" end
  function B.type(v) if isb(v) then return "bint" end return mtype(v) end
  function B.isneg(v) if isb(v) then return neg(v) end return v < 0 end
  function B.ispos(v) if isb(v) then return not neg(v) and not iszero(v) end return v > 0 end
  function B.iseven(v) if isb(v) then return v[1] & 1 == 0 end return mabs(v) % 2 == 0 end
  function B.isodd(v) if isb(v) then return v[1] & 1 == 1 end return mabs(v) % 2 == 1 end

  ------------------------------------------------------------------ in place
  function B:_add(v)
    local y, carry = need(v), 0
    for i = 1, N do
      local t = self[i] + y[i] + carry
      self[i] = t & MASK
      carry = t >> W
    end
    return self
  end

  function B:_sub(v)
    local y, borrow = need(v), 0
    for i = 1, N do
      local t = self[i] - y[i] - borrow
      self[i] = t & MASK
      borrow = t < 0 and 1 or 0
    end
    return self
  end

  function B:_inc()
    for i = 1, N do
      local t = (self[i] + 1) & MASK
      self[i] = t
      if t ~= 0 then break end
    end
    return self
  end

  function B:_dec()
    for i = 1, N do
      local t = (self[i] - 1) & MASK
      self[i] = t
      if t ~= MASK then break end
    end
    return self
  end

  function B:_unm() return negate(self) end
  function B:_bnot() for i = 1, N do self[i] = (~self[i]) & MASK end return self end
  function B:_abs() if neg(self) then negate(self) end return self end
  function B:_assign(v) local y = need(v); for i = 1, N do self[i] = y[i] end return self end
  function B:_band(v) local y = need(v); for i = 1, N do self[i] = self[i] & y[i] end return self end
  function B:_bor(v) local y = need(v); for i = 1, N do self[i] = self[i] | y[i] end return self end
  function B:_bxor(v) local y = need(v); for i = 1, N do self[i] = self[i] ~ y[i] end return self end

  function B:_shlone()
    for i = N, 2, -1 do self[i] = ((self[i] << 1) | (self[i - 1] >> (W - 1))) & MASK end
    self[1] = (self[1] << 1) & MASK
    return self
  end

  function B:_shrone()
    for i = 1, N - 1 do self[i] = ((self[i] >> 1) | (self[i + 1] << (W - 1))) & MASK end
    self[N] = self[N] >> 1
    return self
  end

  function B:_shlwords(n)
    for i = N, 1, -1 do self[i] = i > n and self[i - n] or 0 end
    return self
  end

  function B:_shrwords(n)
    for i = 1, N do self[i] = i + n <= N and self[i + n] or 0 end
    return self
  end

  ------------------------------------------------------------------ conversions
  function B.inc(v) local x = tobint(v, true); if x then return x:_inc() end return v + 1 end
  function B.dec(v) local x = tobint(v, true); if x then return x:_dec() end return v - 1 end
  function B.abs(v) local x = tobint(v, true); if x then return x:_abs() end return mabs(v) end
  function B.floor(v) if isb(v) then return copy(v) end return B.new(mfloor(tonumber(v))) end
  function B.ceil(v) if isb(v) then return copy(v) end return B.new(mceil(tonumber(v))) end

  function B.trunc(v)
    if isb(v) then return copy(v) end
    v = tonumber(v)
    if v == nil then return nil end
    if mtype(v) == "float" then v = mmodf(v) end
    return B.frominteger(v)
  end

  ------------------------------------------------------------------ arithmetic
  function B.__add(a, b)
    local x, y = tobint(a), tobint(b)
    if x and y then return copy(x):_add(y) end
    return num(a) + num(b)
  end

  function B.__sub(a, b)
    local x, y = tobint(a), tobint(b)
    if x and y then return copy(x):_sub(y) end
    return num(a) - num(b)
  end

  function B.__mul(a, b)
    local x, y = tobint(a), tobint(b)
    if not (x and y) then return num(a) * num(b) end
    local z = filled(0)
    for i = 1, N do
      local xi = x[i]
      if xi ~= 0 then
        local carry = 0
        for j = 1, N - i + 1 do
          local k = i + j - 1
          local p = xi * y[j] -- < 2^64: exact as unsigned bits
          local t = z[k] + (p & MASK) + carry
          z[k] = t & MASK
          carry = (p >> W) + (t >> W)
        end
      end
    end
    return z
  end

  function B.__unm(a) return negate(copy(a)) end
  function B.__bnot(a) return copy(a):_bnot() end
  function B.__band(a, b) return B.new(a):_band(b) end
  function B.__bor(a, b) return B.new(a):_bor(b) end
  function B.__bxor(a, b) return B.new(a):_bxor(b) end

  -- unsigned quotient and remainder; x, y bints (not changed)
  local function udivmod(x, y)
    if iszero(y) then error("attempt to divide by zero", 2) end
    local small = y[1] < (1 << 30)
    for i = 2, N do if y[i] ~= 0 then small = false break end end
    if small then
      local q = copy(x)
      local r = divsmall(q, y[1])
      return q, B.fromuinteger(r)
    end
    local q, r = filled(0), filled(0)
    local top = N
    while top > 0 and x[top] == 0 do top = top - 1 end
    for i = top, 1, -1 do
      local w = x[i]
      for bit = W - 1, 0, -1 do
        r:_shlone()
        r[1] = r[1] | ((w >> bit) & 1)
        if ucmp(r, y) >= 0 then
          r:_sub(y)
          q[i] = q[i] | (1 << bit)
        end
      end
    end
    return q, r
  end

  function B.udivmod(a, b) return udivmod(need(a), need(b)) end
  function B.udiv(a, b) return (udivmod(need(a), need(b))) end
  function B.umod(a, b) local _, r = udivmod(need(a), need(b)); return r end

  local function magnitude(x) if neg(x) then return negate(copy(x)) end return x end

  -- floored division (Lua's `//` and `%` rounding) of bints
  local function floordivmod(x, y)
    local xn, yn = neg(x), neg(y)
    local q, r = udivmod(magnitude(x), magnitude(y))
    if xn ~= yn then
      negate(q)
      if not iszero(r) then
        q:_dec()
        if xn then r = copy(y):_sub(r) else r:_add(y) end
      end
    elseif xn then
      negate(r)
    end
    return q, r
  end

  function B.idivmod(a, b)
    local x, y = tobint(a), tobint(b)
    if x and y then return floordivmod(x, y) end
    local na, nb = num(a), num(b)
    return na // nb, na % nb
  end

  function B.__idiv(a, b)
    local x, y = tobint(a), tobint(b)
    if x and y then return (floordivmod(x, y)) end
    return num(a) // num(b)
  end

  function B.__mod(a, b)
    local x, y = tobint(a), tobint(b)
    if x and y then local _, r = floordivmod(x, y); return r end
    return num(a) % num(b)
  end

  function B.tdivmod(a, b)
    local x, y = tobint(a), tobint(b)
    if x and y then
      assert(not (B.eq(x, B.mininteger()) and B.isminusone(y)), "division overflow")
      local q, r = udivmod(magnitude(x), magnitude(y))
      if neg(x) ~= neg(y) then negate(q) end
      if neg(x) then negate(r) end
      return q, r
    end
    local na, nb = num(a), num(b)
    local q, r = mabs(na) // mabs(nb), mabs(na) % mabs(nb)
    if (na < 0) ~= (nb < 0) then q = -q end
    if na < 0 then r = -r end
    return q, r
  end
  function B.tdiv(a, b) return (B.tdivmod(a, b)) end
  function B.tmod(a, b) local _, r = B.tdivmod(a, b); return r end

  function B.__div(a, b) return num(a) / num(b) end
  function B.__pow(a, b) return num(a) ^ num(b) end

  -- x to the power y, y read as unsigned, wrapping at the width
  function B.ipow(a, b)
    local e = copy(need(b))
    if iszero(e) then return B.one() end
    local base, z = B.new(a), B.one()
    while not iszero(e) do
      if e[1] & 1 == 1 then z = z * base end
      e:_shrone()
      if not iszero(e) then base = base * base end
    end
    return z
  end

  function B.upowmod(a, b, m)
    m = need(m)
    if B.isone(m) then return B.zero() end
    local base, e, z = B.umod(B.new(a), m), copy(need(b)), B.one()
    while not iszero(e) do
      if e[1] & 1 == 1 then z = B.umod(z * base, m) end
      e:_shrone()
      base = B.umod(base * base, m)
    end
    return z
  end

  ------------------------------------------------------------------ shifts
  function B.__shl(a, b)
    local x, n = B.new(a), need_integer(b)
    if n == MININT or mabs(n) >= bits then return B.zero() end
    if n < 0 then return x >> -n end
    x:_shlwords(n // W)
    n = n % W
    if n ~= 0 then
      for i = N, 2, -1 do x[i] = ((x[i] << n) | (x[i - 1] >> (W - n))) & MASK end
      x[1] = (x[1] << n) & MASK
    end
    return x
  end

  function B.__shr(a, b)
    local x, n = B.new(a), need_integer(b)
    if n == MININT or mabs(n) >= bits then return B.zero() end
    if n < 0 then return x << -n end
    x:_shrwords(n // W)
    n = n % W
    if n ~= 0 then
      for i = 1, N - 1 do x[i] = ((x[i] >> n) | (x[i + 1] << (W - n))) & MASK end
      x[N] = x[N] >> n
    end
    return x
  end

  function B.bwrap(a, n)
    local x = need(a)
    if n <= 0 then return B.zero() end
    if n < bits then return x & (B.one() << n):_dec() end
    return copy(x)
  end

  -- rotations as aos computes them: a count past the width shifts the other way
  function B.brol(a, n)
    local x = need(a)
    n = need_integer(n)
    if n > 0 then return (x << n) | (x >> (bits - n)) end
    if n < 0 and n ~= MININT then return B.bror(x, -n) end
    return x
  end

  function B.bror(a, n)
    local x = need(a)
    n = need_integer(n)
    if n > 0 then return (x >> n) | (x << (bits - n)) end
    if n < 0 and n ~= MININT then return B.brol(x, -n) end
    return x
  end

  ------------------------------------------------------------------ comparison
  local function scmp(x, y)
    local xn, yn = neg(x), neg(y)
    if xn ~= yn then return xn and -1 or 1 end
    return ucmp(x, y)
  end

  function B.ult(a, b) return ucmp(need(a), need(b)) < 0 end
  function B.ule(a, b) return ucmp(need(a), need(b)) <= 0 end

  function B.__lt(a, b)
    local x, y = tobint(a), tobint(b)
    if x and y then return scmp(x, y) < 0 end
    return num(a) < num(b)
  end

  function B.__le(a, b)
    local x, y = tobint(a), tobint(b)
    if x and y then return scmp(x, y) <= 0 end
    return num(a) <= num(b)
  end

  function B.__eq(a, b)
    for i = 1, N do if a[i] ~= b[i] then return false end end
    return true
  end

  function B.eq(a, b)
    local x, y = tobint(a), tobint(b)
    if x and y then return ucmp(x, y) == 0 end
    return a == b
  end

  function B.max(a, b)
    local x, y = tobint(a), tobint(b)
    if x and y then return copy(scmp(x, y) > 0 and x or y) end
    return B.parse(mmax(a, b))
  end

  function B.min(a, b)
    local x, y = tobint(a), tobint(b)
    if x and y then return copy(scmp(x, y) < 0 and x or y) end
    return B.parse(mmin(a, b))
  end

  function B:__tostring() return B.tobase(self, 10) end

  setmetatable(B, { __call = function(_, v) return B.new(v) end })
  classes[key] = B
  return B
end

return class
