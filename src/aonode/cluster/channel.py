"""Framed, batched calls between the workers of one cluster (Unix domain sockets).

Why not HTTP: the previous hop was an HTTP request over a Unix socket and cost
~1 ms of CPU per message (a second parse, a second ASGI dispatch, a connection
per call).  Here a call is one small binary frame on a long-lived connection:

    frame = length:u32 | kind:u8 | request id:u32 | method length:u16 | method | payload

``length`` counts every byte after itself.  ``kind`` is a request, a reply or an
error; replies carry no method.  The payload is opaque bytes (the caller's own
encoding: a signed message as it arrived, a JSON body).  Frames written during
one turn of the event loop go out in one ``write`` and every complete frame in
one ``read`` is handled before the next, so a busy channel costs a syscall per
batch, not per call.

An error raised by a handler travels as (class code, instance code, message,
fields) and is re-raised on the calling side as the same :class:`AONodeError`
subclass with the same fields (``retry_after``, ``location``, …), so the one
HTTP error mapping answers a forwarded call exactly as a local one.  A peer
that is down or goes away fails its calls with :class:`Overloaded` (503 with
``Retry-After``): the supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, cast

import orjson

from aonode.errors import AONodeError, Overloaded

log = logging.getLogger("aonode.cluster")

Handler = Callable[[bytes], Awaitable[bytes]]

REQUEST, REPLY, ERROR = 0, 1, 2
_LENGTH = struct.Struct("!I")
_HEAD = struct.Struct("!IBIH")  # length, kind, request id, method length
_AFTER_LENGTH = _HEAD.size - _LENGTH.size
MAX_FRAME = 1 << 31  # a longer length is a corrupt stream: the connection is dropped
_IDS = 1 << 32


# -- errors across the channel ------------------------------------------------------


def _error_classes() -> dict[str, type[AONodeError]]:
    """Code → class for every AONodeError subclass that names its own code."""
    found: dict[str, type[AONodeError]] = {AONodeError.code: AONodeError}
    todo: list[type[AONodeError]] = [AONodeError]
    while todo:  # breadth first: errors.py's classes before later subclasses
        cls = todo.pop(0)
        for sub in cls.__subclasses__():
            if "code" in sub.__dict__:
                found.setdefault(sub.code, sub)
            todo.append(sub)
    return found


def encode_error(exc: BaseException) -> bytes:
    """An error as it crosses the channel (a non-AONodeError becomes internal-error)."""
    if isinstance(exc, AONodeError):
        fields = {k: v for k, v in vars(exc).items() if k not in ("message", "code", "__notes__")}
        body = {"type": type(exc).code, "code": exc.code, "message": exc.message, "fields": fields}
    else:
        body = {
            "type": AONodeError.code,
            "code": AONodeError.code,
            "message": f"{type(exc).__name__}: {exc}",
            "fields": {},
        }
    return orjson.dumps(body, default=str)


def decode_error(payload: bytes) -> AONodeError:
    """The error :func:`encode_error` sent, as the same class with the same fields."""
    body = orjson.loads(payload)
    cls = _error_classes().get(body["type"], AONodeError)
    exc = cls.__new__(cls)  # each class has its own constructor; set what it would
    Exception.__init__(exc, body["message"])
    exc.message = body["message"]
    if body["code"] != cls.code:
        exc.code = body["code"]
    for name, value in body["fields"].items():
        setattr(exc, name, tuple(value) if isinstance(value, list) else value)
    return exc


# -- one connection -----------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One end of a channel connection: parses frames, batches writes, runs handlers."""

    def __init__(self, handlers: Mapping[str, Handler], on_lost: Callable[[], None]) -> None:
        self._handlers = handlers
        self._on_lost = on_lost
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._inbox = bytearray()
        self._outbox = bytearray()
        self._flushing = False
        self._next_id = 0
        self._waiting: dict[int, asyncio.Future[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    # transport callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._transport = None
        waiting, self._waiting = self._waiting, {}
        for fut in waiting.values():
            if not fut.done():
                fut.set_exception(Overloaded("a cluster worker went away mid-call; retry"))
        for task in self._tasks:
            task.cancel()
        self._on_lost()

    def data_received(self, data: bytes) -> None:
        buf = self._inbox
        buf += data
        at, end = 0, len(buf)
        view = memoryview(buf)
        try:
            while end - at >= _HEAD.size:
                (length,) = _LENGTH.unpack_from(buf, at)
                if length < _AFTER_LENGTH or length > MAX_FRAME:
                    log.error("corrupt cluster frame (length %d): closing", length)
                    self.close()
                    return
                stop = at + _LENGTH.size + length
                if stop > end:
                    break
                _, kind, rid, mlen = _HEAD.unpack_from(buf, at)
                start = at + _HEAD.size
                method = bytes(view[start : start + mlen]).decode()
                payload = bytes(view[start + mlen : stop])
                at = stop
                self._frame(kind, rid, method, payload)
        finally:
            view.release()
            del buf[:at]

    # frames
    def _frame(self, kind: int, rid: int, method: str, payload: bytes) -> None:
        if kind == REQUEST:
            task = self._loop.create_task(self._serve(rid, method, payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        fut = self._waiting.pop(rid, None)
        if fut is None or fut.done():  # the caller was cancelled meanwhile
            return
        if kind == REPLY:
            fut.set_result(payload)
        else:
            fut.set_exception(decode_error(payload))

    async def _serve(self, rid: int, method: str, payload: bytes) -> None:
        handler = self._handlers.get(method)
        try:
            if handler is None:
                raise AONodeError(f"no cluster method {method!r}", code="not-found")
            reply = await handler(payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not isinstance(exc, AONodeError):
                log.exception("cluster method %s failed", method)
            self._send(ERROR, rid, b"", encode_error(exc))
        else:
            self._send(REPLY, rid, b"", reply)

    def _send(self, kind: int, rid: int, method: bytes, payload: bytes) -> None:
        if self._transport is None:
            return
        out = self._outbox
        out += _HEAD.pack(_AFTER_LENGTH + len(method) + len(payload), kind, rid, len(method))
        out += method
        out += payload
        if not self._flushing:
            self._flushing = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flushing = False
        if self._transport is not None and self._outbox:
            self._transport.write(bytes(self._outbox))
        self._outbox.clear()

    def call(self, method: bytes, payload: bytes) -> asyncio.Future[bytes]:
        """Send one request; the future holds its reply (or raises its error)."""
        if self.closed:
            raise Overloaded("the cluster worker is not connected; retry")
        rid = self._next_id
        self._next_id = (rid + 1) % _IDS
        fut: asyncio.Future[bytes] = self._loop.create_future()
        self._waiting[rid] = fut
        self._send(REQUEST, rid, method, payload)
        return fut

    def forget(self, fut: asyncio.Future[bytes]) -> None:
        for rid, waiting in self._waiting.items():
            if waiting is fut:
                del self._waiting[rid]
                return

    def close(self) -> None:
        if self._transport is not None:
            self._flush()
            self._transport.close()


# -- the two ends ------------------------------------------------------------------


class Listener:
    """A worker's end: answers the calls its peers send to ``path``."""

    def __init__(self, path: Path, handlers: Mapping[str, Handler]) -> None:
        self.path = Path(path)
        self.handlers = dict(handlers)
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[_Connection] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a worker that was killed

        def accept() -> _Connection:
            conn = _Connection(self.handlers, lambda: self._conns.discard(conn))
            self._conns.add(conn)
            return conn

        self._server = await loop.create_unix_server(accept, str(self.path))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for conn in list(self._conns):
                conn.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class Link:
    """A caller's end towards one peer: connects on first use and again after a restart."""

    def __init__(self, path: Path, *, name: str = "peer") -> None:
        self.path = Path(path)
        self.name = name
        self._conn: _Connection | None = None
        self._connecting: asyncio.Lock | None = None

    async def _connected(self) -> _Connection:
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            conn = self._conn
            if conn is not None and not conn.closed:
                return conn
            loop = asyncio.get_running_loop()
            try:
                _, conn = await loop.create_unix_connection(
                    lambda: _Connection({}, lambda: None), str(self.path)
                )
            except OSError:
                raise Overloaded(f"cluster worker {self.name} is not answering; retry") from None
            self._conn = conn
            return conn

    async def call(self, method: str, payload: bytes = b"") -> bytes:
        """Run ``method`` on the peer; its reply bytes, or its error re-raised here."""
        conn = self._conn
        if conn is None or conn.closed:
            conn = await self._connected()
        fut = conn.call(method.encode(), payload)
        try:
            return await fut
        except asyncio.CancelledError:
            conn.forget(fut)
            raise

    async def call_json(self, method: str, body: Any) -> Any:
        """:meth:`call` with a JSON body and a JSON reply."""
        return orjson.loads(await self.call(method, orjson.dumps(body)))

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


async def ask_all(peers: Mapping[int, Link], method: str, what: str) -> dict[int, bytes]:
    """Call ``method`` on every peer at once; each answer by worker index.

    A peer that is restarting (:class:`Overloaded`) is left out (logged as
    ``what``: "this scrape", "this answer"); any other error is raised.
    """
    replies = await asyncio.gather(
        *(link.call(method) for link in peers.values()), return_exceptions=True
    )
    answers: dict[int, bytes] = {}
    for index, reply in zip(peers, replies, strict=True):
        if isinstance(reply, Overloaded):
            log.info("%s: worker %d is not answering; left out of %s", method, index, what)
        elif isinstance(reply, BaseException):
            raise reply
        else:
            answers[index] = reply
    return answers
