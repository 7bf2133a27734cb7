-- aonode's `.base64`: aos's base64 module (encode, decode, makeencoder,
-- makedecoder).  An encoder maps the codes 0..64 (64 = the padding) to byte
-- values; a decoder maps byte values back.  Written for aonode from aos's
-- documented API; loaded on a process's first require.
local error, pairs = error, pairs
local sbyte, schar, sgsub, sformat = string.byte, string.char, string.gsub,
  string.format
local concat = table.concat

local M = {}
local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

function M.makeencoder(s62, s63, spad)
  local enc = {}
  for i = 1, 62 do enc[i - 1] = sbyte(ALPHABET, i) end
  enc[62], enc[63], enc[64] = sbyte(s62 or "+"), sbyte(s63 or "/"), sbyte(spad or "=")
  return enc
end

function M.makedecoder(s62, s63, spad)
  local dec = {}
  for code, byte in pairs(M.makeencoder(s62, s63, spad)) do dec[byte] = code end
  return dec
end

local DEFAULT_ENCODER, DEFAULT_DECODER = M.makeencoder(), M.makedecoder()

function M.encode(str, encoder)
  encoder = encoder or DEFAULT_ENCODER
  local out, n = {}, #str
  local full = n - n % 3
  for i = 1, full, 3 do
    local a, b, c = sbyte(str, i, i + 2)
    local v = (a << 16) | (b << 8) | c
    out[#out + 1] = schar(encoder[v >> 18], encoder[(v >> 12) & 63], encoder[(v >> 6) & 63],
                          encoder[v & 63])
  end
  local rest = n - full
  if rest == 2 then
    local a, b = sbyte(str, n - 1, n)
    local v = (a << 16) | (b << 8)
    out[#out + 1] = schar(encoder[v >> 18], encoder[(v >> 12) & 63], encoder[(v >> 6) & 63],
                          encoder[64])
  elseif rest == 1 then
    local v = sbyte(str, n) << 16
    out[#out + 1] = schar(encoder[v >> 18], encoder[(v >> 12) & 63], encoder[64], encoder[64])
  end
  return concat(out)
end

local function escaped(byte) return "%" .. schar(byte) end

function M.decode(b64, decoder)
  decoder = decoder or DEFAULT_DECODER
  local s62, s63, pad
  for byte, code in pairs(decoder) do
    if code == 62 then s62 = byte elseif code == 63 then s63 = byte elseif code == 64 then pad = byte end
  end
  -- what is not in the alphabet (line breaks, spaces) is skipped, as aos does
  b64 = sgsub(b64, sformat("[^%%w%s%s%s]", escaped(s62), escaped(s63), escaped(pad or 61)), "")
  local n = #b64
  if n % 4 ~= 0 then error("base64: the input is not a whole number of 4-character groups", 2) end
  local out = {}
  for i = 1, n, 4 do
    local a, b, c, d = sbyte(b64, i, i + 3)
    local x, y, z, w = decoder[a], decoder[b], decoder[c], decoder[d]
    if x == nil or y == nil or z == nil or w == nil or x == 64 or y == 64
       or (i + 3 < n and (z == 64 or w == 64)) or (z == 64 and w ~= 64) then
      error("base64: invalid character or padding at " .. i, 2)
    end
    local v = (x << 18) | (y << 12) | ((z == 64 and 0 or z) << 6) | (w == 64 and 0 or w)
    if z == 64 then out[#out + 1] = schar(v >> 16)
    elseif w == 64 then out[#out + 1] = schar(v >> 16, (v >> 8) & 255)
    else out[#out + 1] = schar(v >> 16, (v >> 8) & 255, v & 255) end
  end
  return concat(out)
end

return M
