"""Memory per process: live (worker + Lua state) and idle-unloaded (to a snapshot).

N processes on the built-in aos module, each given the small counter handler
and a few messages, all computed (every worker live), then all unloaded the way
an idle node unloads them.  Memory is the node process's resident set (read
from /proc/self/statm after a full collection and ``malloc_trim``), divided by
N; the snapshot each unloaded process left in the store is reported beside it.

    python bench/compute_idle.py            # 200 processes
    python bench/compute_idle.py --processes 50
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from aonode import wallet as wallet_mod  # noqa: E402
from aonode.codec import ans104  # noqa: E402
from aonode.message import Message  # noqa: E402
from compute import HANDLER, msg, open_node  # noqa: E402

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """The resident set now (not the peak), after giving freed memory back."""
    gc.collect()
    with contextlib.suppress(OSError):  # not glibc: RSS then keeps freed arenas
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


async def measure(processes: int, messages: int = 5) -> dict[str, float]:
    node_wallet, user = wallet_mod.generate("ed25519"), wallet_mod.generate("ed25519")
    with tempfile.TemporaryDirectory() as tmp:
        node = await open_node(Path(tmp), node_wallet, snapshot_slots=10**9)
        try:
            procs = []
            for i in range(processes):
                proc = Message.from_item(
                    ans104.sign(
                        user,
                        data=str(i).encode(),
                        tags=[
                            ("Type", "Process"),
                            ("Scheduler", node_wallet.address),
                            ("Execution-Device", "lua@5.3a"),
                        ],
                    )
                )
                await node.schedule(proc)
                await node.schedule(msg(user, proc.id, "Eval", HANDLER))
                for _ in range(messages):
                    await node.schedule(msg(user, proc.id, "Inc"))
                procs.append(proc)
            base = rss_bytes()
            for proc in procs:
                worker = await node.processes.worker(proc)
                await worker.now()
            live = rss_bytes()
            unloaded = await node.processes.unload_idle(now=time.monotonic() + 10**9)
            assert len(unloaded) == processes, "every worker should have unloaded"
            idle = rss_bytes()
            sizes = []
            for proc in procs:
                snap = await node.store.latest_snapshot(proc.id, 10**9)
                assert snap is not None and snap.snapshot is not None
                sizes.append(len(snap.snapshot))
        finally:
            await node.stop()
    return {
        "processes": processes,
        "live_kib_per_process": round((live - base) / processes / 1024, 1),
        "unloaded_kib_per_process": round(max(0, idle - base) / processes / 1024, 1),
        "snapshot_kib_per_process": round(sum(sizes) / len(sizes) / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--processes", type=int, default=200)
    args = p.parse_args(argv)
    result = asyncio.run(measure(args.processes))
    print(json.dumps(result))
    live, idle = result["live_kib_per_process"], result["unloaded_kib_per_process"]
    print(
        f"{result['processes']} processes: live {live} KiB each (worker + Lua state; target"
        f" ≤ 300: {'met' if live <= 300 else 'NOT met'}), unloaded {idle} KiB each in memory"
        f" (target ≤ 50: {'met' if idle <= 50 else 'NOT met'})"
        f" + {result['snapshot_kib_per_process']} KiB snapshot in the store",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
