"""SQLiteStore append throughput next to this disk's own fsync rate, measured in the same run.

An append is durable when it returns, so without group commit the store could
not beat one fsync per append.  The ratio appends/s ÷ fsync/s says how far
group commit takes it past that limit on this machine today.

    .venv/bin/python bench/store_append.py -n 20000 -c 1,16,64,256 -p 100
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from aonode.store.base import AssignmentRecord, MessageRecord
from aonode.store.sqlite import SQLiteStore


def fsync_rate(directory: Path, seconds: float = 1.0) -> float:
    """4 KiB write + fsync of one file, as often as the disk allows, per second."""
    block = os.urandom(4096)
    path = directory / "fsync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            os.pwrite(fd, block, 0)
            os.fsync(fd)
            count += 1
    finally:
        os.close(fd)
        path.unlink()
    return count / elapsed


async def append_rate(
    path: Path, total: int, concurrency: int, processes: int, body_size: int
) -> tuple[float, float, int]:
    """(appends/s, commits/s, commits) for ``total`` appends, ``concurrency`` in flight.

    Appends are issued like the scheduler actors issue them: each process's
    slots in order, without awaiting the previous one, across many processes.
    """
    store = SQLiteStore(path)
    await store.open()
    document, raw = os.urandom(1024), os.urandom(body_size)
    in_flight = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        process, slot = f"process-{n % processes:05d}", n // processes
        mid = f"{process}/{slot}"
        try:
            await store.append(
                AssignmentRecord(process, slot, mid, f"chain-{mid}", document),
                MessageRecord(mid, raw),
            )
        finally:
            in_flight.release()

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for n in range(total):
            await in_flight.acquire()
            group.create_task(one(n))
    elapsed = time.perf_counter() - start
    commits = store.commits
    assert store.appends == total
    await store.close()
    return total / elapsed, commits / elapsed, commits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--appends", type=int, default=20_000)
    parser.add_argument("-c", "--concurrency", default="1,16,64,256", help="comma-separated")
    parser.add_argument("-p", "--processes", type=int, default=100)
    parser.add_argument("--body", type=int, default=512, help="body message bytes")
    parser.add_argument("--dir", type=Path, default=None, help="where the files go")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="aonode-bench-") as tmp:
        directory = Path(tmp)
        limit = fsync_rate(directory)
        print(f"raw limit: {limit:,.0f} fsync/s (4 KiB pwrite+fsync, {directory})")
        print(f"{'C':>5} {'appends/s':>10} {'commits/s':>10} {'per commit':>10} {'× limit':>8}")
        for level in levels:
            rate, commit_rate, commits = asyncio.run(
                append_rate(
                    directory / f"c{level}.db", args.appends, level, args.processes, args.body
                )
            )
            print(
                f"{level:>5} {rate:>10,.0f} {commit_rate:>10,.0f}"
                f" {args.appends / commits:>10.1f} {rate / limit:>8.2f}"
            )
        after = fsync_rate(directory)
        print(f"raw limit after: {after:,.0f} fsync/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
