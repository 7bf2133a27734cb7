"""Raw limits of this machine, measured in the same run as the scheduler benchmark.

A scheduler figure means little on its own: "300 assignments/s" is excellent
when RSA-4096 signing tops out at 375/s and poor when it tops out at 3,000/s.
So ``bench/schedule.py`` reports each result as a ratio to a limit measured
here, minutes apart on the same box, rather than to numbers copied from
another day (``research/perf.md``).  Each function runs for a bounded time
(about 2–3 s) and returns a number, or a ``LoadResult`` for HTTP.

HTTP is measured with both ends in separate processes: the granian server in
one child, the load generator in another, the caller in neither.  By default
they are pinned to different cores (server on 0, load generator on 1), as in
``perf.md``, which keeps runs comparable and stops the two from fighting
over one core's cache.

    python bench/limits.py            # table, then one JSON line
    python bench/limits.py --serve echo --port 8123   # the echo server alone
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

try:  # imported as bench.limits (namespace package) ...
    from bench import loadgen
except ImportError:  # ... or run as a script, with bench/ first on sys.path
    import loadgen  # type: ignore[no-redef]

LoadResult = loadgen.LoadResult
HERE = Path(__file__).resolve()
SERVER_CPU, LOADGEN_CPU = 0, 1


# -- CPU: signatures -------------------------------------------------------------------


def _parallel_rate(op: Callable[[], object], threads: int, seconds: float) -> float:
    """Operations per second of ``op`` run back to back on ``threads`` threads at once.

    Only meaningful for ops that release the GIL (OpenSSL signing does); a
    GIL-bound op shows no gain from threads, which is itself worth knowing.
    """
    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    stop_at = [0.0]

    def worker(k: int) -> None:
        start.wait()
        n = 0
        deadline = stop_at[0]
        while time.perf_counter() < deadline:
            op()
            n += 1
        counts[k] = n

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    t0 = time.perf_counter()
    stop_at[0] = t0 + seconds
    start.wait()
    for t in pool:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def rsa_sign_per_s(threads: int = 2, seconds: float = 2.5) -> float:
    """RSA-4096 PSS-SHA256 signatures of 32-byte messages per second (an Arweave wallet)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    message = os.urandom(32)
    return _parallel_rate(lambda: key.sign(message, pss, hashes.SHA256()), threads, seconds)


def ed25519_sign_per_s(threads: int = 1, seconds: float = 2.0) -> float:
    """ed25519 signatures of 32-byte messages per second."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    message = os.urandom(32)
    return _parallel_rate(lambda: key.sign(message), threads, seconds)


# -- disk ------------------------------------------------------------------------------


def fsync_per_s(dir: str | os.PathLike[str] = ".", seconds: float = 2.0) -> float:
    """4 KiB write + fsync per second in ``dir``: the cost of one durable commit.

    Writes cycle over a 1 MiB region so that, after the first pass, the file
    size (metadata) no longer changes, as with a reused WAL.
    """
    block = os.urandom(4096)
    with tempfile.NamedTemporaryFile(dir=dir, prefix="fsync-probe-") as f:
        fd = f.fileno()
        n = 0
        t0 = time.perf_counter()
        deadline = t0 + seconds
        while time.perf_counter() < deadline:
            os.pwrite(fd, block, (n % 256) * 4096)
            os.fsync(fd)
            n += 1
        return n / (time.perf_counter() - t0)


def fsync_latency_ms(
    dir: str | os.PathLike[str] = ".", seconds: float = 2.0
) -> tuple[float, float]:
    """(p50, p99) milliseconds of one 4 KiB write + fsync in ``dir``, back to back.

    A ``local_confirmation`` reply waits for the commit that covers it, so no
    reply's latency can beat the fsync's own tail on this disk.
    """
    block = os.urandom(4096)
    times: list[float] = []
    with tempfile.NamedTemporaryFile(dir=dir, prefix="fsync-probe-") as f:
        fd = f.fileno()
        deadline = time.perf_counter() + seconds
        while (t0 := time.perf_counter()) < deadline:
            os.pwrite(fd, block, (len(times) % 256) * 4096)
            os.fsync(fd)
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))]


# -- HTTP ------------------------------------------------------------------------------


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The cheapest honest ASGI endpoint: read the whole body, parse it, answer small JSON."""
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = await _read_body(receive)
    try:
        keys = len(orjson.loads(body)) if body else 0
        status, out = 200, orjson.dumps({"ok": True, "bytes": len(body), "keys": keys})
    except orjson.JSONDecodeError:
        status, out = 400, b'{"error":"bad json"}'
    await _answer(send, status, out)


async def _read_body(receive: Any) -> bytes:
    body = b""
    more = True
    while more:
        event = await receive()
        body += event.get("body", b"")
        more = event.get("more_body", False)
    return body


async def _answer(send: Any, status: int, out: bytes) -> None:
    """A JSON response of ``out`` with ``status``."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(out)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": out})


def burn_app(cpu_us: float) -> Any:
    """The echo, plus ``cpu_us`` of CPU spent in Python (holding the GIL) per request.

    A server as heavy as the node but with nothing shared between its workers
    (no store, no hand-off): served by N workers on one port, its rate is what
    this machine gives N workers of that weight, the same generator loading it.
    """
    spend = int(cpu_us * 1000)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            until = time.thread_time_ns() + spend
            while time.thread_time_ns() < until:
                pass
        await echo_app(scope, receive, send)

    return app


def floor_app(kind: str = "ed25519", durable: bool = False) -> Any:
    """The least any scheduler on this stack must do per message, and nothing more.

    Read the body, parse the ANS-104 item, check its signature, extend its
    process's hash chain, sign the assignment's 13 tags with a wallet of
    ``kind``, answer JSON: the node's own codec and crypto, with no ordering
    actor, no dedupe, no metrics, and (unless ``durable``) no store.  What the
    node does beyond this is the price of its bookkeeping (and of durability);
    if this alone is below a target ratio, no Python node on this stack can
    reach it.  An ``rsa`` wallet signs on a pool of one thread per core, as the
    node does (the event loop keeps parsing meanwhile); ed25519 signs inline.

    ``durable``: each assignment is also appended, with its message, to the
    node's own SQLite store (a temporary file; one group-committed ``fsync``'d
    transaction per batch, in slot order per process) before it is answered,
    as ``local_confirmation`` requires: the least durable scheduler.
    """
    import atexit
    import shutil
    import tempfile
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    from aonode import wallet as wallet_mod
    from aonode.codec import ans104
    from aonode.codec.b64 import b64url_encode
    from aonode.message import Message
    from aonode.scheduler.assignment import Assignment, Header, commit
    from aonode.scheduler.hashchain import next_link
    from aonode.store.sqlite import SQLiteStore

    node = (wallet_mod.generate(kind),)
    chains: dict[str, tuple[bytes, int, asyncio.Future[None] | None]] = {}
    pool = ThreadPoolExecutor(os.cpu_count() or 1) if kind == "rsa" else None
    store: dict[str, Any] = {}

    def assign(header: Header, body: Message) -> Assignment:
        return Assignment(header, commit(header, node), body)  # the node's own signing

    async def opened() -> SQLiteStore:
        if "open" not in store:  # the first request opens it; the rest wait for it
            tmp = tempfile.mkdtemp(prefix="aonode-floor-")
            atexit.register(shutil.rmtree, tmp, True)
            db = SQLiteStore(Path(tmp) / "floor.sqlite3")
            store["db"], store["open"] = db, asyncio.ensure_future(db.open())
        await store["open"]
        db: SQLiteStore = store["db"]
        return db

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await echo_app(scope, receive, send)
            return
        item = ans104.parse(await _read_body(receive))
        if not item.verify():
            await _answer(send, 400, b'{"error":"bad signature"}')
            return
        loop = asyncio.get_running_loop()
        process = b64url_encode(item.target) if item.target else ""
        chain, slot, previous = chains.get(process, (b"", -1, None))
        chain, slot = next_link(chain, item.id_bytes), slot + 1
        queued = loop.create_future() if durable else None
        chains[process] = (chain, slot, queued)
        now = time.time_ns() // 1_000_000
        header = Header(
            process, slot, 1, "h" * 64, now // 1000, now, b64url_encode(chain), "/schedule", item.id
        )
        body = Message.from_item(item)
        if pool is None:
            assignment = assign(header, body)
        else:
            assignment = await loop.run_in_executor(pool, assign, header, body)
        if durable:
            db = await opened()
            if previous is not None:  # appends go in slot order, as the node's committer does
                await previous
            appended = db.submit_append(assignment.record(), body.record())
            assert queued is not None
            queued.set_result(None)
            await appended
        out = orjson.dumps({"id": assignment.id, "slot": slot, "timestamp": now})
        await _answer(send, 200, out)

    return app


def sample_bodies(n: int, size: int = 1230) -> list[bytes]:
    """Distinct JSON bodies of about ``size`` bytes, shaped like a signed AO message."""
    base = {
        "id": "",
        "owner": "o" * 683,  # a 4096-bit RSA modulus, base64url
        "target": "t" * 43,
        "anchor": "",
        "tags": [
            {"name": "Data-Protocol", "value": "ao"},
            {"name": "Variant", "value": "ao.TN.1"},
            {"name": "Type", "value": "Message"},
            {"name": "Action", "value": "Eval"},
        ],
        "data": "",
    }
    pad = size - len(orjson.dumps(base)) - 43 - 32
    bodies = []
    for i in range(n):
        base["id"] = f"{i:043d}"
        base["anchor"] = f"{i:032d}"
        base["data"] = "x" * max(pad, 0)
        bodies.append(orjson.dumps(base))
    return bodies


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _pinning() -> tuple[int | None, int | None]:
    usable = os.sched_getaffinity(0)
    if {SERVER_CPU, LOADGEN_CPU} <= usable:
        return SERVER_CPU, LOADGEN_CPU
    return None, None


@contextlib.contextmanager
def server_subprocess(
    target: str = "echo", *, cpu: int | None = None, trivial: bool = False, port: int = 0
) -> Iterator[str]:
    """Run an ASGI app (``module:attr``, ``echo`` or ``burn:<µs>``) on embedded granian in a child.

    Yields the base URL once the server accepts connections.  ``trivial``
    runs loadgen's minimal asyncio server instead, to find the load
    generator's own ceiling.  A given ``port`` may be shared: granian binds
    with SO_REUSEPORT, so several children on one port are several workers.
    """
    port = port or _free_port()
    if trivial:
        args = [sys.executable, str(HERE.with_name("loadgen.py")), "--serve-trivial", str(port)]
    else:
        args = [sys.executable, str(HERE), "--serve", target, "--port", str(port)]
    if cpu is not None:
        args += ["--cpu", str(cpu)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the child says so once it accepts connections
        if not line:
            raise RuntimeError(f"server child exited with {proc.wait()} before it was ready")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def http_echo_per_s(
    concurrency: int = 64,
    n: int | None = None,
    *,
    seconds: float = 2.5,
    pin: bool = True,
) -> loadgen.LoadResult:
    """Bare granian ASGI echo over HTTP/1.1 keep-alive: the ceiling of any ASGI endpoint.

    A warm-up run sizes ``n`` to last about ``seconds`` unless ``n`` is given.
    Responses are checked: a run with errors or non-200s raises rather than
    report a rate that is not one.
    """
    server_cpu, loadgen_cpu = _pinning() if pin else (None, None)
    headers = {"content-type": "application/json"}
    with server_subprocess("echo", cpu=server_cpu) as url:
        warm = loadgen.run_load_in_subprocess_sync(
            url, sample_bodies(3000), concurrency=concurrency, headers=headers, cpu=loadgen_cpu
        )
        _check(warm, "echo warm-up")
        if n is None:
            n = max(5000, int(warm.per_s * seconds))
        result = loadgen.run_load_in_subprocess_sync(
            url, sample_bodies(n), concurrency=concurrency, headers=headers, cpu=loadgen_cpu
        )
    _check(result, "echo")
    return result


def loadgen_ceiling(concurrency: int = 64, n: int = 200_000) -> loadgen.LoadResult:
    """The load generator against loadgen's trivial server, each on its own core.

    ``client_cpu_s / count`` is the generator's CPU cost per request; if the
    client ran near 100% CPU, ``per_s`` is its ceiling on one core.
    """
    server_cpu, loadgen_cpu = _pinning()
    body = sample_bodies(1)[0]
    with server_subprocess(cpu=server_cpu, trivial=True) as url:
        result = loadgen.run_load_in_subprocess_sync(
            url, [body] * n, concurrency=concurrency, headers={}, cpu=loadgen_cpu
        )
    _check(result, "trivial server")
    return result


def _check(result: loadgen.LoadResult, what: str) -> None:
    if result.errors or set(result.statuses) != {200}:
        raise RuntimeError(f"{what}: {result.errors} errors, statuses {result.statuses}")


# -- the server child ------------------------------------------------------------------


def _load_target(target: str) -> Any:
    if target == "echo":
        return echo_app
    if target == "floor" or target.startswith("floor:"):  # floor[:ed25519|rsa[:durable]]
        _, kind, durable = (target + "::").split(":")[:3]
        return floor_app(kind or "ed25519", durable == "durable")
    if target.startswith("burn:"):
        return burn_app(float(target.removeprefix("burn:")))
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr or "app")


async def _serve(target: str, port: int) -> None:
    from granian.constants import Interfaces
    from granian.server.embed import Server

    server = Server(
        _load_target(target),
        address="127.0.0.1",
        port=port,
        interface=Interfaces.ASGI,
        log_enabled=False,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stop)
    serving = asyncio.ensure_future(server.serve())
    # granian binds on a Rust thread and has no "listening" hook in embed mode,
    # so the only proof of readiness is a connection that succeeds.
    deadline = time.monotonic() + 10
    while True:
        if serving.done():
            serving.result()
            raise RuntimeError("granian stopped before it accepted a connection")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.01)
            continue
        writer.close()
        break
    print("ready", flush=True)
    await serving


# -- CLI -------------------------------------------------------------------------------


def background_busy(seconds: float = 0.5) -> float:
    """Fraction of all CPUs busy while this process sleeps: other load skews every limit.

    Read from ``/proc/stat``; 0.0 where that is unavailable.
    """

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields), idle

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except OSError:
        return 0.0
    total = total1 - total0
    return 0.0 if total <= 0 else 1 - (idle1 - idle0) / total


def measure_all(fsync_dir: str = ".") -> dict[str, float]:
    busy_before = background_busy()
    rsa1 = rsa_sign_per_s(threads=1)
    rsa2 = rsa_sign_per_s(threads=2)
    ed1 = ed25519_sign_per_s(threads=1)
    ed2 = ed25519_sign_per_s(threads=2)
    fs = fsync_per_s(fsync_dir)
    echo = http_echo_per_s(pin=True)
    echo_free = http_echo_per_s(pin=False)
    ceiling = loadgen_ceiling()
    busy_after = background_busy()
    return {
        "background_cpu_busy": max(busy_before, busy_after),
        "rsa4096_sign_per_s_1t": rsa1,
        "rsa4096_sign_per_s_2t": rsa2,
        "ed25519_sign_per_s_1t": ed1,
        "ed25519_sign_per_s_2t": ed2,
        "fsync_4k_per_s": fs,
        "http_echo_per_s": echo.per_s,
        "http_echo_p50_ms": echo.p50_ms,
        "http_echo_p99_ms": echo.p99_ms,
        "http_echo_loadgen_cpu": echo.client_cpu_s / echo.seconds,
        "http_echo_unpinned_per_s": echo_free.per_s,
        "http_echo_unpinned_p50_ms": echo_free.p50_ms,
        "http_echo_unpinned_p99_ms": echo_free.p99_ms,
        "loadgen_ceiling_per_s": ceiling.per_s,
        "loadgen_cpu_us_per_req": ceiling.client_cpu_s / ceiling.count * 1e6,
        "loadgen_ceiling_cpu": ceiling.client_cpu_s / ceiling.seconds,
    }


_ROWS = [
    ("other load on the box (idle probe)", "{background_cpu_busy:.0%} busy"),
    ("RSA-4096 PSS sign, 1 thread", "{rsa4096_sign_per_s_1t:,.0f}/s"),
    ("RSA-4096 PSS sign, 2 threads", "{rsa4096_sign_per_s_2t:,.0f}/s"),
    ("ed25519 sign, 1 thread", "{ed25519_sign_per_s_1t:,.0f}/s"),
    ("ed25519 sign, 2 threads", "{ed25519_sign_per_s_2t:,.0f}/s"),
    ("4 KiB write + fsync", "{fsync_4k_per_s:,.0f}/s"),
    (
        "granian bare ASGI echo, c=64, pinned",
        "{http_echo_per_s:,.0f}/s  p50 {http_echo_p50_ms:.1f} ms  p99 {http_echo_p99_ms:.1f} ms"
        "  (loadgen cpu {http_echo_loadgen_cpu:.0%})",
    ),
    (
        "granian bare ASGI echo, c=64, unpinned",
        "{http_echo_unpinned_per_s:,.0f}/s  p50 {http_echo_unpinned_p50_ms:.1f} ms"
        "  p99 {http_echo_unpinned_p99_ms:.1f} ms",
    ),
    (
        "loadgen ceiling (trivial server)",
        "{loadgen_ceiling_per_s:,.0f}/s  ({loadgen_cpu_us_per_req:.1f} µs cpu/req,"
        " client cpu {loadgen_ceiling_cpu:.0%})",
    ),
]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="limits", description=__doc__.split("\n\n")[0])
    p.add_argument("--fsync-dir", default=".", help="where to probe fsync (default: cwd)")
    p.add_argument("--serve", metavar="TARGET", help="child mode: serve 'echo' or module:attr")
    p.add_argument("--port", type=int, default=8123)
    p.add_argument("--cpu", type=int, help="child mode: pin to this CPU")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if args.serve:
        if args.cpu is not None:
            os.sched_setaffinity(0, {args.cpu})
        loadgen._run_coroutine(_serve(args.serve, args.port))
        return 0
    results = measure_all(args.fsync_dir)
    width = max(len(name) for name, _ in _ROWS)
    print(f"{'limit':<{width}}  result")
    print(f"{'-' * width}  {'-' * 40}")
    for name, fmt in _ROWS:
        print(f"{name:<{width}}  {fmt.format(**results)}")
    if results["background_cpu_busy"] > 0.05:
        print(
            f"warning: other processes kept {results['background_cpu_busy']:.0%} of the CPUs"
            " busy; these limits are low",
            file=sys.stderr,
        )
    print(json.dumps({k: round(v, 4) for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
