"""Unsigned LEB128, the variable-length integer of Avro (a zig-zagged long, the
ANS-104 tags) and of WebAssembly (section sizes, indices): 7 bits a byte, low
first, the high bit set on every byte but the last."""

from __future__ import annotations

__all__ = ["encode_uleb128"]


def encode_uleb128(value: int) -> bytes:
    """``value`` (not negative) as unsigned LEB128."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
