"""Scheduling throughput and latency of a real ``aonode serve``, against this machine's limits.

Every figure is printed next to a limit measured in the same run
(``bench/limits.py``): RSA-4096 and ed25519 signatures/s, fsync/s, and the
request rate of a bare granian ASGI echo server.  The node runs as its own
process (exactly what ``./scripts/serve`` starts); the load comes from
``bench/loadgen.py`` in another process, 64 keep-alive connections, each
request a distinct signed ANS-104 message.

Placement: ed25519 runs pin the node to core 0 and the load generator to
core 1, exactly as the echo limit is measured, so the ratio compares like with
like.  RSA runs leave the node free to use both cores (its signing pool has two
threads), compared against RSA signatures/s on two threads.

    python bench/schedule.py            # all scenarios (~4 min)
    python bench/schedule.py --quick    # the tracked subset, under 3 min

The last line is a JSON object with the tracked figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import limits  # noqa: E402
import loadgen  # noqa: E402
from aonode import wallet as wallet_mod  # noqa: E402
from aonode.codec import ans104  # noqa: E402
from aonode.codec.b64 import b64url_decode  # noqa: E402

ANS = {"content-type": "application/ans104"}
CONCURRENCY = 64


@dataclass(frozen=True)
class Scenario:
    kind: str  # node wallet: rsa | ed25519
    mode: str  # aggressive | local_confirmation
    processes: int

    @property
    def name(self) -> str:
        return f"{self.kind} {self.mode} {self.processes}p"


@dataclass(frozen=True)
class Outcome:
    scenario: Scenario
    per_s: float
    p50_ms: float
    p99_ms: float
    count: int


@contextlib.contextmanager
def node_process(kind: str, mode: str, cpu: int | None) -> Iterator[tuple[str, str]]:
    """A real ``aonode serve`` with a fresh data dir and a wallet of ``kind``."""
    with tempfile.TemporaryDirectory(prefix="aonode-bench-") as tmp:
        w = wallet_mod.generate("rsa" if kind == "rsa" else "ed25519")
        wallet_mod.save(w, Path(tmp) / "wallet.json")
        port = limits._free_port()
        args = [
            sys.executable,
            "-m",
            "aonode.cli",
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


def _check(result: loadgen.LoadResult, what: str) -> None:
    if result.errors or set(result.statuses) != {200}:
        raise RuntimeError(f"{what}: errors={result.errors} statuses={result.statuses}")


def run(
    s: Scenario, user: wallet_mod.Wallet, seconds: float, *, rate_of_max: float = 0.0
) -> Outcome:
    pinned = s.kind == "ed25519"
    node_cpu, load_cpu = limits._pinning() if pinned else (None, None)
    with node_process(s.kind, s.mode, node_cpu) as (url, address):
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
        n = max(2000, int(warm.per_s * seconds))
        rate = warm.per_s * rate_of_max if rate_of_max else None
        result = loadgen.run_load_in_subprocess_sync(
            target,
            messages(user, pids, n),
            concurrency=CONCURRENCY,
            headers=ANS,
            cpu=load_cpu,
            rate=rate,
        )
        _check(result, s.name)
    return Outcome(s, result.per_s, result.p50_ms, result.p99_ms, result.count)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="the tracked subset (< 3 min)")
    p.add_argument("--seconds", type=float, default=None, help="length of each measured run")
    args = p.parse_args(argv)
    seconds = args.seconds or (2.5 if args.quick else 4.0)
    user = wallet_mod.generate("ed25519")

    busy = limits.background_busy()
    if busy > 0.05:
        print(f"warning: the machine is {busy:.0%} busy; figures will be low", file=sys.stderr)
    print("measuring limits …", file=sys.stderr)
    rsa2 = limits.rsa_sign_per_s(threads=2)
    ed1 = limits.ed25519_sign_per_s(threads=1)
    with tempfile.TemporaryDirectory() as tmp:
        fsync = limits.fsync_per_s(tmp)
    echo = limits.http_echo_per_s()

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
    outcomes = []
    for s in scenarios:
        print(f"running {s.name} …", file=sys.stderr)
        outcomes.append(run(s, user, seconds))
    print("running ed25519 local_confirmation 1p at half load …", file=sys.stderr)
    half = run(Scenario("ed25519", "local_confirmation", 1), user, seconds, rate_of_max=0.5)

    print()
    print("limits measured in this run")
    print(f"  RSA-4096 PSS signatures/s, 2 threads   {rsa2:>10,.0f}")
    print(f"  ed25519 signatures/s, 1 thread         {ed1:>10,.0f}")
    print(f"  4 KiB write+fsync/s                    {fsync:>10,.0f}")
    print(
        f"  bare granian ASGI echo req/s (c=64)    {echo.per_s:>10,.0f}   "
        f"p50 {echo.p50_ms:.2f} ms  p99 {echo.p99_ms:.2f} ms"
    )
    print()
    print(f"{'scenario':<34}{'assign/s':>10}{'p50 ms':>9}{'p99 ms':>9}   vs limit")
    for o in outcomes:
        if o.scenario.kind == "rsa":
            ratio = f"{o.per_s / rsa2:.2f} × RSA sign limit (2 threads)"
        else:
            ratio = f"{o.per_s / echo.per_s:.2f} × bare HTTP echo"
        print(f"{o.scenario.name:<34}{o.per_s:>10,.0f}{o.p50_ms:>9.2f}{o.p99_ms:>9.2f}   {ratio}")
    print(
        f"{'ed25519 local 1p, half load':<34}{half.per_s:>10,.0f}{half.p50_ms:>9.2f}"
        f"{half.p99_ms:>9.2f}   open loop at 0.5 × max"
    )

    def find(kind: str, mode: str) -> float:
        return next(
            o.per_s
            for o in outcomes
            if o.scenario.kind == kind and o.scenario.mode == mode and o.scenario.processes == 1
        )

    summary = {
        "rsa_local_per_s": round(find("rsa", "local_confirmation"), 1),
        "rsa_sign_limit_per_s": round(rsa2, 1),
        "ed25519_local_per_s": round(find("ed25519", "local_confirmation"), 1),
        "ed25519_aggressive_per_s": round(find("ed25519", "aggressive"), 1),
        "http_echo_per_s": round(echo.per_s, 1),
        "fsync_per_s": round(fsync, 1),
        "p50_ms": round(half.p50_ms, 3),
        "p99_ms": round(half.p99_ms, 3),
    }
    summary["rsa_ratio"] = round(summary["rsa_local_per_s"] / rsa2, 3)
    summary["ed25519_ratio"] = round(summary["ed25519_local_per_s"] / echo.per_s, 3)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
