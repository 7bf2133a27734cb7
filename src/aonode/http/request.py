"""The HTTP request as the routes see it, and request bodies → messages.

Bodies are read with the configured limit enforced twice: a declared
``Content-Length`` over the limit is refused before a byte is read, and a
chunked body is cut off as soon as it passes the limit.  A body that stops
arriving for ``body_timeout`` seconds is answered 408 (and the connection
closed), so a stalled upload cannot hold a connection and a handler forever.

Every integer a route reads goes through :func:`parse_int` with a range, so an
out-of-range number is a 400 ``bad-parameter`` before it reaches the store, and
every signed message passes its signer's quota in :func:`read_message`, right
after its signature verified and before anything is stored or scheduled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson

from aonode.codec import ans104, httpsig, jsonform
from aonode.errors import (
    BadParameter,
    InvalidMessage,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)
from aonode.message import Message
from aonode.quotas import Quotas
from aonode.verifier import INLINE_LIMIT, Verifier

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]

BINARY_TYPES = ("application/ans104", "application/octet-stream")


# A refused (oversized) body is read and dropped before the 413 goes out (a
# "lingering close"): a client still writing into a closed connection gets a reset
# (EPIPE) and may never read the answer.  Bounded in bytes and in time; a body
# declared larger than the byte bound is answered at once.
_LINGER_BYTES = 64 << 20
_LINGER_SECONDS = 2.0

# The largest integer any route accepts (slots, ranges, limits, depths): JavaScript's
# largest safe integer, so every AO client can name it, and far inside SQLite's int64.
MAX_INT = 2**53 - 1


def parse_int(name: str, raw: str | None, *, low: int = 0, high: int = MAX_INT) -> int | None:
    """``raw`` as an integer in ``low..high``; ``None`` when absent or empty.

    Anything else is a 400 ``bad-parameter`` naming the parameter and the range."""
    if raw is None or raw == "":
        return None
    text = raw.strip()
    if not (text.isascii() and text.lstrip("-").isdigit()) or len(text) > 20:
        raise BadParameter(f"{name} must be an integer in {low}..{high}, got {raw[:40]!r}")
    value = int(text)
    if not low <= value <= high:
        raise BadParameter(f"{name} must be in {low}..{high}, got {text}")
    return value


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
    client: str = ""  # the peer's network address: the key of unsigned quotas
    quotas: Quotas | None = None  # None: nothing is charged (in-process callers)
    body_timeout: float | None = None
    header_bytes: int = 0  # the header block as sent: ``name: value\r\n`` per header
    _ctype: str | None = None  # the content type, read once

    @classmethod
    def from_scope(
        cls,
        scope: Scope,
        receive: Receive,
        max_body: int,
        *,
        quotas: Quotas | None = None,
        body_timeout: float | None = None,
    ) -> Request:
        headers: dict[str, str] = {}
        header_bytes = 0
        for k, v in scope.get("headers", ()):
            header_bytes += len(k) + len(v) + 4
            headers.setdefault(k.decode("latin-1").lower(), v.decode("latin-1"))
        path = scope.get("path", "/")
        raw_qs = scope.get("query_string", b"").decode("latin-1")
        query = (
            {k.lower(): v for k, v in parse_qsl(raw_qs, keep_blank_values=True)} if raw_qs else {}
        )
        return cls(
            method=scope.get("method", "GET").upper(),
            path=unquote(path) if "%" in path else path,
            query=query,
            headers=headers,
            receive=receive,
            max_body=max_body,
            query_string=raw_qs,
            client=str((scope.get("client") or ("",))[0]),
            quotas=quotas,
            body_timeout=body_timeout,
            header_bytes=header_bytes,
        )

    async def body(self) -> bytes:
        if self._body is not None:
            return self._body
        declared = self.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            if int(declared) <= _LINGER_BYTES:
                await self._discard(int(declared))
            raise PayloadTooLarge(
                f"body of {declared} bytes is over the limit of {self.max_body} bytes"
            )
        # With a declared length the body is complete once that many bytes came:
        # granian sends a small body as one event with ``more_body`` still True and
        # then an empty last event, a second wait this read does not need.
        expected = int(declared) if declared is not None and declared.isdigit() else -1
        chunks: list[bytes] = []
        size = 0
        # one stall timer for the whole read, not an asyncio.timeout per event
        stall = None if self.body_timeout is None else _Stall(self.body_timeout)
        try:
            while size != expected:
                event = await self.receive()
                if stall is not None:
                    stall.moved()
                if event["type"] == "http.disconnect":
                    break
                chunk = event.get("body", b"")
                size += len(chunk)
                if size > self.max_body:
                    if event.get("more_body", False):
                        if stall is not None:
                            stall.close()  # the discard has its own bounds
                        await self._discard(_LINGER_BYTES - size)
                    raise PayloadTooLarge(f"body is over the limit of {self.max_body} bytes")
                chunks.append(chunk)
                if not event.get("more_body", False):
                    break
        except asyncio.CancelledError:
            if stall is not None and stall.expired():
                raise self._stalled() from None
            raise
        finally:
            if stall is not None:
                stall.close()
        self._body = b"".join(chunks)
        return self._body

    def _stalled(self) -> RequestTimeout:
        return RequestTimeout(f"the body stalled: nothing arrived for {self.body_timeout:g} s")

    async def _next(self) -> MutableMapping[str, Any]:
        """The next body event; a client silent for ``body_timeout`` gets a 408."""
        if self.body_timeout is None:
            return await self.receive()
        try:
            # asyncio.timeout, not wait_for: no extra task and future per body event
            async with asyncio.timeout(self.body_timeout):
                return await self.receive()
        except TimeoutError:
            raise self._stalled() from None

    def int_param(self, name: str, *, low: int = 0, high: int = MAX_INT) -> int | None:
        """An integer parameter (query, else header) in ``low..high``; see :func:`parse_int`."""
        return parse_int(name, self.param(name), low=low, high=high)

    async def _discard(self, budget: int) -> None:
        """Read and drop up to ``budget`` bytes of a refused body, so that a client
        still sending it gets to read the error instead of a closed connection
        (at most :data:`_LINGER_SECONDS`: a slow sender is then cut off)."""
        try:
            async with asyncio.timeout(_LINGER_SECONDS):
                while budget > 0:
                    event = await self._next()
                    if event["type"] == "http.disconnect":
                        return
                    budget -= len(event.get("body", b""))
                    if not event.get("more_body", False):
                        return
        except (TimeoutError, RequestTimeout):
            return

    def param(self, name: str) -> str | None:
        """A request parameter from the query, else from a header (HyperBEAM style)."""
        value = self.query.get(name)
        return value if value is not None else self.headers.get(name)

    @property
    def content_type(self) -> str:
        ctype = self._ctype
        if ctype is None:
            raw = self.headers.get("content-type", "")
            ctype = self._ctype = raw.split(";", 1)[0].strip().lower() if raw else ""
        return ctype


class _Stall:
    """The body-stall timer of one body read: one timer per read, not per event.

    Each event only moves the deadline (:meth:`moved`); when the timer comes due
    before the deadline it re-arms itself for it, and once the deadline has passed
    with nothing arrived it cancels the reading task, which :meth:`expired` then
    tells apart from any other cancellation (as ``asyncio.timeout`` does).
    """

    __slots__ = ("_deadline", "_fired", "_handle", "_loop", "_seconds", "_task")

    def __init__(self, seconds: float) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._seconds = seconds
        self._deadline = loop.time() + seconds
        self._fired = False
        self._handle: asyncio.TimerHandle | None = loop.call_at(self._deadline, self._due)

    def moved(self) -> None:
        """Something arrived: the deadline moves to ``seconds`` from now."""
        self._deadline = self._loop.time() + self._seconds

    def _due(self) -> None:
        if self._handle is None:
            return
        if self._loop.time() < self._deadline:
            self._handle = self._loop.call_at(self._deadline, self._due)
            return
        self._handle = None
        if self._task is not None:
            self._fired = True
            self._task.cancel()

    def expired(self) -> bool:
        """Whether the cancellation now arriving is this timer's (and only its)."""
        return self._fired and self._task is not None and self._task.uncancel() == 0

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def dryrun_slot(request: Request) -> AbstractAsyncContextManager[None]:
    """Hold one of the client's (and the node's) concurrent dry-run slots, or 429."""
    if request.quotas is None:
        return nullcontext()
    request.quotas.charge_read(request.client)
    return request.quotas.dryruns.hold(request.client)


async def read_message(
    request: Request, verifier: Verifier, *, binary_default: bool = False, store: bool = False
) -> Message:
    """Decode and verify the signed message in the request body.

    Accepts a binary ANS-104 item (``application/ans104``, header
    ``codec-device: ans104@1.0``, ``application/octet-stream``), the JSON
    data-item form (``application/json``), or the request itself signed per
    RFC 9421 (``signature-input`` header, or ``codec-device: httpsig@1.0``).
    ``binary_default`` treats any other content type as binary, as the legacy
    ``POST /`` does.  The verified signer then pays its quota (a message, a
    spawn, or with ``store`` the stored bytes): 429 before anything is kept.
    """
    message = await _read_verified(request, verifier, binary_default=binary_default)
    if request.quotas is not None:
        if store:
            request.quotas.charge_store(message.signer, len(message.item.raw))
        else:
            request.quotas.charge_message(message.signer, spawn=message.is_process)
    return message


async def _read_verified(request: Request, verifier: Verifier, *, binary_default: bool) -> Message:
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
