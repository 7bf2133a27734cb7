"""Scheduling throughput and latency of a real ``aonode serve``, against this machine's limits.

Every figure is printed next to a limit measured in the same run
(``bench/limits.py``): RSA-4096 and ed25519 signatures/s, fsync/s, and the
request rate of a bare granian ASGI echo server.  The node runs as its own
process (exactly what ``./scripts/serve`` starts).  Throughput is loaded by
``wrk`` (``bench/wrkload.py``: C, a fraction of the CPU of a Python client)
replaying pre-signed ANS-104 messages, each a distinct message, over 64
keep-alive connections; without ``wrk`` (or with ``--loadgen python``) by
``bench/loadgen.py`` in another process.  The bare echo is loaded by the same
generator with the same settings, so the ratio compares like with like.

Placement: ed25519 runs pin the node to core 0 and the load generator to
core 1, exactly as the echo limit is measured.  RSA runs leave the node free
to use both cores (its signing pool has two threads), compared against RSA
signatures/s on two threads.

Cores axis (issue 22): ed25519 local_confirmation over several processes
(``POST /{pid}~process@1.0/schedule``) with 1 and 2 workers, each beside the
bare echo served by as many granian workers.  ``--workers N`` is passed to
``aonode serve`` only when its ``--help`` lists it; until then the node row
of 2 workers reads "n/a" and only the echo is measured.  2-worker runs pin
nothing.

The cores axis runs twice: 8 processes at 64 connections, then 64 processes at
256 connections, each beside the bare echo at the same connections.  Each runs
1 worker, 2 workers, then 1 worker again: the scaling divides by the mean of
the two 1-worker runs (this VM's speed drifts within minutes).  For the same
reason the RSA runs sit between two measurements of the signing limit, and
their ratios use the mean of the two.  Each AO
process has one owner worker, so with few processes one worker can own most of
them and be the bottleneck; and with few connections too few requests are in
flight to cover the hop between workers.

Limits of a server as heavy as the node, in the same run:

- the least scheduler (``limits.floor_app``): parse, verify, chain, sign and
  answer, with no store, actor or bookkeeping, loaded like the 1-worker node:
  what any scheduler on this stack (granian, the node's codec, libsodium)
  reaches at best, beside the bare echo; and the least durable one, which also
  commits each assignment to the node's SQLite store before answering;
- the least RSA schedulers (``floor_app`` with an RSA-4096 wallet signing on one
  thread per core, loaded like the RSA node), without a store and with each
  assignment committed to the node's SQLite store before it is answered: what
  the RSA target (0.85 × the signing limit) leaves for everything else;
- the weighted echo (``limits.burn_app``): the echo burning the node's own CPU
  per message (read from its 1-worker run), with 1 and 2 workers: the scaling
  this machine gives a server that heavy with nothing shared between workers;
  and the same at the half-load rate, open loop: the p99 such a server shows;
- the fsync latency tail (``local_confirmation`` waits for a commit).

p99 at half load: wrk keeps a closed loop (wrk2, its open-loop fork, is not in
Debian), so the Python generator runs open loop (each request due at
t0 + i / rate, latency counted from when it was due) at 0.5 × the max rate wrk
measured, on its own core.

    python bench/schedule.py            # all scenarios (~4 min)
    python bench/schedule.py --quick    # the tracked subset, about 2 min

The last line is a JSON object with the tracked figures.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import limits  # noqa: E402
import loadgen  # noqa: E402
import wrkload  # noqa: E402
from aonode import wallet as wallet_mod  # noqa: E402
from aonode.codec import ans104  # noqa: E402
from aonode.codec.b64 import b64url_decode, b64url_encode  # noqa: E402

ANS = {"content-type": "application/ans104"}
CONCURRENCY = 64
CORES_PROCESSES = 8  # the cores axis spreads its load over this many processes
# ... and again wider, closer to a public node's load: more processes (the owners'
# shares even out) and more connections (enough requests in flight to cover the hop)
WIDE_PROCESSES, WIDE_CONNECTIONS = 64, 256
MODE_CORES = "local_confirmation"


@dataclass(frozen=True)
class Scenario:
    kind: str  # node wallet: rsa | ed25519
    mode: str  # aggressive | local_confirmation
    processes: int
    workers: int = 1

    @property
    def name(self) -> str:
        w = f" {self.workers}w" if self.workers != 1 else ""
        return f"{self.kind} {self.mode} {self.processes}p{w}"


@dataclass(frozen=True)
class Outcome:
    scenario: Scenario
    per_s: float
    p50_ms: float
    p99_ms: float
    count: int
    client_cpu: float = 0.0  # the load generator's CPU share while the clock ran
    half: loadgen.LoadResult | None = None  # open loop at 0.5 × per_s, when asked
    repeats: tuple[float, ...] = ()  # each run's rate, when per_s is their mean


@functools.cache
def node_supports_workers() -> bool:
    """Whether ``aonode serve`` takes ``--workers`` (older trees did not)."""
    out = subprocess.run(
        [sys.executable, "-m", "aonode.ops.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    return "--workers" in out.stdout


@contextlib.contextmanager
def node_process(
    kind: str, mode: str, cpu: int | None, workers: int = 1
) -> Iterator[tuple[str, str]]:
    """A real ``aonode serve`` with a fresh data dir and a wallet of ``kind``."""
    with tempfile.TemporaryDirectory(prefix="aonode-bench-") as tmp:
        w = wallet_mod.generate("rsa" if kind == "rsa" else "ed25519")
        wallet_mod.save(w, Path(tmp) / "wallet.json")
        port = limits._free_port()
        args = [
            sys.executable,
            "-m",
            "aonode.ops.cli",
            "serve",
            "--data-dir",
            tmp,
            "--port",
            str(port),
            "--mode",
            mode,
            # one signer floods on purpose: the public-node quotas are lifted
            *["--quota-messages", "off", "--quota-spawns", "off", "--quota-reads", "off"],
        ]
        if workers != 1 or node_supports_workers():  # serve's default is one per core
            args += ["--workers", str(workers)]
        preexec = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, preexec_fn=preexec)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.startswith("aonode listening on "):
                raise RuntimeError(f"node did not start: {line!r} (rc={proc.poll()})")
            url = line.split()[3]
            yield url, w.address
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def spawn(urls: str | Sequence[str], scheduler: str, user: wallet_mod.Wallet, n: int) -> list[str]:
    """``n`` processes naming ``scheduler``, posted round-robin to ``urls`` (one or many nodes)."""
    nodes = [urls] if isinstance(urls, str) else list(urls)
    pids = []
    with httpx.Client(timeout=60) as client:
        for i in range(n):
            item = ans104.sign(
                user,
                data=str(i).encode(),
                tags=[
                    ("Data-Protocol", "ao"),
                    ("Variant", "ao.N.1"),
                    ("Type", "Process"),
                    ("Scheduler", scheduler),
                ],
            )
            url = nodes[i % len(nodes)]
            r = client.post(f"{url}/~scheduler@1.0/schedule", content=item.raw, headers=ANS)
            r.raise_for_status()
            pids.append(item.id)
    return pids


def messages(user: wallet_mod.Wallet, pids: list[str], n: int) -> list[bytes]:
    targets = [b64url_decode(p) for p in pids]
    return [
        ans104.sign(
            user,
            data=b"x" * 64,
            target=targets[i % len(targets)],
            anchor=os.urandom(32),
            tags=[("Data-Protocol", "ao"), ("Type", "Message"), ("Action", "Bench")],
        ).raw
        for i in range(n)
    ]


def routed(user: wallet_mod.Wallet, pids: list[str], n: int) -> list[tuple[str, bytes]]:
    """``n`` fresh messages, each posted to its own process's ``/{pid}~process@1.0/schedule``."""
    return [
        (f"/{pids[i % len(pids)]}~process@1.0/schedule", body)
        for i, body in enumerate(messages(user, pids, n))
    ]


def _check(result: loadgen.LoadResult, what: str) -> None:
    if result.errors or set(result.statuses) != {200}:
        raise RuntimeError(f"{what}: errors={result.errors} statuses={result.statuses}")


def run(
    s: Scenario,
    user: wallet_mod.Wallet,
    seconds: float,
    *,
    use_wrk: bool,
    half: bool = False,
    connections: int = CONCURRENCY,
) -> Outcome:
    """One scenario on a fresh node: warm-up, the max rate, then (``half``) 0.5 × max open loop."""
    if s.kind == "ed25519":
        node_cpu, load_cpus = wrkload.placement(s.workers)
    else:
        node_cpu, load_cpus = None, None
    load_cpu = min(load_cpus) if load_cpus else None
    with node_process(s.kind, s.mode, node_cpu, s.workers) as (url, address):
        pids = spawn(url, address, user, s.processes)
        target = f"{url}/~scheduler@1.0/schedule"
        warm = loadgen.run_load_in_subprocess_sync(
            target,
            messages(user, pids, 1000 if s.kind == "ed25519" else 300),
            concurrency=CONCURRENCY,
            headers=ANS,
            cpu=load_cpu,
        )
        _check(warm, f"{s.name} warm-up")
        if use_wrk:
            result = wrkload.replay(
                url,
                lambda n: routed(user, pids, n),
                expected_per_s=warm.per_s,
                seconds=seconds,
                headers=ANS,
                cpus=load_cpus,
                connections=connections,
            )
        else:
            result = loadgen.run_load_in_subprocess_sync(
                target,
                messages(user, pids, max(2000, int(warm.per_s * seconds))),
                concurrency=CONCURRENCY,
                headers=ANS,
                cpu=load_cpu,
            )
        _check(result, s.name)
        slow = None
        if half:
            slow = loadgen.run_load_in_subprocess_sync(
                target,
                messages(user, pids, max(1000, int(result.per_s * 0.5 * seconds))),
                concurrency=CONCURRENCY,
                headers=ANS,
                cpu=load_cpu,
                rate=result.per_s * 0.5,
            )
            _check(slow, f"{s.name} at half load")
    cpu = result.client_cpu_s / result.seconds if result.seconds else 0.0
    return Outcome(s, result.per_s, result.p50_ms, result.p99_ms, result.count, cpu, slow)


def echo(workers: int, seconds: float, use_wrk: bool) -> loadgen.LoadResult:
    """The bare echo with ``workers`` granian workers and the node runs' load generator."""
    if use_wrk:
        return wrkload.echo_per_s(workers, seconds, CONCURRENCY)
    if workers != 1:
        raise ValueError("the Python load generator measures the 1-worker echo only")
    return limits.http_echo_per_s(CONCURRENCY, seconds=seconds)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="the tracked subset (about 2 min)")
    p.add_argument("--seconds", type=float, default=None, help="length of each measured run")
    p.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="wrk (installed from Debian when missing), python (bench/loadgen.py), "
        "auto: wrk when available",
    )
    args = p.parse_args(argv)
    seconds = args.seconds or (3.0 if args.quick else 4.0)
    use_wrk = args.loadgen != "python" and wrkload.available()
    if args.loadgen == "wrk" and not use_wrk:
        print("wrk is not installed and could not be (bootstrap_wrk needs root)", file=sys.stderr)
        return 2
    if args.loadgen == "auto" and not use_wrk:
        print("warning: no wrk; falling back to the Python load generator", file=sys.stderr)
    generator = "wrk" if use_wrk else "python"
    user = wallet_mod.generate("ed25519")

    busy = limits.background_busy()
    if busy > 0.05:
        print(f"warning: the machine is {busy:.0%} busy; figures will be low", file=sys.stderr)
    print("measuring limits …", file=sys.stderr)
    ed1 = limits.ed25519_sign_per_s(threads=1)
    with tempfile.TemporaryDirectory() as tmp:
        fsync = limits.fsync_per_s(tmp)
        fsync_lat = limits.fsync_latency_ms(tmp)
    worker_counts = (1, 2) if use_wrk else (1,)
    echoes = {w: echo(w, seconds, use_wrk) for w in worker_counts}
    floor = floor_limit(user, seconds) if use_wrk else {}

    if args.quick:
        scenarios = [
            Scenario("rsa", "local_confirmation", 1),
            Scenario("ed25519", "local_confirmation", 1),
            Scenario("ed25519", "aggressive", 1),
        ]
    else:
        scenarios = [
            Scenario(k, m, n)
            for k in ("rsa", "ed25519")
            for m in ("aggressive", "local_confirmation")
            for n in (1, 100)
        ]
    with_workers = node_supports_workers()
    cores = [
        Scenario("ed25519", "local_confirmation", CORES_PROCESSES, w)
        for w in worker_counts
        if w == 1 or with_workers
    ]
    # The RSA runs sit between two measurements of the signing limit (a shared VM's
    # speed drifts within minutes): their ratios use the mean, and both are printed.
    rsa_limits = [limits.rsa_sign_per_s(threads=2)]
    outcomes = []
    for s in [c for c in scenarios if c.kind == "rsa"]:
        print(f"running {s.name} …", file=sys.stderr)
        outcomes.append(run(s, user, seconds, use_wrk=use_wrk))
    rsa_floors = rsa_floor_limits(user, seconds) if use_wrk else {}
    rsa_limits.append(limits.rsa_sign_per_s(threads=2))
    # 1 worker runs again after 2 workers; the scaling divides by their mean
    again = cores[:1] if len(cores) > 1 else []
    for s in [c for c in scenarios if c.kind != "rsa"] + cores + again:
        half = s == Scenario("ed25519", "local_confirmation", 1)
        print(f"running {s.name}{' (then half load)' if half else ''} …", file=sys.stderr)
        outcomes.append(run(s, user, seconds, use_wrk=use_wrk, half=half))
    outcomes = _merge_repeats(outcomes)
    print("running the weighted echoes (a server of the node's weight) …", file=sys.stderr)
    bounds = weighted_limits(outcomes, echoes, seconds, use_wrk)
    wide = wide_cores(user, seconds) if use_wrk and with_workers else {}
    return report(
        outcomes,
        echoes,
        rsa_limits,
        ed1,
        fsync,
        generator,
        with_workers,
        fsync_lat,
        bounds,
        floor,
        wide,
        rsa_floors,
    )


@dataclass(frozen=True)
class Weighted:
    """Limits measured with the echo made as heavy as the node (``limits.burn_app``)."""

    burn_us: float  # CPU per request added to the echo: the node's 1-worker cost minus the echo's
    per_s: dict[int, float]  # its rate with 1 and 2 workers, same generator as the node
    half_burn_us: float
    half: loadgen.LoadResult | None  # open loop at the node's half-load rate, same placement


def _cost_us(per_s: float) -> float:
    return 1e6 / per_s if per_s > 0 else 0.0


def wide_cores(user: wallet_mod.Wallet, seconds: float) -> dict[int, tuple[float, float]]:
    """Workers → (node assignments/s, bare echo req/s), both at ``WIDE_CONNECTIONS``
    connections, the node's load spread over ``WIDE_PROCESSES`` processes."""
    runs: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    for w in (1, 2, 1):  # 1 worker again after 2: the scaling divides by their mean
        s = Scenario("ed25519", MODE_CORES, WIDE_PROCESSES, w)
        print(f"running {s.name} at {WIDE_CONNECTIONS} connections …", file=sys.stderr)
        node = run(s, user, seconds, use_wrk=True, connections=WIDE_CONNECTIONS)
        bare = wrkload.echo_per_s(w, seconds, WIDE_CONNECTIONS)
        runs[w].append((node.per_s, bare.per_s))
    return {
        w: (statistics.fmean(n for n, _ in r), statistics.fmean(b for _, b in r))
        for w, r in runs.items()
    }


# The least schedulers' two variants (``limits.floor_app``), as the report names them.
FLOORS = (("memory", "no store"), ("durable", "SQLite commit before the answer"))


def floors(
    kind: str,
    user: wallet_mod.Wallet,
    pids: list[str],
    seconds: float,
    expected_per_s: float,
    placement: tuple[int | None, set[int] | None] = (None, None),
) -> dict[str, loadgen.LoadResult]:
    """``limits.floor_app`` with a ``kind`` wallet (parse, verify, chain, sign, reply)
    under the node's load: the same generator, connections and kind of message, on
    ``placement`` (server core, load generator cores).  ``memory``: no store;
    ``durable``: each assignment committed to the node's SQLite store before its
    answer, as ``local_confirmation`` does (so every message is fresh)."""
    server_cpu, load_cpus = placement
    out: dict[str, loadgen.LoadResult] = {}
    for name, _ in FLOORS:
        target = f"floor:{kind}" + (":durable" if name == "durable" else "")
        print(f"running the least {kind} scheduler ({name}) …", file=sys.stderr)
        with limits.server_subprocess(target, cpu=server_cpu) as url:
            for secs in (1.0, seconds):
                result = wrkload.replay(
                    url,
                    lambda n: routed(user, pids, n),
                    expected_per_s=expected_per_s,
                    seconds=secs,
                    headers=ANS,
                    cpus=load_cpus,
                    connections=CONCURRENCY,
                )
                _check(result, target)
        out[name] = result
    return out


def floor_limit(user: wallet_mod.Wallet, seconds: float) -> dict[str, loadgen.LoadResult]:
    """The least ed25519 schedulers (:func:`floors`) placed and loaded like the
    1-worker node, over as many processes."""
    pids = [b64url_encode(os.urandom(32)) for _ in range(CORES_PROCESSES)]
    return floors("ed25519", user, pids, seconds, 4000, wrkload.placement(1))


def _merge_repeats(outcomes: list[Outcome]) -> list[Outcome]:
    """One outcome per scenario: a scenario run twice counts at the mean of its rates."""
    merged: dict[Scenario, Outcome] = {}
    for o in outcomes:
        first = merged.get(o.scenario)
        if first is None:
            merged[o.scenario] = o
        else:
            per_s = statistics.fmean((first.per_s, o.per_s))
            merged[o.scenario] = replace(first, per_s=per_s, repeats=(first.per_s, o.per_s))
    return list(merged.values())


def rsa_floor_limits(user: wallet_mod.Wallet, seconds: float) -> dict[str, float]:
    """The least RSA schedulers (:func:`floors`; an RSA-4096 wallet signing on one
    thread per core) loaded like the RSA node: unpinned, one process."""
    pid = [b64url_encode(os.urandom(32))]
    return {k: r.per_s for k, r in floors("rsa", user, pid, seconds, 450).items()}


def weighted_limits(
    outcomes: list[Outcome], echoes: dict[int, loadgen.LoadResult], seconds: float, use_wrk: bool
) -> Weighted:
    """The echo burning the node's own CPU per message, so that the scaling and the
    half-load p99 are each compared with what this machine gives a server that
    heavy with nothing shared between its workers (no store, no hand-off).

    The node's cost per message is read from its 1-worker runs, which are pinned
    to one core (``wrkload.placement``): 1 / rate is CPU per message.
    """
    echo1 = _cost_us(echoes[1].per_s)
    one = next(
        (o for o in outcomes if o.scenario == Scenario("ed25519", MODE_CORES, CORES_PROCESSES)),
        None,
    )
    burn = max(0.0, _cost_us(one.per_s) - echo1) if one else 0.0
    per_s: dict[int, float] = {}
    if use_wrk and one is not None:
        for w in echoes:
            per_s[w] = wrkload.echo_per_s(w, seconds, CONCURRENCY, target=f"burn:{burn:.0f}").per_s
    half_outcome = next((o for o in outcomes if o.half is not None), None)
    half, half_burn = None, 0.0
    if half_outcome is not None:
        half_burn = max(0.0, _cost_us(half_outcome.per_s) - echo1)
        server_cpu, load_cpus = wrkload.placement(1)
        rate = half_outcome.per_s * 0.5
        bodies = limits.sample_bodies(max(1000, int(rate * seconds)))
        headers = {"content-type": "application/json"}
        with limits.server_subprocess(f"burn:{half_burn:.0f}", cpu=server_cpu) as url:
            load_cpu = min(load_cpus) if load_cpus else None
            loadgen.run_load_in_subprocess_sync(  # warm-up, as the node had
                url, bodies[:500], concurrency=CONCURRENCY, headers=headers, cpu=load_cpu
            )
            half = loadgen.run_load_in_subprocess_sync(
                url, bodies, concurrency=CONCURRENCY, headers=headers, cpu=load_cpu, rate=rate
            )
        _check(half, "weighted echo at half load")
    return Weighted(burn, per_s, half_burn, half)


def report(
    outcomes: list[Outcome],
    echoes: dict[int, loadgen.LoadResult],
    rsa_limits: list[float],
    ed1: float,
    fsync: float,
    generator: str,
    with_workers: bool,
    fsync_lat: tuple[float, float],
    bounds: Weighted,
    floor: dict[str, loadgen.LoadResult],
    wide: dict[int, tuple[float, float]],
    rsa_floors: dict[str, float],
) -> int:
    echo1 = echoes[1]
    print()
    print(f"limits measured in this run (load generator: {generator}, c={CONCURRENCY})")
    rsa2 = statistics.fmean(rsa_limits)
    spread = ", ".join(f"{r:,.0f}" for r in rsa_limits)
    print(f"  RSA-4096 PSS signatures/s, 2 threads   {rsa2:>10,.0f}   (before and after: {spread})")
    print(f"  ed25519 signatures/s, 1 thread         {ed1:>10,.0f}")
    print(f"  4 KiB write+fsync/s                    {fsync:>10,.0f}")
    lat = f"p50 {fsync_lat[0]:.2f} ms  p99 {fsync_lat[1]:.2f} ms"
    print(f"  4 KiB write+fsync latency              {lat}")
    for w, e in echoes.items():
        print(
            f"  bare granian ASGI echo req/s, {w} worker{'s' if w > 1 else ' '} {e.per_s:>9,.0f}"
            f"   p50 {e.p50_ms:.2f} ms  p99 {e.p99_ms:.2f} ms"
            f"  (load generator cpu {e.client_cpu_s / e.seconds:.0%})"
        )
    for name, what in FLOORS:
        if name in floor:
            per_s = floor[name].per_s
            print(
                f"  least scheduler (parse, verify, chain, sign; {what})"
                f" {per_s:>8,.0f} req/s = {per_s / echo1.per_s:.2f} × echo, 1w"
            )
    for name, what in FLOORS:
        if name in rsa_floors:
            print(
                f"  least RSA scheduler ({what}) {rsa_floors[name]:>8,.0f}"
                f" req/s = {rsa_floors[name] / rsa2:.2f} × RSA sign limit"
            )
    print()
    print(f"{'scenario':<36}{'assign/s':>10}{'p50 ms':>9}{'p99 ms':>9}  gen cpu   vs limit")
    for o in outcomes:
        s = o.scenario
        if s.kind == "rsa":
            ratio = f"{o.per_s / rsa2:.2f} × RSA sign limit (2 threads; target 0.85)"
        else:
            target = "  (target 0.30)" if s.mode == "local_confirmation" else ""
            ratio = f"{o.per_s / echoes[s.workers].per_s:.2f} × bare echo, {s.workers}w{target}"
        print(
            f"{s.name:<36}{o.per_s:>10,.0f}{o.p50_ms:>9.2f}{o.p99_ms:>9.2f}"
            f"{o.client_cpu:>8.0%}   {ratio}"
        )
    half = next(o.half for o in outcomes if o.half is not None)
    print(
        f"{'ed25519 local 1p, half load':<36}{half.per_s:>10,.0f}{half.p50_ms:>9.2f}"
        f"{half.p99_ms:>9.2f}{'':>8}   open loop (Python) at 0.5 × max; p99 target ≤ 20 ms"
    )
    if bounds.half is not None:
        h = bounds.half
        print(
            f"{'  limit: echo as heavy, same load':<36}{h.per_s:>10,.0f}{h.p50_ms:>9.2f}"
            f"{h.p99_ms:>9.2f}{'':>8}   echo + {bounds.half_burn_us:,.0f} µs CPU a request,"
            " same rate, generator and core"
        )
    print()
    print("cores axis (issue 22): ed25519 local_confirmation, ", end="")
    print(f"{CORES_PROCESSES} processes, /{{pid}}~process@1.0/schedule")
    axis: dict[str, dict[str, float | None]] = {}
    for w, e in echoes.items():
        cell = next(
            (
                c
                for c in outcomes
                if c.scenario.processes == CORES_PROCESSES and c.scenario.workers == w
            ),
            None,
        )
        if cell is None:
            axis[str(w)] = {"echo_per_s": round(e.per_s, 1), "assign_per_s": None, "ratio": None}
            node = "     n/a  (aonode serve has no --workers yet)"
        else:
            share = cell.per_s / e.per_s
            axis[str(w)] = {
                "echo_per_s": round(e.per_s, 1),
                "assign_per_s": round(cell.per_s, 1),
                "ratio": round(share, 3),
            }
            node = f"{cell.per_s:>8,.0f}/s  {share:.2f} × echo (target 0.30)"
            if cell.repeats:
                node += "  (mean of " + " and ".join(f"{r:,.0f}" for r in cell.repeats) + ")"
        print(f"  {w} worker{'s' if w > 1 else ' '}  echo {e.per_s:>8,.0f}/s   node {node}")

    one, two = axis.get("1", {}), axis.get("2", {})
    scaling: dict[str, float | None] = {"node": None, "echo": None}
    if one.get("echo_per_s") and two.get("echo_per_s"):
        # The echo's own 2w/1w is this machine's ceiling for the same generator:
        # the cores the node would scale onto are shared with the generator.
        scaling["echo"] = round(float(two["echo_per_s"] or 0) / float(one["echo_per_s"] or 1), 3)
        if one.get("assign_per_s") and two.get("assign_per_s"):
            node2, node1 = float(two["assign_per_s"] or 0), float(one["assign_per_s"] or 1)
            scaling["node"] = round(node2 / node1, 3)
        node_scaling = "n/a" if scaling["node"] is None else f"{scaling['node']:.2f} ×"
        print(
            f"  scaling 2w/1w: node {node_scaling} (target 1.6)   "
            f"bare echo {scaling['echo']:.2f} × (same generator)"
        )
        if 1 in bounds.per_s and 2 in bounds.per_s:
            w1, w2 = bounds.per_s[1], bounds.per_s[2]
            scaling["weighted_echo"] = round(w2 / w1, 3)
            print(
                f"  limit: echo + {bounds.burn_us:,.0f} µs CPU a request (the node's weight,"
                f" nothing shared): 1w {w1:,.0f}/s, 2w {w2:,.0f}/s = {w2 / w1:.2f} ×"
            )

    if 1 in wide and 2 in wide:
        print(f"cores axis, wider load: {WIDE_PROCESSES} processes, {WIDE_CONNECTIONS} connections")
        for w, (node_per_s, echo_per_s) in wide.items():
            print(
                f"  {w} worker{'s' if w > 1 else ' '}  echo {echo_per_s:>8,.0f}/s   node"
                f" {node_per_s:>8,.0f}/s  {node_per_s / echo_per_s:.2f} × echo"
            )
        scaling["node_wide"] = round(wide[2][0] / wide[1][0], 3)
        scaling["echo_wide"] = round(wide[2][1] / wide[1][1], 3)
        print(
            f"  scaling 2w/1w: node {scaling['node_wide']:.2f} × (target 1.6)"
            f"   bare echo {scaling['echo_wide']:.2f} ×"
        )

    def find(kind: str, mode: str) -> float:
        return next(
            o.per_s
            for o in outcomes
            if o.scenario.kind == kind and o.scenario.mode == mode and o.scenario.processes == 1
        )

    ratios = [r for a in axis.values() if (r := a["ratio"]) is not None]
    summary: dict[str, object] = {
        "loadgen": generator,
        "node_workers_flag": with_workers,
        "rsa_local_per_s": round(find("rsa", "local_confirmation"), 1),
        "rsa_sign_limit_per_s": round(rsa2, 1),
        "rsa_sign_limits_per_s": [round(r, 1) for r in rsa_limits],
        "ed25519_local_per_s": round(find("ed25519", "local_confirmation"), 1),
        "ed25519_aggressive_per_s": round(find("ed25519", "aggressive"), 1),
        "http_echo_per_s": round(echo1.per_s, 1),
        "fsync_per_s": round(fsync, 1),
        "p50_ms": round(half.p50_ms, 3),
        "p99_ms": round(half.p99_ms, 3),
        "p99_limit_ms": round(bounds.half.p99_ms, 3) if bounds.half else None,
        "fsync_p99_ms": round(fsync_lat[1], 3),
        "floor_per_s": {k: round(v.per_s, 1) for k, v in floor.items()},
        "floor_ratio": {k: round(v.per_s / echo1.per_s, 3) for k, v in floor.items()},
        "rsa_ratio": round(find("rsa", "local_confirmation") / rsa2, 3),
        "rsa_floor_ratio": {k: round(v / rsa2, 3) for k, v in rsa_floors.items()},
        "ed25519_ratio": round(find("ed25519", "local_confirmation") / echo1.per_s, 3),
        "cores": axis,
        "ed25519_ratio_best_workers": max(ratios) if ratios else None,
        "scaling_2w_over_1w": scaling,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
