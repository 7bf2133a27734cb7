"""Load from ``wrk`` replaying pre-built requests: a generator that leaves the cores to the server.

The Python generator (``bench/loadgen.py``) costs ~8 µs of CPU per request; on
a 2-core box that is a real share of what it measures once the server runs on
both cores.  ``wrk`` costs a fraction of that.  Requests are built by Python
before the clock starts (signed ANS-104 messages, each a distinct message) and
replayed by ``bench/wrk_replay.lua``, each at most once; a run that runs out of
requests is repeated with more rather than re-posting a message (a duplicate
is cheap for the node and would flatter it).

``wrk`` comes from Debian (``scripts/bootstrap.sh``'s ``bootstrap_wrk``);
when it is missing and cannot be installed, ``available()`` is false and the
benchmarks fall back to ``loadgen.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

try:  # imported as bench.wrkload (namespace package) ...
    from bench import limits, loadgen
except ImportError:  # ... or run as a script, with bench/ first on sys.path
    import limits  # type: ignore[no-redef]
    import loadgen  # type: ignore[no-redef]

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "wrk_replay.lua"
BOOTSTRAP = HERE.parent / "scripts" / "bootstrap.sh"


def available(install: bool = True) -> bool:
    """Whether ``wrk`` is on PATH, installing it from Debian first when ``install`` and root."""
    if shutil.which("wrk"):
        return True
    if install and os.geteuid() == 0 and BOOTSTRAP.exists():
        cmd = f'source "{BOOTSTRAP}"; bootstrap_wrk'
        subprocess.run(["bash", "-c", cmd], check=False, stdout=subprocess.DEVNULL)
    return shutil.which("wrk") is not None


def write_requests(
    path: Path, host: str, targets: Sequence[tuple[str, bytes]], headers: Mapping[str, str]
) -> None:
    """Write ``(path, body)`` pairs as complete POST requests in wrk_replay.lua's format."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode("latin-1")
    with path.open("wb") as f:
        for target, body in targets:
            req = b"POST %s HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %d\r\n\r\n%s" % (
                target.encode(),
                host.encode(),
                head,
                len(body),
                body,
            )
            f.write(b"%d\n" % len(req))
            f.write(req)


def run(
    url: str,
    requests_file: Path,
    *,
    seconds: float,
    connections: int = 64,
    threads: int = 1,
    cpus: set[int] | None = None,
    cycle: bool = False,
) -> tuple[loadgen.LoadResult, bool]:
    """One wrk run; returns the result and whether some thread ran out of requests.

    ``count`` is responses completed within ``seconds``; ``errors`` the socket
    errors and timeouts; ``statuses`` holds 200 for the 2xx/3xx responses and
    0 for the others (wrk does not tell which).  ``client_cpu_s`` is wrk's own
    CPU time (user + system).
    """
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    args += ["--timeout", "10s", "-s", str(SCRIPT), url, "--", str(requests_file), str(threads)]
    if cycle:
        args.append("cycle")
    preexec: Callable[[], None] | None = None
    if cpus is not None:
        pinned = set(cpus)
        preexec = lambda: os.sched_setaffinity(0, pinned)  # noqa: E731
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(args, capture_output=True, text=True, preexec_fn=preexec, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (rc={out.returncode}): {out.stderr or out.stdout}")
    r = json.loads(line.removeprefix("WRKJSON "))
    secs = r["duration_us"] / 1e6
    errors = r["connect"] + r["read"] + r["write"] + r["timeout"]
    ok = r["requests"] - r["status"]
    statuses = {200: ok} | ({0: r["status"]} if r["status"] else {})
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = loadgen.LoadResult(
        count=r["requests"],
        errors=errors,
        statuses=statuses,
        seconds=secs,
        per_s=r["requests"] / secs if secs > 0 else 0.0,
        p50_ms=r["p50_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        client_cpu_s=cpu,
    )
    return result, bool(r["exhausted"])


def replay(
    url: str,
    make: Callable[[int], Sequence[tuple[str, bytes]]],
    *,
    expected_per_s: float,
    seconds: float,
    headers: Mapping[str, str],
    cpus: set[int] | None = None,
    connections: int = 64,
    threads: int = 1,
    tries: int = 3,
) -> loadgen.LoadResult:
    """Replay ``make(n)`` fresh requests for ``seconds``; ``n`` covers 2 × the expected rate.

    A run that exhausts its requests is thrown away and repeated with twice
    as many (fresh ones: the node has already seen the others).
    """
    host = url.split("://", 1)[1].split("/", 1)[0]
    n = max(2000, int(expected_per_s * max(1, round(seconds)) * 2) + connections)
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        path = Path(tmp) / "requests.bin"
        for _ in range(tries):
            write_requests(path, host, make(n), headers)
            result, exhausted = run(
                url, path, seconds=seconds, connections=connections, threads=threads, cpus=cpus
            )
            if not exhausted:
                return result
            print(f"wrk: {n} requests ran out; again with {2 * n}", file=sys.stderr)
            n *= 2
    raise RuntimeError(f"wrk ran out of requests {tries} times (last: {n // 2})")


def cycle(
    url: str,
    targets: Sequence[tuple[str, bytes]],
    *,
    seconds: float,
    headers: Mapping[str, str],
    cpus: set[int] | None = None,
    connections: int = 64,
    threads: int = 1,
) -> loadgen.LoadResult:
    """Replay ``targets`` round and round (stateless servers only: the bare echo)."""
    host = url.split("://", 1)[1].split("/", 1)[0]
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        path = Path(tmp) / "requests.bin"
        write_requests(path, host, targets, headers)
        result, _ = run(
            url,
            path,
            seconds=seconds,
            connections=connections,
            threads=threads,
            cpus=cpus,
            cycle=True,
        )
        return result


def placement(workers: int) -> tuple[int | None, set[int] | None]:
    """Where server and wrk run: 1 worker on core 0 with wrk on core 1, else all unpinned."""
    server_cpu, load_cpu = limits._pinning()
    if workers == 1 and server_cpu is not None and load_cpu is not None:
        return server_cpu, {load_cpu}
    return None, None


def echo_per_s(
    workers: int, seconds: float, connections: int = 64, target: str = "echo"
) -> loadgen.LoadResult:
    """The bare granian ASGI echo with ``workers`` processes on one port, loaded by wrk.

    Each worker is ``limits.py --serve echo`` (embedded granian, the node's
    stack), sharing the port through SO_REUSEPORT.  A 1-second run warms it
    up; the measured run follows with the same wrk settings as the node's.
    """
    server_cpu, load_cpus = placement(workers)
    port = limits._free_port()
    bodies = limits.sample_bodies(2000)
    headers = {"content-type": "application/json"}
    with contextlib.ExitStack() as stack:
        for _ in range(workers):
            url = stack.enter_context(limits.server_subprocess(target, cpu=server_cpu, port=port))
        targets = [("/", b) for b in bodies]
        for secs in (1.0, seconds):
            result = cycle(
                url,
                targets,
                seconds=secs,
                headers=headers,
                cpus=load_cpus,
                connections=connections,
            )
            limits._check(result, f"echo, {workers} worker(s), wrk")
    return result
