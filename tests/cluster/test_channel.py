"""The cluster channel over real Unix sockets: round trips, errors, batching, loss."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest

from aonode import errors
from aonode.cluster import channel
from aonode.cluster.channel import Link, Listener


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # Unix socket paths are capped at 108 bytes: pytest's tmp_path can be longer
    with tempfile.TemporaryDirectory(prefix="aonode-ch-") as d:
        yield Path(d)


async def echo(payload: bytes) -> bytes:
    return payload


async def upper(payload: bytes) -> bytes:
    await asyncio.sleep(0)  # a real suspension inside the handler
    return payload.upper()


class Raiser:
    """Handlers that raise whatever error a test names (by class and kwargs)."""

    def __init__(self) -> None:
        self.exc: BaseException = RuntimeError("unset")

    async def __call__(self, payload: bytes) -> bytes:
        raise self.exc


@pytest.fixture
async def pair(sock_dir: Path) -> AsyncIterator[tuple[Listener, Link, Raiser]]:
    raiser = Raiser()
    listener = Listener(sock_dir / "w0.sock", {"echo": echo, "upper": upper, "raise": raiser})
    await listener.start()
    link = Link(sock_dir / "w0.sock", name="0")
    yield listener, link, raiser
    await link.close()
    await listener.close()


async def test_round_trip(pair: tuple[Listener, Link, Raiser]) -> None:
    _, link, _ = pair
    assert await link.call("echo", b"hello") == b"hello"
    assert await link.call("upper", b"abc") == b"ABC"
    assert await link.call("echo") == b""
    big = os.urandom(3 * 1024 * 1024)  # larger than any socket buffer: many reads
    assert await link.call("echo", big) == big
    assert await link.call_json("echo", {"a": [1, "x"]}) == {"a": [1, "x"]}


async def test_unknown_method_is_an_error_not_a_hang(pair: tuple[Listener, Link, Raiser]) -> None:
    _, link, _ = pair
    with pytest.raises(errors.AONodeError) as info:
        await link.call("nope", b"")
    assert info.value.code == "not-found"
    assert await link.call("echo", b"still fine") == b"still fine"


@pytest.mark.parametrize(
    "exc",
    [
        errors.InvalidMessage("bad tags"),
        errors.InvalidSignature("does not verify"),
        errors.NotFound("no such process"),
        errors.Overloaded("queue full", retry_after=7),
        errors.TooManyTasks("cap", retry_after=3),
        errors.QuotaExceeded("slow down", retry_after=42),
        errors.NotOwner("elsewhere", location="http://other:1"),
        errors.MethodNotAllowed("no", allow=("GET", "POST")),
        errors.Unreachable("down", status=504, node="http://n", attempts=3),
        errors.IntegrityError("duplicate slot"),
        errors.LeaseLost("fenced"),
        errors.Expired("too late"),
        errors.DataDirLocked("in use", path="/d", pid=12),
        errors.AONodeError("custom code", code="my-code"),
        errors.Conflict("renamed", code="special-conflict"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_errors_arrive_as_the_same_class_with_the_same_fields(
    pair: tuple[Listener, Link, Raiser], exc: errors.AONodeError
) -> None:
    _, link, raiser = pair
    raiser.exc = exc
    with pytest.raises(errors.AONodeError) as info:
        await link.call("raise", b"")
    got = info.value
    assert type(got) is type(exc)
    assert got.code == exc.code
    assert got.message == exc.message == str(got)
    assert vars(got) == vars(exc)


async def test_a_non_node_error_is_an_internal_error(pair: tuple[Listener, Link, Raiser]) -> None:
    _, link, raiser = pair
    raiser.exc = ZeroDivisionError("division by zero")
    with pytest.raises(errors.AONodeError) as info:
        await link.call("raise", b"")
    assert type(info.value) is errors.AONodeError
    assert info.value.code == "internal-error"
    assert "ZeroDivisionError" in info.value.message


def test_every_error_code_names_one_class() -> None:
    # the receiving side picks the class by code: two classes with one code would
    # turn one into the other
    seen: dict[str, str] = {}
    for name in dir(errors):
        cls = getattr(errors, name)
        if isinstance(cls, type) and issubclass(cls, errors.AONodeError):
            assert seen.setdefault(cls.code, name) == name, (cls.code, seen[cls.code], name)
    assert channel._error_classes()["not-owner"] is errors.NotOwner


class CountingTransport:
    """Counts the writes and reads of connections (wraps the real protocol methods)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads = 0
        self.writes = 0
        real_received = channel._Connection.data_received
        real_flush = channel._Connection._flush

        def received(conn: channel._Connection, data: bytes) -> None:
            self.reads += 1
            real_received(conn, data)

        def flush(conn: channel._Connection) -> None:
            if conn._outbox:
                self.writes += 1
            real_flush(conn)

        monkeypatch.setattr(channel._Connection, "data_received", received)
        monkeypatch.setattr(channel._Connection, "_flush", flush)


async def test_concurrent_calls_are_batched_and_matched(
    pair: tuple[Listener, Link, Raiser], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, link, _ = pair
    await link.call("echo", b"connect first")
    counted = CountingTransport(monkeypatch)
    n = 2000
    payloads = [f"m{k}".encode() * (k % 7 + 1) for k in range(n)]
    replies = await asyncio.gather(
        *(link.call("upper" if k % 2 else "echo", p) for k, p in enumerate(payloads))
    )
    # every reply is the answer to its own request, whatever order they came back in
    assert replies == [p.upper() if k % 2 else p for k, p in enumerate(payloads)]
    # 2n frames crossed (n requests, n replies); far fewer writes and reads did
    assert counted.writes < n / 10, counted.writes
    assert counted.reads < n / 10, counted.reads


async def test_a_cancelled_call_leaves_the_link_usable(
    pair: tuple[Listener, Link, Raiser],
) -> None:
    listener, link, _ = pair
    gate, entered = asyncio.Event(), asyncio.Event()

    async def wait(payload: bytes) -> bytes:
        entered.set()
        await gate.wait()
        return payload

    listener.handlers["wait"] = wait  # Listener shares its dict with connections made later
    await link.close()
    call = asyncio.ensure_future(link.call("wait", b"x"))
    await entered.wait()  # the request is in the peer's hands
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    gate.set()
    assert await link.call("echo", b"after") == b"after"


async def test_a_peer_that_is_down_answers_overloaded(sock_dir: Path) -> None:
    link = Link(sock_dir / "nobody.sock", name="3")
    with pytest.raises(errors.Overloaded) as info:
        await link.call("echo", b"x")
    assert "3" in info.value.message and info.value.retry_after >= 1


async def test_a_peer_that_dies_fails_its_pending_calls_then_reconnects(sock_dir: Path) -> None:
    path = sock_dir / "w1.sock"
    started = asyncio.Event()

    async def hang(payload: bytes) -> bytes:
        started.set()
        await asyncio.Event().wait()
        return b""

    first = Listener(path, {"hang": hang, "echo": echo})
    await first.start()
    link = Link(path, name="1")
    pending = asyncio.ensure_future(link.call("hang", b""))
    await started.wait()
    await first.close()  # the peer goes away with a call in flight
    with pytest.raises(errors.Overloaded):
        await pending
    with pytest.raises(errors.Overloaded):
        await link.call("echo", b"x")  # nobody listens now
    second = Listener(path, {"echo": echo})  # "restarted" on the same path
    await second.start()
    try:
        assert await link.call("echo", b"back") == b"back"
    finally:
        await link.close()
        await second.close()


async def test_json_frames_survive_any_split(sock_dir: Path) -> None:
    # one byte per read: the parser must keep partial frames across reads
    listener = Listener(sock_dir / "w2.sock", {"echo": echo})
    await listener.start()
    reader, writer = await asyncio.open_unix_connection(str(sock_dir / "w2.sock"))
    body = orjson.dumps({"k": "v" * 100})
    frame = channel._HEAD.pack(channel._AFTER_LENGTH + 4 + len(body), channel.REQUEST, 9, 4)
    frame += b"echo" + body
    for b in frame:
        writer.write(bytes([b]))
        await writer.drain()
    head = await reader.readexactly(channel._HEAD.size)
    length, kind, rid, mlen = channel._HEAD.unpack(head)
    rest = await reader.readexactly(length - channel._AFTER_LENGTH)
    assert (kind, rid, mlen, rest) == (channel.REPLY, 9, 0, body)
    writer.close()
    await writer.wait_closed()
    await listener.close()
