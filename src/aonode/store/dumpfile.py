"""The ``aonode export`` stream format: a magic line, then length-prefixed frames.

Binary rather than JSON lines because most of a store is bytes (signed
messages, assignment documents, snapshots), which JSON would inflate by a
third in base64.  The layout::

    b"AONODE-EXPORT\\n"
    frame*                     tag (1 byte) | u32 length | payload
    payload                    field*: u32 length (0xFFFFFFFF = None) | bytes

Integers are decimal ASCII fields, text is UTF-8.  The first frame is the
header (``H``: one JSON field, with ``format`` and ``version``); the last is the
trailer (``E``: one JSON field with the frame counts and the SHA-256 of every
byte before it), so a reader tells a complete stream from a cut one.  Frame
tags: ``A`` assignment with its body, ``M`` a message no schedule assigns,
``L`` a location record with its message, ``R`` a computed result, ``K`` a
record.  The frames in between come in that order, assignments grouped by
process in slot order.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
from collections.abc import AsyncIterator, Sequence
from typing import BinaryIO, Final

import orjson

from aonode.errors import InputError

MAGIC: Final = b"AONODE-EXPORT\n"
FORMAT: Final = "aonode-export"
VERSION: Final = 1
TAGS: Final = frozenset(b"AMLRK")

Field = bytes | str | int | None
_NONE: Final = 0xFFFFFFFF
_U32: Final = struct.Struct(">I")
_HEAD: Final = struct.Struct(">cI")
_CHUNK: Final = 1 << 20
MAX_FRAME: Final = 1 << 31  # a frame larger than this is not from aonode


class BadStream(InputError):
    """The input is not a complete, well-formed aonode export stream."""

    code = "bad-export-stream"


def encode_frame(tag: bytes, fields: Sequence[Field]) -> bytes:
    parts: list[bytes] = []
    for f in fields:
        if f is None:
            parts.append(_U32.pack(_NONE))
            continue
        raw = f if isinstance(f, bytes) else str(f).encode()
        parts += (_U32.pack(len(raw)), raw)
    payload = b"".join(parts)
    return _HEAD.pack(tag, len(payload)) + payload


def decode_fields(payload: bytes) -> list[bytes | None]:
    fields: list[bytes | None] = []
    at, end = 0, len(payload)
    while at < end:
        if at + 4 > end:
            raise BadStream("a frame's field is cut short")
        (size,) = _U32.unpack_from(payload, at)
        at += 4
        if size == _NONE:
            fields.append(None)
            continue
        if at + size > end:
            raise BadStream("a frame's field runs past the frame")
        fields.append(payload[at : at + size])
        at += size
    return fields


class DumpWriter:
    """Writes frames to a binary file, buffered; :meth:`finish` writes the trailer."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._buffer = bytearray(MAGIC)
        self._digest = hashlib.sha256()
        self.counts: dict[str, int] = {}

    async def header(self, header: dict[str, object]) -> None:
        await self._put(b"H", [orjson.dumps({"format": FORMAT, "version": VERSION, **header})])

    async def frame(self, tag: bytes, fields: Sequence[Field]) -> None:
        key = tag.decode()
        self.counts[key] = self.counts.get(key, 0) + 1
        await self._put(tag, fields)

    async def finish(self) -> None:
        if self._buffer:
            await self._flush()
        trailer = {"counts": self.counts, "sha256": self._digest.hexdigest()}
        self._buffer += encode_frame(b"E", [orjson.dumps(trailer)])
        await self._flush()
        await asyncio.to_thread(self._out.flush)

    async def _put(self, tag: bytes, fields: Sequence[Field]) -> None:
        self._buffer += encode_frame(tag, fields)
        if len(self._buffer) >= _CHUNK:
            await self._flush()

    async def _flush(self) -> None:
        data, self._buffer = bytes(self._buffer), bytearray()
        self._digest.update(data)
        await asyncio.to_thread(self._out.write, data)


class DumpReader:
    """Reads a stream back: :meth:`header` first, then :meth:`frames` up to the trailer."""

    def __init__(self, source: BinaryIO) -> None:
        self._in = source
        self._buffer = bytearray()
        self._at = 0
        self._eof = False
        self._digest = hashlib.sha256()
        self.counts: dict[str, int] = {}

    async def header(self) -> dict[str, object]:
        try:
            magic = await self._take(len(MAGIC))
        except BadStream:
            magic = b""
        if magic != MAGIC:
            raise BadStream("not an aonode export stream (no AONODE-EXPORT header)")
        tag, payload = await self._frame()
        fields = decode_fields(payload)
        if tag != b"H" or len(fields) != 1 or fields[0] is None:
            raise BadStream("the stream has no header frame")
        try:
            header = orjson.loads(fields[0])
        except orjson.JSONDecodeError as exc:
            raise BadStream(f"the header is not JSON: {exc}") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise BadStream("the header does not name the aonode-export format")
        if header.get("version") != VERSION:
            raise BadStream(
                f"export format version {header.get('version')!r}; this aonode reads {VERSION}"
            )
        return header

    async def frames(self) -> AsyncIterator[tuple[bytes, list[bytes | None]]]:
        """Every frame after the header; raises :class:`BadStream` at a missing or bad trailer."""
        while True:
            digest = self._digest.copy()  # of every byte before this frame
            tag, payload = await self._frame()
            if tag == b"E":
                self._check_trailer(payload, digest.hexdigest())
                return
            if tag[0] not in TAGS:
                raise BadStream(f"unknown frame tag {tag!r}")
            key = tag.decode()
            self.counts[key] = self.counts.get(key, 0) + 1
            yield tag, decode_fields(payload)

    def _check_trailer(self, payload: bytes, digest: str) -> None:
        fields = decode_fields(payload)
        try:
            trailer = orjson.loads(fields[0] or b"") if len(fields) == 1 else None
        except orjson.JSONDecodeError:
            trailer = None
        if not isinstance(trailer, dict):
            raise BadStream("the trailer frame is unreadable")
        if trailer.get("sha256") != digest:
            raise BadStream("the stream's checksum does not match its trailer (corrupted)")
        if trailer.get("counts") != self.counts:
            raise BadStream(f"frame counts {self.counts} differ from the trailer's")

    async def _frame(self) -> tuple[bytes, bytes]:
        head = await self._take(_HEAD.size)
        tag, size = _HEAD.unpack(head)
        if size > MAX_FRAME:
            raise BadStream(f"a frame of {size} bytes: not an aonode export stream")
        return tag, await self._take(size)

    async def _take(self, size: int) -> bytes:
        while len(self._buffer) - self._at < size:
            if self._eof:
                raise BadStream("the stream ends early (cut short: no trailer)")
            if self._at:
                del self._buffer[: self._at]
                self._at = 0
            chunk = await asyncio.to_thread(self._in.read, max(_CHUNK, size))
            if not chunk:
                self._eof = True
            self._buffer += chunk
        data = bytes(self._buffer[self._at : self._at + size])
        self._at += size
        self._digest.update(data)
        return data


def text(field: bytes | None) -> str:
    if field is None:
        raise BadStream("a required field is missing")
    try:
        return field.decode()
    except UnicodeDecodeError:
        raise BadStream("a text field is not UTF-8") from None


def number(field: bytes | None) -> int:
    try:
        return int(text(field))
    except ValueError:
        raise BadStream("a number field is not a decimal integer") from None


def blob(field: bytes | None) -> bytes:
    if field is None:
        raise BadStream("a required field is missing")
    return field
