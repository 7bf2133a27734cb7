"""The HTTP request as the routes see it, and request bodies → messages.

Bodies are read with the configured limit enforced twice: a declared
``Content-Length`` over the limit is refused before a byte is read, and a
chunked body is cut off as soon as it passes the limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson

from aonode.codec import ans104, httpsig, jsonform
from aonode.errors import InvalidMessage, PayloadTooLarge, UnsupportedMediaType
from aonode.message import Message
from aonode.verifier import INLINE_LIMIT, Verifier

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]

BINARY_TYPES = ("application/ans104", "application/octet-stream")


# A refused (oversized) body at most this much over the limit is read and dropped
# before the 413 goes out; larger ones are answered at once (the client may see
# the connection close before it reads the answer).
_DRAIN = 1 << 20


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    receive: Receive
    max_body: int
    _body: bytes | None = field(default=None)
    query_string: str = ""  # raw, for RFC 9421's @query

    @classmethod
    def from_scope(cls, scope: Scope, receive: Receive, max_body: int) -> Request:
        headers: dict[str, str] = {}
        for k, v in scope.get("headers", ()):
            headers.setdefault(k.decode("latin-1").lower(), v.decode("latin-1"))
        raw_qs = scope.get("query_string", b"").decode("latin-1")
        query = {k.lower(): v for k, v in parse_qsl(raw_qs, keep_blank_values=True)}
        return cls(
            method=scope.get("method", "GET").upper(),
            path=unquote(scope.get("path", "/")),
            query=query,
            headers=headers,
            receive=receive,
            max_body=max_body,
            query_string=raw_qs,
        )

    async def body(self) -> bytes:
        if self._body is not None:
            return self._body
        declared = self.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            if int(declared) <= self.max_body + _DRAIN:
                await self._discard(self.max_body + _DRAIN)
            raise PayloadTooLarge(
                f"body of {declared} bytes is over the limit of {self.max_body} bytes"
            )
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await self.receive()
            if event["type"] == "http.disconnect":
                break
            chunk = event.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                if event.get("more_body", False):
                    await self._discard(self.max_body + _DRAIN - size)
                raise PayloadTooLarge(f"body is over the limit of {self.max_body} bytes")
            chunks.append(chunk)
            if not event.get("more_body", False):
                break
        self._body = b"".join(chunks)
        return self._body

    async def _discard(self, budget: int) -> None:
        """Read and drop up to ``budget`` bytes of a refused body, so that a client
        still sending it gets to read the error instead of a closed connection."""
        while budget > 0:
            event = await self.receive()
            if event["type"] == "http.disconnect":
                return
            budget -= len(event.get("body", b""))
            if not event.get("more_body", False):
                return

    def param(self, name: str) -> str | None:
        """A request parameter from the query, else from a header (HyperBEAM style)."""
        value = self.query.get(name)
        return value if value is not None else self.headers.get(name)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_message(
    request: Request, verifier: Verifier, *, binary_default: bool = False
) -> Message:
    """Decode and verify the signed message in the request body.

    Accepts a binary ANS-104 item (``application/ans104``, header
    ``codec-device: ans104@1.0``, ``application/octet-stream``), the JSON
    data-item form (``application/json``), or the request itself signed per
    RFC 9421 (``signature-input`` header, or ``codec-device: httpsig@1.0``).
    ``binary_default`` treats any other content type as binary, as the legacy
    ``POST /`` does.
    """
    body = await request.body()
    if (
        not binary_default
        and request.content_type != "application/ans104"
        and httpsig.is_httpsig(request.headers)
    ):
        return Message.from_item(await _httpsig_item(request, body, verifier))
    if not body:
        raise InvalidMessage(
            "the request has no body; expected a signed message", code="missing-body"
        )
    ctype = request.content_type
    codec = request.headers.get("codec-device", "").lower()
    if ctype == "application/json" and not codec.startswith("ans104"):
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidMessage(f"body is not valid JSON: {exc}", code="invalid-json") from None
        item = jsonform.from_json(obj)
    elif codec.startswith("ans104") or ctype in BINARY_TYPES or binary_default:
        item = ans104.parse(body)
    else:
        raise UnsupportedMediaType(
            f"content type {ctype or '(none)'!r} is not accepted here; send "
            "application/ans104 (binary ANS-104) or application/json (JSON data item)"
        )
    await verifier.check(item)
    return Message.from_item(item)


async def _httpsig_item(request: Request, body: bytes, verifier: Verifier) -> httpsig.HttpSigItem:
    args = (request.method, request.path, request.query_string, request.headers, body)
    started = time.perf_counter()
    if len(body) <= INLINE_LIMIT:
        item = httpsig.parse(*args)
    else:  # hashing a big body releases the GIL
        item = await asyncio.to_thread(httpsig.parse, *args)
    if verifier.observer is not None:  # the same signature-time metric as ANS-104 checks
        verifier.observer(time.perf_counter() - started)
    return item
