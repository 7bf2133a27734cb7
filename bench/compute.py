"""Process execution speed, next to lupa's raw rate measured in the same run.

* warm worker: small handler messages computed one slot at a time through the
  process worker (store read, Lua apply, result cached), messages/s; and the
  same worker catching up on 2,000 messages that arrived at once;
* cold replay: a fresh worker computing a 10,000-slot schedule from slot 0
  (snapshots off), seconds;
* resume: the same after a restart with snapshots every 1,000 slots;
* lupa raw: ``eval('1+1')`` on one LuaRuntime, calls/s.

    python bench/compute.py            # 10,000-slot schedule
    python bench/compute.py --slots 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sqlite3
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

import lupa.lua53 as lupa  # noqa: E402

from aonode import wallet as wallet_mod  # noqa: E402
from aonode.codec import ans104  # noqa: E402
from aonode.codec.b64 import b64url_decode  # noqa: E402
from aonode.config import NodeConfig  # noqa: E402
from aonode.message import Message  # noqa: E402
from aonode.node import Node  # noqa: E402
from aonode.scheduler.timestamp import OfflineSource  # noqa: E402
from aonode.store.sqlite import SQLiteStore  # noqa: E402

HANDLER = "Count = 0\nHandlers.add('Inc', { Action = 'Inc' }, function(m) Count = Count + 1 end)"


def lupa_raw_per_s(seconds: float = 1.0) -> float:
    rt = lupa.LuaRuntime()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(1000):
            rt.eval("1+1")
        n += 1000
    return n / (time.perf_counter() - t0)


def msg(user: wallet_mod.Wallet, pid: str, action: str, data: str = "") -> Message:
    return Message.from_item(
        ans104.sign(
            user,
            data=data.encode(),
            target=b64url_decode(pid),
            anchor=os.urandom(32),
            tags=[("Data-Protocol", "ao"), ("Type", "Message"), ("Action", action)],
        )
    )


def clear_computed(path: Path, where: str = "") -> None:
    """Forget computed results (all, or those matching ``where``) in a stopped node's store."""
    db = sqlite3.connect(path / "aonode.sqlite3")
    db.execute(f"DELETE FROM computed {where}")
    db.commit()
    db.close()


async def open_node(path: Path, node_wallet: wallet_mod.Wallet, snapshot_slots: int) -> Node:
    config = replace(NodeConfig(data_dir=path), snapshot_slots=snapshot_slots)
    node = Node(
        config,
        wallets=[node_wallet],
        store=SQLiteStore(path / "aonode.sqlite3"),
        timestamps=OfflineSource(),
    )
    await node.start()
    return node


async def main_async(slots: int) -> dict[str, float]:
    raw = lupa_raw_per_s()
    node_wallet, user = wallet_mod.generate("ed25519"), wallet_mod.generate("ed25519")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        node = await open_node(path, node_wallet, snapshot_slots=1000)
        proc = Message.from_item(
            ans104.sign(
                user,
                data=b"1",
                tags=[
                    ("Type", "Process"),
                    ("Scheduler", node_wallet.address),
                    ("Execution-Device", "lua@5.3a"),
                ],
            )
        )
        await node.schedule(proc)
        await node.schedule(msg(user, proc.id, "Eval", HANDLER))
        print(f"scheduling {slots} messages …", file=sys.stderr)
        batch = [msg(user, proc.id, "Inc") for _ in range(slots)]
        for i in range(0, len(batch), 256):
            await asyncio.gather(*(node.schedule(m) for m in batch[i : i + 256]))
        last = slots + 1

        worker = await node.processes.worker(proc)
        t0 = time.perf_counter()
        for s in range(0, last + 1):  # warm: one slot at a time, as requests arrive
            await worker.compute(s)
        warm = (last + 1) / (time.perf_counter() - t0)
        # warm batch: the runtime is live; 2,000 more messages arrive, then one compute
        more = [msg(user, proc.id, "Inc") for _ in range(2000)]
        for i in range(0, len(more), 256):
            await asyncio.gather(*(node.schedule(m) for m in more[i : i + 256]))
        t0 = time.perf_counter()
        await worker.compute(last + len(more))
        warm_batch = len(more) / (time.perf_counter() - t0)
        last += len(more)
        await worker.close()
        await node.stop()

        # cold replay: a new node, the cache and snapshots emptied
        clear_computed(path)
        node = await open_node(path, node_wallet, snapshot_slots=10**9)
        worker = await node.processes.worker(await node.require_process(proc.id))
        t0 = time.perf_counter()
        await worker.compute(last)
        cold = time.perf_counter() - t0
        await worker.close()
        await node.stop()

        # resume: snapshots every 1,000 slots exist from the warm run? (they were deleted)
        node = await open_node(path, node_wallet, snapshot_slots=1000)
        clear_computed(path)
        worker = await node.processes.worker(await node.require_process(proc.id))
        await worker.compute(last)
        await worker.close()
        await node.stop()
        clear_computed(path, "WHERE snapshot IS NULL")
        node = await open_node(path, node_wallet, snapshot_slots=1000)
        worker = await node.processes.worker(await node.require_process(proc.id))
        await node.schedule(msg(user, proc.id, "Inc"))
        t0 = time.perf_counter()
        await worker.compute(last + 1)
        resume = time.perf_counter() - t0
        resumed_from = worker.resumed_from
        await worker.close()
        await node.stop()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "lupa_raw_eval_per_s": round(raw),
        "warm_msgs_per_s": round(warm, 1),
        "warm_batch_msgs_per_s": round(warm_batch, 1),
        "cold_replay_s": round(cold, 3),
        "cold_replay_slots": last + 1,
        "resume_s": round(resume, 3),
        "resumed_from": float(resumed_from or -1),
        "max_rss_mb": round(rss_mb, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--slots", type=int, default=10_000)
    args = p.parse_args(argv)
    out = asyncio.run(main_async(args.slots))
    print(f"lupa raw eval('1+1')        {out['lupa_raw_eval_per_s']:>12,.0f} /s")
    print(f"warm worker, slot by slot   {out['warm_msgs_per_s']:>12,.0f} msgs/s")
    print(f"warm worker, 2,000 arrived  {out['warm_batch_msgs_per_s']:>12,.0f} msgs/s")
    print(f"cold replay of {out['cold_replay_slots']} slots  {out['cold_replay_s']:>9.2f} s")
    print(
        f"resume after restart        {out['resume_s']:>12.3f} s "
        f"(from the snapshot at slot {int(out['resumed_from'])})"
    )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
