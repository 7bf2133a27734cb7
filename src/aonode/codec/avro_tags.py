"""ANS-104 tags: an Avro array of ``{name: bytes, value: bytes}`` records.

``encode_tags`` writes the canonical layout arbundles and HyperBEAM write
(one block, then the terminator); ``decode_tags`` accepts every valid Avro
layout (several blocks, negative counts with a size), because a signature
covers the raw tag bytes whatever their layout, and checks every length.
"""

from __future__ import annotations

from collections.abc import Sequence

from aonode.codec.varint import encode_uleb128
from aonode.errors import InvalidMessage

MAX_TAGS = 128
MAX_TAG_NAME_BYTES = 1024
MAX_TAG_VALUE_BYTES = 3072
_MAX_LONG_BYTES = 10  # a 64-bit Avro long never needs more


def _encode_long(n: int) -> bytes:
    return encode_uleb128((n << 1) ^ (n >> 63))  # zig-zag: the sign in the low bit


# Every length encode_tags writes is at most MAX_TAG_VALUE_BYTES.
_ZIGZAG = tuple(_encode_long(n) for n in range(MAX_TAG_VALUE_BYTES + 1))


def encode_tags(tags: Sequence[tuple[str, str]]) -> bytes:
    """Canonical Avro encoding of the tags, as arbundles and HyperBEAM write it."""
    if not tags:
        return b""
    if len(tags) > MAX_TAGS:
        raise InvalidMessage(f"{len(tags)} tags; at most {MAX_TAGS} are allowed")
    get = _TAG_CACHE.get
    return b"".join((_ZIGZAG[len(tags)], *[get(tag) or _encode_tag(tag) for tag in tags], b"\x00"))


def _encode_tag(tag: tuple[str, str]) -> bytes:
    name, value = tag
    try:
        name_part = _NAME_CACHE.get(name) or _encode_name(name)
        value_bytes = value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidMessage(f"tag {name!r} is not encodable as UTF-8: {exc}") from None
    size = len(value_bytes)
    if size > MAX_TAG_VALUE_BYTES:
        raise InvalidMessage(f"tag value is {size} bytes; at most {MAX_TAG_VALUE_BYTES}")
    encoded = name_part + _ZIGZAG[size] + value_bytes
    # Keep the recurring short values (Type, Variant, …), not counters and clocks
    # (Slot, Timestamp: new every message), which would only push the others out.
    if size <= 16 and not (size > 2 and value_bytes.isdigit()):
        if len(_TAG_CACHE) >= 512:
            _TAG_CACHE.clear()
        _TAG_CACHE[tag] = encoded
    return encoded


def _encode_name(name: str) -> bytes:
    """A tag name's length and bytes; short names are kept (they recur)."""
    name_bytes = name.encode("utf-8")
    if len(name_bytes) > MAX_TAG_NAME_BYTES:
        raise InvalidMessage(f"tag name is {len(name_bytes)} bytes; at most {MAX_TAG_NAME_BYTES}")
    part = _ZIGZAG[len(name_bytes)] + name_bytes
    if len(name_bytes) <= 32:
        if len(_NAME_CACHE) >= 512:
            _NAME_CACHE.clear()
        _NAME_CACHE[name] = part
    return part


_TAG_CACHE: dict[tuple[str, str], bytes] = {}
_NAME_CACHE: dict[str, bytes] = {}


def decode_tags(region: bytes, count: int) -> tuple[tuple[str, str], ...]:
    """Decode any valid Avro array layout of exactly ``count`` tags; strict."""
    if (simple := _decode_canonical(region, count)) is not None:
        return simple
    return _decode_strict(region, count)


def _decode_strict(region: bytes, count: int) -> tuple[tuple[str, str], ...]:
    """Every layout, every check, errors that name what is wrong."""
    if not region:
        if count:
            raise InvalidMessage(f"data item declares {count} tags but its tags field is empty")
        return ()
    tags: list[tuple[str, str]] = []
    pos = 0
    while True:
        block, pos = _read_long(region, pos, "tag block count")
        if block == 0:
            break
        block_size = None
        if block < 0:
            block = -block
            block_size, pos = _read_long(region, pos, "tag block size")
            if block_size < 0:
                raise InvalidMessage(f"tag block size is negative ({block_size})")
        if len(tags) + block > count:
            raise InvalidMessage(
                f"tags field holds more tags than the {count} the data item declares"
            )
        block_start = pos
        for _ in range(block):
            index = len(tags)
            name, pos = _read_string(region, pos, index, "name", MAX_TAG_NAME_BYTES)
            value, pos = _read_string(region, pos, index, "value", MAX_TAG_VALUE_BYTES)
            tags.append((name, value))
        if block_size is not None and pos - block_start != block_size:
            raise InvalidMessage(
                f"tag block declares {block_size} bytes but holds {pos - block_start}"
            )
    if pos != len(region):
        raise InvalidMessage(
            f"tags field has {len(region) - pos} bytes after the Avro array terminator"
        )
    if len(tags) != count:
        raise InvalidMessage(
            f"data item declares {count} tags but its tags field holds {len(tags)}"
        )
    return tuple(tags)


def _decode_canonical(region: bytes, count: int) -> tuple[tuple[str, str], ...] | None:
    """The layout every client writes (one block, lengths under 64 bytes), read fast.

    ``None`` for anything else, valid or not: :func:`decode_tags` then reads it
    with every check and the error that names what is wrong.
    """
    size = len(region)
    if not 0 < count < 64 or size < 2 or region[0] != count << 1:
        return None
    tags: list[tuple[str, str]] = []
    pos = 1
    try:
        for _ in range(count):
            n = region[pos]  # one byte: even (not negative) and under 0x80
            if n & 0x81:
                return None
            start, pos = pos + 1, pos + 1 + (n >> 1)
            v = region[pos]
            if v & 0x81:
                return None
            value, pos = pos + 1, pos + 1 + (v >> 1)
            if pos >= size:  # the terminator must follow
                return None
            tags.append((region[start : value - 1].decode("utf-8"), region[value:pos].decode()))
    except (IndexError, UnicodeDecodeError):
        return None
    if pos != size - 1 or region[pos] != 0:
        return None
    return tuple(tags)


def _read_long(region: bytes, pos: int, what: str) -> tuple[int, int]:
    z = 0
    shift = 0
    for i in range(_MAX_LONG_BYTES):
        if pos + i >= len(region):
            raise InvalidMessage(f"tags field is truncated inside the {what} (Avro long)")
        byte = region[pos + i]
        z |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if z >= 1 << 64:
                break
            return (z >> 1) ^ -(z & 1), pos + i + 1
    raise InvalidMessage(f"{what} in the tags field is not a valid 64-bit Avro long")


def _read_string(region: bytes, pos: int, index: int, part: str, limit: int) -> tuple[str, int]:
    # Fast path: a length under 64 is one byte; only a longer one pays for the
    # general reader and its error text (this runs twice per tag per request).
    byte = region[pos] if pos < len(region) else 0x80
    if byte < 0x80:
        length, pos = (byte >> 1) ^ -(byte & 1), pos + 1
    else:
        length, pos = _read_long(region, pos, f"tag {index} {part} length")
    if length < 0:
        raise InvalidMessage(f"tag {index} {part} has a negative length ({length})")
    if length > limit:
        raise InvalidMessage(f"tag {index} {part} is {length} bytes; at most {limit}")
    end = pos + length
    if end > len(region):
        raise InvalidMessage(
            f"tag {index} {part} of {length} bytes runs past the end of the tags field"
        )
    try:
        return region[pos:end].decode("utf-8"), end
    except UnicodeDecodeError:
        raise InvalidMessage(f"tag {index} {part} is not valid UTF-8") from None
