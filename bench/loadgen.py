"""A lean HTTP/1.1 keep-alive load generator, for benchmarks on a 2-core box.

The load generator shares the machine with the server it measures, so every
microsecond it spends per request is a microsecond the server does not get.
So there is no HTTP client library here: requests are pre-built bytes made
before the clock starts, and a response costs one ``readuntil`` for the head
(status and Content-Length are sliced out, nothing else is parsed) and a
``readexactly`` that usually finds the body already buffered.  On uvloop this
costs about as little as hand-written ``asyncio.Protocol`` callbacks (both
measured at ~8 µs of CPU per request), so the simpler streams won.

It is HTTP/1.1 with keep-alive and one request in flight per connection (like
``wrk``); ``concurrency`` connections take bodies from one shared index, so
each body is sent exactly once and ``responses[i]`` answers ``bodies[i]``.

Run it in its own process (``run_load_in_subprocess``) so that it never shares
an event loop, or the GIL, with the server being measured.

CLI::

    python bench/loadgen.py URL --bodies-file bodies.pkl -c 64 -H 'content-type: application/json'
    python bench/loadgen.py URL --body one.json -n 20000 -c 64
    python bench/loadgen.py --serve-trivial PORT        # a minimal server, for the ceiling
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pickle
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is optional
    uvloop = None  # type: ignore[assignment]

T = TypeVar("T")

__all__ = [
    "LoadResult",
    "main",
    "run_load",
    "run_load_in_subprocess",
    "run_load_in_subprocess_sync",
    "serve_trivial",
]


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What a run did.

    ``errors`` counts requests that got no complete HTTP response (refused,
    reset, malformed); HTTP error statuses are responses and are counted in
    ``statuses`` only.  ``per_s`` is completed responses per wall second.
    ``client_cpu_s`` is the CPU the load generator itself used while the
    clock ran: close to ``seconds`` means the generator, not the server, was
    the limit.
    """

    count: int
    errors: int
    statuses: dict[int, int]
    seconds: float
    per_s: float
    p50_ms: float
    p99_ms: float
    responses: list[bytes] | None = None
    client_cpu_s: float = 0.0

    def summary(self) -> str:
        codes = " ".join(f"{k}:{v}" for k, v in sorted(self.statuses.items()))
        return (
            f"{self.count} requests in {self.seconds:.2f} s = {self.per_s:,.0f}/s  "
            f"p50 {self.p50_ms:.2f} ms  p99 {self.p99_ms:.2f} ms  errors {self.errors}  "
            f"statuses {codes or '-'}  client cpu {self.client_cpu_s / self.seconds:.0%}"
            if self.seconds > 0
            else f"{self.count} requests, nothing timed"
        )


class _Run:
    """State shared by the connections of one run: the next body to send, and the tallies."""

    def __init__(
        self, requests: list[bytes], keep_bodies: bool, head_only: bool, rate: float | None = None
    ) -> None:
        self.requests = requests
        # Open-loop pacing: request i is due at t0 + i / rate, and its latency counts from
        # when it was due (no coordinated omission); ``None`` sends as fast as answers come.
        self.interval = 1.0 / rate if rate else 0.0
        self.t0 = 0.0
        self.head_only = head_only  # a HEAD response announces a length but sends no body
        self.next = 0
        self.statuses: dict[int, int] = {}
        self.latencies: list[float] = []
        self.responses: list[bytes] | None = [b""] * len(requests) if keep_bodies else None

    def take(self) -> int:
        i = self.next
        if i >= len(self.requests):
            return -1
        self.next = i + 1
        return i


class _BadResponse(Exception):
    pass


def _parse_head(head: bytes) -> tuple[int, int, bool]:
    """Status, body length (-1: chunked) and whether the server closes after it."""
    lower = head.lower()
    status = int(lower[9:12])
    close = b"\nconnection: close" in lower
    if b"\ntransfer-encoding: chunked" in lower:
        return status, -1, close
    at = lower.find(b"\ncontent-length:")
    if at >= 0:
        return status, int(lower[at + 16 : lower.find(b"\r", at + 16)]), close
    if status in (204, 304) or 100 <= status < 200:
        return status, 0, close
    raise _BadResponse(f"status {status} without content-length or chunked encoding")


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers
            return bytes(body)
        body += await reader.readexactly(size + 2)
        del body[-2:]


async def _connection(
    run: _Run,
    host: str,
    port: int,
    stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None,
) -> None:
    """One keep-alive connection: send a body, read its answer, repeat; reopen if closed.

    The hot path is one write and one ``readuntil`` wake-up per request; the
    body is usually in the buffer already, so ``readexactly`` does not block.
    """
    requests = run.requests
    responses = run.responses
    latencies = run.latencies
    statuses = run.statuses
    perf_counter = time.perf_counter
    while (i := run.take()) >= 0:
        try:
            if stream is None:
                stream = await asyncio.open_connection(host, port)
            reader, writer = stream
            sent_at = perf_counter()
            if run.interval:
                due = run.t0 + i * run.interval
                if due > sent_at:
                    await asyncio.sleep(due - sent_at)
                sent_at = due
            writer.write(requests[i])
            if writer.transport.get_write_buffer_size() > 65536:
                await writer.drain()
            status, length, close = _parse_head(await reader.readuntil(b"\r\n\r\n"))
            if run.head_only:
                length = 0
            body = await reader.readexactly(length) if length >= 0 else await _read_chunked(reader)
        except (OSError, EOFError, asyncio.LimitOverrunError, ValueError, _BadResponse):
            # No complete answer: the body is spent (sent once), the connection is suspect.
            if stream is not None:
                stream[1].close()
            stream = None
            continue
        latencies.append(perf_counter() - sent_at)
        statuses[status] = statuses.get(status, 0) + 1
        if responses is not None:
            responses[i] = body
        if close:
            writer.close()
            stream = None
    if stream is not None:
        stream[1].close()


def build_requests(
    url: str, bodies: Sequence[bytes], headers: Mapping[str, str], method: str
) -> tuple[str, int, list[bytes]]:
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"only http:// URLs are supported, not {url!r}")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "content-length"]
    prefix = ("\r\n".join(lines) + "\r\n").encode("latin-1")
    requests = [
        prefix + b"Content-Length: %d\r\n\r\n" % len(body) + body
        if body or method not in ("GET", "HEAD", "DELETE")
        else prefix + b"\r\n"
        for body in bodies
    ]
    return host, port, requests


async def run_load(
    url: str,
    bodies: Sequence[bytes],
    *,
    concurrency: int,
    headers: Mapping[str, str],
    method: str = "POST",
    keep_bodies: bool = False,
    give_up_after: float | None = None,
    rate: float | None = None,
) -> LoadResult:
    """Send each body once over ``concurrency`` keep-alive connections; time the whole run.

    Connections are opened before the clock starts, so connection set-up is
    not counted; a connection the server closes is reopened and the run goes
    on.  After ``give_up_after`` seconds, requests still unanswered count as
    errors.
    """
    host, port, requests = build_requests(url, bodies, headers, method)
    run = _Run(requests, keep_bodies, head_only=method == "HEAD", rate=rate)
    streams = [
        await asyncio.open_connection(host, port) for _ in range(min(concurrency, len(requests)))
    ]
    cpu0 = _cpu_seconds()
    t0 = run.t0 = time.perf_counter()
    workers = [asyncio.ensure_future(_connection(run, host, port, s)) for s in streams]
    if workers:
        _, pending = await asyncio.wait(workers, timeout=give_up_after)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    seconds = time.perf_counter() - t0
    cpu = _cpu_seconds() - cpu0
    for _, writer in streams:
        writer.close()

    latencies = sorted(run.latencies)
    completed = len(latencies)
    return LoadResult(
        count=len(requests),
        errors=len(requests) - completed,
        statuses=dict(run.statuses),
        seconds=seconds,
        per_s=completed / seconds if seconds > 0 else 0.0,
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        responses=run.responses,
        client_cpu_s=cpu,
    )


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when installed: its callbacks are cheaper, and that is the point here."""
    if uvloop is not None:
        return uvloop.run(coro)
    return asyncio.run(coro)


# -- running in a separate process -------------------------------------------------


async def run_load_in_subprocess(
    url: str,
    bodies: Sequence[bytes],
    *,
    concurrency: int,
    headers: Mapping[str, str],
    method: str = "POST",
    keep_bodies: bool = False,
    cpu: int | None = None,
    rate: float | None = None,
) -> LoadResult:
    """``run_load`` in a child process, so the measured server keeps its loop and GIL.

    Async so that it also works when the server under test runs on the
    caller's own event loop.  ``cpu`` pins the child to one core.
    """
    with tempfile.TemporaryDirectory(prefix="loadgen-") as tmp:
        args = _child_args(tmp, url, bodies, concurrency, headers, method, keep_bodies, cpu)
        if rate:
            args += ["--rate", str(rate)]
        proc = await asyncio.create_subprocess_exec(*args, stdout=subprocess.DEVNULL)
        rc = await proc.wait()
        return _child_result(tmp, rc)


def run_load_in_subprocess_sync(url: str, bodies: Sequence[bytes], **kwargs: Any) -> LoadResult:
    """Blocking twin of :func:`run_load_in_subprocess`, for callers without an event loop."""
    return asyncio.run(run_load_in_subprocess(url, bodies, **kwargs))


def _child_args(
    tmp: str,
    url: str,
    bodies: Sequence[bytes],
    concurrency: int,
    headers: Mapping[str, str],
    method: str,
    keep_bodies: bool,
    cpu: int | None,
) -> list[str]:
    bodies_file = Path(tmp) / "bodies.pkl"
    bodies_file.write_bytes(pickle.dumps(list(bodies), protocol=pickle.HIGHEST_PROTOCOL))
    args = [sys.executable, str(Path(__file__).resolve()), url]
    args += ["--bodies-file", str(bodies_file), "-c", str(concurrency), "-X", method]
    args += ["--result-file", str(Path(tmp) / "result.pkl")]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    if keep_bodies:
        args.append("--keep-bodies")
    if cpu is not None:
        args += ["--cpu", str(cpu)]
    return args


def _child_result(tmp: str, rc: int) -> LoadResult:
    result_file = Path(tmp) / "result.pkl"
    if not result_file.exists():
        raise RuntimeError(f"loadgen subprocess failed with exit code {rc}")
    # A plain dict crosses the process boundary: the child's class lives in __main__.
    fields = pickle.loads(result_file.read_bytes())
    return LoadResult(**fields)


# -- a trivial server, to measure the generator's own ceiling -------------------------


class _Trivial(asyncio.Protocol):
    """Answers every request with a fixed small JSON; parses only what framing needs."""

    RESPONSE = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n"
        b'{"ok":true}'
    )

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they quack like one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        out = 0
        while True:
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                break
            at = buf.find(b"ontent-Length: ", 0, head_end)
            length = 0
            if at >= 0:
                length = int(buf[at + 15 : buf.find(b"\r", at, head_end + 1)])
            end = head_end + 4 + length
            if len(buf) < end:
                break
            del buf[:end]
            out += 1
        if out and self.transport is not None:
            self.transport.write(self.RESPONSE * out)


async def serve_trivial(port: int, ready: Callable[[int], None] | None = None) -> None:
    """Serve until SIGTERM; ``ready`` gets the bound port once it accepts connections."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # SIGINT may be inherited as ignored (background shells); SIGTERM always reaches us.
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    server = await loop.create_server(_Trivial, "127.0.0.1", port, backlog=1024)
    async with server:
        if ready is not None:
            ready(server.sockets[0].getsockname()[1])
        await stop.wait()


# -- CLI ---------------------------------------------------------------------------


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="loadgen", description=__doc__.split("\n\n")[0])
    p.add_argument("url", nargs="?", help="http://host:port/path")
    p.add_argument("--bodies-file", help="pickle of a list of bytes, one per request")
    p.add_argument("--body", help="a raw body file, sent -n times")
    p.add_argument("-n", type=int, default=10_000, help="requests with --body (default 10000)")
    p.add_argument("-c", "--concurrency", type=int, default=64)
    p.add_argument("-X", "--method", default="POST")
    p.add_argument("-H", "--header", action="append", default=[], help="'Name: value'")
    p.add_argument("--keep-bodies", action="store_true")
    p.add_argument("--result-file", help="write the result (a pickled dict) here")
    p.add_argument("--cpu", type=int, help="pin this process to one CPU")
    p.add_argument("--rate", type=float, help="open loop: this many requests per second")
    p.add_argument("--timeout", type=float, help="give up after this many seconds")
    p.add_argument("--serve-trivial", type=int, metavar="PORT", help="run the trivial server")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.serve_trivial is not None:

        def announce(port: int) -> None:
            print(f"listening on {port}", flush=True)

        with contextlib.suppress(KeyboardInterrupt):
            _run_coroutine(serve_trivial(args.serve_trivial, announce))
        return 0
    if not args.url:
        print("loadgen: a URL is required", file=sys.stderr)
        return 2
    if args.bodies_file:
        bodies: list[bytes] = pickle.loads(Path(args.bodies_file).read_bytes())
    elif args.body:
        bodies = [Path(args.body).read_bytes()] * args.n
    else:
        bodies = [b""] * args.n
    headers = dict(_split_header(h) for h in args.header)
    result = _run_coroutine(
        run_load(
            args.url,
            bodies,
            concurrency=args.concurrency,
            headers=headers,
            method=args.method,
            keep_bodies=args.keep_bodies,
            give_up_after=args.timeout,
            rate=args.rate,
        )
    )
    if args.result_file:
        Path(args.result_file).write_bytes(pickle.dumps(asdict(result)))
    print(result.summary())
    summary = {k: v for k, v in asdict(result).items() if k != "responses"}
    print(json.dumps(summary))
    return 0 if result.errors == 0 else 1


def _split_header(line: str) -> tuple[str, str]:
    name, sep, value = line.partition(":")
    if not sep:
        raise SystemExit(f"loadgen: bad header {line!r}, expected 'Name: value'")
    return name.strip(), value.strip()


if __name__ == "__main__":
    sys.exit(main())
