-- aonode's `.crypto`: aos's crypto module shape (crypto.digest, crypto.mac,
-- crypto.kdf, crypto.utils, crypto.random) on the host's digests.
--
-- The digests run in the host (hashlib), reached through the harness's
-- `digest`/`pbkdf2` functions, which charge the instruction budget for the
-- bytes they read; a snapshot names those functions, so a restored process
-- uses the new VM's.  A digest takes what aos's takes (a byte stream made by
-- `crypto.utils.stream`, a string, or an array of bytes; sha2_512, sha3_* and
-- keccak* a string only, as in aos 2.0.6) and answers an object
-- with `asHex()`, `asString()` and, as aos, `asBytes()`.  aos's quirks are
-- kept where a program could see them: `crypto.mac.createHmac` pads its key to
-- 32 bytes (aos's HMAC block size), `crypto.kdf.pbkdf2(...).asHex()` and the
-- stream and array `toHex` are upper case, `sha2_512(...).asBytes()` is eight
-- 64-bit words and `blake2b(...).asBytes()` one-character strings.  Not here:
-- md2, md4 and the ciphers.  Written for aonode from aos's documented API.
local host = ...
local host_digest, host_pbkdf2 = host.digest, host.pbkdf2
local type, error, tostring, tonumber = type, error, tostring, tonumber
local sbyte, schar, sformat, sgsub, sfind, ssub, srep =
  string.byte, string.char, string.format, string.gsub, string.find, string.sub, string.rep
local sunpack = string.unpack
local concat = table.concat
local random = math.random

------------------------------------------------------------------ utils
local function Queue()
  local items, head, tail = {}, 0, 0
  local q = {}
  function q.push(v) items[head] = v; head = head + 1 end
  function q.pop()
    if tail < head then
      local v = items[tail]
      items[tail] = nil
      tail = tail + 1
      return v
    end
    return nil
  end
  function q.size() return head - tail end
  function q.getHead() return head end
  function q.getTail() return tail end
  function q.reset() items, head, tail = {}, 0, 0 end
  return q
end

local function hex_lower(s)
  return (sgsub(s, ".", function(c) return sformat("%02x", sbyte(c)) end))
end

local function bytes_of(s)
  local t = {}
  for i = 1, #s do t[i] = sbyte(s, i) end
  return t
end

local function string_of(bytes)
  local parts, i = {}, 1
  while bytes[i] ~= nil do parts[i] = schar(bytes[i]); i = i + 1 end
  return concat(parts)
end

local function read_stream(stream)
  local parts, n = {}, 0
  local b = stream()
  while b ~= nil do n = n + 1; parts[n] = schar(b); b = stream() end
  return concat(parts)
end

local Array = {}
function Array.size(a) return #a end
Array.fromString = bytes_of
Array.toString = string_of
function Array.fromStream(stream) return bytes_of(read_stream(stream)) end
function Array.toStream(a)
  local q = Queue()
  local i = 1
  while a[i] ~= nil do q.push(a[i]); i = i + 1 end
  return q.pop
end
function Array.readFromQueue(q, size)
  local a = {}
  for i = 1, size do a[i] = q.pop() end
  return a
end
function Array.writeToQueue(q, a) for i = 1, #a do q.push(a[i]) end end
function Array.fromHex(h)
  local a = {}
  for i = 1, #h // 2 do a[i] = tonumber(ssub(h, 2 * i - 1, 2 * i), 16) end
  return a
end
function Array.toHex(a)
  local parts, i = {}, 1
  while a[i] ~= nil do parts[i] = sformat("%02X", a[i]); i = i + 1 end
  return concat(parts)
end
function Array.concat(a, b)
  local c = {}
  for i = 1, #a do c[#c + 1] = a[i] end
  for i = 1, #b do c[#c + 1] = b[i] end
  return c
end
function Array.truncate(a, size)
  local c = {}
  for i = 1, size do c[i] = a[i] end
  return c
end
function Array.XOR(a, b)
  local c = {}
  for i = 1, #a do c[i] = a[i] ~ b[i] end
  return c
end
function Array.substitute(input, sbox)
  local c = {}
  for i = 1, #input do c[i] = sbox[input[i]] end
  return c
end
function Array.permute(input, pbox)
  local c = {}
  for i = 1, #pbox do c[i] = input[pbox[i]] end
  return c
end
function Array.copy(input)
  local c = {}
  for i = 1, #input do c[i] = input[i] end
  return c
end
function Array.slice(input, start, stop)
  local c = {}
  for i = start, stop do c[#c + 1] = input[i] end
  return c
end

local Stream = {}
function Stream.fromString(s)
  local i = 0
  return function() i = i + 1; return sbyte(s, i) end
end
Stream.toString = read_stream
Stream.fromArray = Array.toStream
Stream.toArray = Array.fromStream
function Stream.fromHex(h) return Array.toStream(Array.fromHex(h)) end
function Stream.toHex(stream) return Array.toHex(Array.fromStream(stream)) end

local Hex = {}
function Hex.stringToHex(s, ln, sep)
  if #s == 0 then return "" end
  if not ln then return hex_lower(s) end
  sep = sep or ""
  local t = {}
  for i = 1, #s - 1 do
    t[#t + 1] = sformat("%02x%s", sbyte(s, i), (i % ln == 0) and "\n" or sep)
  end
  t[#t + 1] = sformat("%02x", sbyte(s, #s))
  return concat(t)
end
function Hex.hexToString(hs, unsafe)
  if not unsafe then
    hs = sgsub(hs, "%s+", "")
    if sfind(hs, "[^0-9A-Za-z]") or #hs % 2 ~= 0 then error("invalid hex string") end
  end
  return (sgsub(hs, "(%x%x)", function(c) return schar(tonumber(c, 16)) end))
end

local M32 = 0xFFFFFFFF
local Bit = {
  band = function(a, b) return a & b end,
  bor = function(a, b) return a | b end,
  bxor = function(a, b) return a ~ b end,
  bnot = function(a) return (~a) & M32 end,
  lshift = function(a, n) return (a << n) & M32 end,
  rshift = function(a, n) return (a & M32) >> n end,
  lrotate = function(a, n) a = a & M32; n = n % 32; return ((a << n) | (a >> (32 - n))) & M32 end,
  rrotate = function(a, n) a = a & M32; n = n % 32; return ((a >> n) | (a << (32 - n))) & M32 end,
}

------------------------------------------------------------------ digests
-- what a digest reads: a stream (function), a string, or an array of bytes
local function input(data)
  local t = type(data)
  if t == "string" then return data end
  if t == "function" then return read_stream(data) end
  if t == "table" then return string_of(data) end
  if t == "number" then return tostring(data) end
  error("crypto: a digest reads a stream, a string or an array of bytes, not a " .. t, 3)
end

-- aos's sha2_512 and its sha3/keccak digests read a string only: their first
-- steps are `#msg` (`#buffer`) and `msg .. padding`, so a stream, an array or
-- a number fails there; it fails here with the same words.
local function text_only(name)
  return function(data)
    local t = type(data)
    if t == "string" then return data end
    local what = t == "table" and "concatenate" or "get length of"
    error(sformat("attempt to %s a %s value (local '%s')", what, t, name), 3)
  end
end
local sha512_text, keccak_text = text_only("msg"), text_only("buffer")

local function result(raw, bytes)
  return {
    asString = function() return raw end,
    asHex = function() return hex_lower(raw) end,
    asBytes = function() return bytes and bytes(raw) or bytes_of(raw) end,
  }
end

local function plain(algo, read)
  read = read or input
  return function(data) return result(host_digest(algo, read(data))) end
end

local function words64(raw) return { sunpack(">i8i8i8i8i8i8i8i8", raw) } end
local function chars(raw)
  local t = {}
  for i = 1, #raw do t[i] = ssub(raw, i, i) end
  return t
end

local digest = {
  _version = "0.0.1",
  md5 = plain("md5"),
  sha1 = plain("sha1"),
  sha2_256 = plain("sha256"),
  sha2_512 = function(data)
    return result(host_digest("sha512", sha512_text(data)), function(raw)
      local w = words64(raw)
      w[9] = nil -- string.unpack's next position
      return w
    end)
  end,
  sha3_256 = plain("sha3_256", keccak_text),
  sha3_512 = plain("sha3_512", keccak_text),
  keccak256 = plain("keccak256", keccak_text),
  keccak512 = plain("keccak512", keccak_text),
  blake2b = function(data, outlen, key)
    return result(host_digest("blake2b", input(data), outlen or 64, key or ""), chars)
  end,
}

------------------------------------------------------------------ mac, kdf
local HASH = { sha1 = "sha1", sha256 = "sha256" }

-- aos's HMAC: the key is padded to 32 bytes (or hashed first when longer)
local function hmac(data, key, algorithm)
  local algo = HASH[algorithm or "sha1"]
  if not algo then error("Unsupported algorithm: " .. tostring(algorithm), 2) end
  local k = input(key)
  if #k > 32 then k = host_digest(algo, k) end
  k = k .. srep("\0", 32 - #k)
  local ipad, opad = {}, {}
  for i = 1, 32 do
    local b = sbyte(k, i)
    ipad[i], opad[i] = schar(b ~ 0x36), schar(b ~ 0x5C)
  end
  local inner = host_digest(algo, concat(ipad) .. input(data))
  return result(host_digest(algo, concat(opad) .. inner))
end

local function pbkdf2(password, salt, iterations, keyLen, algorithm)
  local algo = HASH[algorithm or "sha1"]
  if not algo then error("Unsupported algorithm: " .. tostring(algorithm), 2) end
  local raw = host_pbkdf2(algo, input(password), input(salt), iterations, keyLen)
  return {
    asBytes = function() return bytes_of(raw) end,
    asHex = function() return Array.toHex(bytes_of(raw)) end,
    asString = function() return raw end,
  }
end

------------------------------------------------------------------ random
-- deterministic: drawn from the process's math.random, seeded per message
local function crypto_random(min, max)
  min, max = min or 0, max or 2147483647
  return random(min, max)
end

local utils = { _version = "0.0.1", bit = Bit, queue = Queue, stream = Stream, hex = Hex,
                array = Array }

return {
  _version = "0.0.1",
  digest = digest,
  utils = utils,
  mac = { _version = "0.0.1", createHmac = hmac },
  kdf = { _version = "0.0.1", pbkdf2 = pbkdf2 },
  random = crypto_random,
}
