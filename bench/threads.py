"""Where a served node's CPU goes per message, thread by thread, under full load.

A real ``aonode serve`` (one worker, ``local_confirmation``, a fresh data
directory; the same process ``bench/schedule.py`` starts) schedules pre-signed
ANS-104 messages replayed by ``wrk`` over 64 connections.  Over the middle half
of the run it reads every thread's CPU time and context switches
(``/proc/<pid>/task/*``) and prints, largest first, µs of CPU and switches per
scheduled message, with the store's commit count from ``/metrics``.  Thread
names are not visible from outside the process; with an RSA wallet the two
largest are the signing pool, then come the event loop and the store writer.
Beside it: the RSA-4096 signing limit of two threads, measured in the same run.

    .venv/bin/python bench/threads.py --kind rsa       # the RSA node (issue 22)
    .venv/bin/python bench/threads.py --kind ed25519 --processes 8
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

import limits  # noqa: E402
import schedule  # noqa: E402
import wrkload  # noqa: E402
from aonode import wallet as wallet_mod  # noqa: E402

Sample = dict[str, tuple[int, int, float]]  # tid -> (voluntary, involuntary, cpu seconds)


def sample(pid: int) -> Sample:
    """Context switches and CPU seconds of each thread of ``pid``."""
    tick = os.sysconf("SC_CLK_TCK")
    out: Sample = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended
        vol = int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M)[1])  # type: ignore[index]
        invol = int(re.search(r"^nonvoluntary_ctxt_switches:\s+(\d+)", status, re.M)[1])  # type: ignore[index]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[task.name] = (vol, invol, (int(fields[11]) + int(fields[12])) / tick)
    return out


def node_pid(port: str) -> int:
    """The pid of the process listening on ``port`` (the node, not its launcher)."""
    ss = subprocess.run(
        ["ss", "-ltnpH", f"( sport = :{port} )"], capture_output=True, text=True, check=True
    ).stdout
    return int(re.findall(r"pid=(\d+)", ss)[0])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", choices=("rsa", "ed25519"), default="rsa", help="node wallet")
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args(argv)
    if not wrkload.available():
        print("this bench needs wrk (Debian package wrk)", file=sys.stderr)
        return 2
    user = wallet_mod.generate("ed25519")
    rsa2 = limits.rsa_sign_per_s(threads=2)
    spans: dict[str, Sample] = {}
    clock: dict[str, float] = {}
    with schedule.node_process(args.kind, "local_confirmation", None, 1) as (url, address):
        pids = schedule.spawn(url, address, user, args.processes)
        pid = node_pid(url.rsplit(":", 1)[1])

        def measure() -> None:  # the middle of the run: after warm-up, before the end
            time.sleep(args.seconds * 0.25)
            spans["a"], clock["a"] = sample(pid), time.monotonic()
            time.sleep(args.seconds * 0.5)
            spans["b"], clock["b"] = sample(pid), time.monotonic()

        sampler = threading.Thread(target=measure)
        sampler.start()
        result = wrkload.replay(
            url,
            lambda n: schedule.routed(user, pids, n),
            expected_per_s=400 if args.kind == "rsa" else 2500,
            seconds=args.seconds,
            headers=schedule.ANS,
        )
        sampler.join()
        metrics = httpx.get(f"{url}/metrics").text
    commits = re.search(r"^aonode_store_commit_seconds_count (\S+)", metrics, re.M)
    n = result.per_s * (clock["b"] - clock["a"])
    a, b = spans["a"], spans["b"]
    rows = sorted(
        (
            (b[t][2] - a[t][2]) * 1e6 / n,
            (b[t][0] - a[t][0]) / n,
            (b[t][1] - a[t][1]) / n,
        )
        for t in b
        if t in a
    )[::-1]
    print(f"{args.kind} node, 1 worker, local_confirmation, {args.processes} process(es)")
    print(f"  {result.per_s:,.0f} assignments/s; RSA-4096 signing limit, 2 threads: {rsa2:,.0f}/s")
    if commits:
        print(f"  store commits in the whole run: {float(commits[1]):,.0f}")
    print("  per message: CPU µs, voluntary and involuntary switches, by thread (largest first)")
    for cpu, vol, invol in rows:
        if cpu >= 1:
            print(f"    {cpu:>8,.0f} µs   {vol:5.1f}   {invol:5.1f}")
    total = sum(r[0] for r in rows)
    signing = sum(r[0] for r in rows[:2]) if args.kind == "rsa" else 0.0
    print(f"  all threads {total:,.0f} µs a message", end="")
    print(f"; all but the two signing threads {total - signing:,.0f} µs" if signing else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
