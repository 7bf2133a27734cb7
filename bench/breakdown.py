"""Where the event loop's time goes per scheduled message, stage by stage.

The node is built in this process (real SQLite file, ``local_confirmation``)
and N pre-signed ANS-104 messages are posted to its ASGI app in-process
(``POST /~scheduler@1.0/schedule``, 64 in flight), so the loop thread does
everything a served request costs except the HTTP server's own parsing.
The loop thread's CPU time per message (``time.thread_time``) is the
measured loop cost; each stage is then timed alone on the same inputs
(``perf_counter_ns`` over N calls) and their sum is printed beside it: the
rest is asyncio, the store hand-off and bookkeeping.  ``--profile`` adds a
cProfile of the in-process run, grouped by module, with the Python function
calls and event-loop callbacks per message: counts that, unlike times, do not
move with the load of a shared machine.

    python bench/breakdown.py                     # ed25519 and RSA node wallets
    python bench/breakdown.py --n 4000 --profile
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

import orjson  # noqa: E402

from aonode import wallet as wallet_mod  # noqa: E402
from aonode.codec import ans104, jsonform  # noqa: E402
from aonode.codec.avro_tags import encode_tags  # noqa: E402
from aonode.codec.b64 import b64url_decode  # noqa: E402
from aonode.config import NodeConfig  # noqa: E402
from aonode.http.app import App  # noqa: E402
from aonode.http.inprocess import asgi_request  # noqa: E402
from aonode.http.request import Request  # noqa: E402
from aonode.message import Message  # noqa: E402
from aonode.node import Node  # noqa: E402
from aonode.quotas import OFF  # noqa: E402
from aonode.scheduler import assignment as assignment_mod  # noqa: E402
from aonode.scheduler.hashchain import next_link  # noqa: E402
from aonode.scheduler.timestamp import OfflineSource  # noqa: E402
from aonode.store.sqlite import SQLiteStore  # noqa: E402

PATH = "/~scheduler@1.0/schedule"
HEADERS = [("content-type", "application/ans104")]
IN_FLIGHT = 64


def bodies(user: wallet_mod.Wallet, pid: str, n: int) -> list[bytes]:
    target = b64url_decode(pid)
    return [
        ans104.sign(
            user,
            data=b"1 + 1",
            target=target,
            anchor=os.urandom(32),
            tags=[("Data-Protocol", "ao"), ("Type", "Message"), ("Action", "Eval")],
        ).raw
        for _ in range(n)
    ]


def per_call_us(fn: Callable[[Any], object], inputs: list[Any]) -> float:
    t0 = time.perf_counter_ns()
    for x in inputs:
        fn(x)
    return (time.perf_counter_ns() - t0) / len(inputs) / 1000


async def run(kind: str, n: int, profile: bool) -> dict[str, float]:
    node_wallet = wallet_mod.generate(kind)
    user = wallet_mod.generate("ed25519")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        node = Node(
            replace(NodeConfig(data_dir=path), quota_messages=OFF, quota_reads=OFF),
            wallets=[node_wallet],
            store=SQLiteStore(path / "aonode.sqlite3"),
            timestamps=OfflineSource(),
        )
        await node.start()
        try:
            app = App(node.services())
            proc = ans104.sign(
                user,
                data=b"1",
                tags=[("Type", "Process"), ("Scheduler", node_wallet.address)],
            )
            status, _ = await asgi_request(app, "POST", PATH, HEADERS, proc.raw)
            assert status == 200, status
            warm = bodies(user, proc.id, 500)
            await _post_all(app, warm)
            raw = bodies(user, proc.id, n)
            prof = cProfile.Profile() if profile else None
            c0, w0 = time.thread_time(), time.perf_counter()
            if prof is not None:
                prof.enable()
            await _post_all(app, raw)
            if prof is not None:
                prof.disable()
            loop_us = (time.thread_time() - c0) / n * 1e6
            wall_per_s = n / (time.perf_counter() - w0)
            stages = _stages(raw, proc.id, node_wallet)
        finally:
            await node.stop()
    if prof is not None:
        _print_profile(prof, n)
    return {"loop_us": loop_us, "per_s": wall_per_s, **stages}


async def _post_all(app: App, raw: list[bytes]) -> None:
    # IN_FLIGHT clients each posting in turn (not a task per message behind a
    # semaphore, whose wake-ups scan its waiters: harness cost, not the node's)
    bodies = iter(raw)

    async def client() -> None:
        for body in bodies:
            status, answer = await asgi_request(app, "POST", PATH, HEADERS, body)
            if status != 200:
                raise RuntimeError(f"{status}: {answer[:200]!r}")

    async with asyncio.TaskGroup() as tg:
        for _ in range(IN_FLIGHT):
            tg.create_task(client())


def _stages(raw: list[bytes], pid: str, node_wallet: wallet_mod.Wallet) -> dict[str, float]:
    """Each hot-path stage alone, on the run's own inputs (µs per message)."""
    items = [ans104.parse(r) for r in raw]
    messages = [Message.from_item(i) for i in items]
    header = assignment_mod.Header(
        process=pid,
        slot=12345,
        block_height=1_500_000,
        block_hash="x" * 64,
        block_timestamp=1_700_000_000,
        timestamp=1_700_000_000_123,
        hash_chain="y" * 43,
        path="compute",
        message=items[0].id,
    )
    k = min(len(raw), 300) if node_wallet.signature_type == 1 else len(raw)
    assignments = [
        assignment_mod.Assignment(
            header=header, commitments=assignment_mod.commit(header, [node_wallet]), body=m
        )
        for m in messages[:k]
    ]
    scope = {
        "type": "http",
        "method": "POST",
        "path": PATH,
        "query_string": b"",
        "headers": [(b"content-type", b"application/ans104"), (b"content-length", b"400")],
    }
    prev = b"\x00" * 32
    return {
        "request scope": per_call_us(lambda s: Request.from_scope(s, _never, 1 << 20), [scope] * k),
        "ans104 parse": per_call_us(ans104.parse, raw),
        "deep hash (signature data)": per_call_us(ans104.DataItem.signature_data, items),
        "client signature check (incl. deep hash)": per_call_us(ans104.DataItem.verify, items),
        "Message.from_item": per_call_us(Message.from_item, items),
        "hash chain link": per_call_us(lambda m: next_link(prev, m.id_bytes), messages),
        "assignment tags encode": per_call_us(lambda h: encode_tags(h.tags()), [header] * k),
        "assignment sign (node wallet)": per_call_us(
            lambda h: assignment_mod.commit(h, [node_wallet]), [header] * k
        ),
        "assignment document (orjson)": per_call_us(
            lambda m: assignment_mod.Assignment(
                header=header, commitments=assignments[0].commitments, body=m
            ),
            messages[:k],
        ),
        "reply JSON (body to_json + splice)": per_call_us(
            assignment_mod.Assignment.json_bytes, assignments
        ),
        "body JSON form alone": per_call_us(jsonform.to_json, items),
        "orjson.dumps of the body JSON": per_call_us(
            orjson.dumps, [jsonform.to_json(i) for i in items]
        ),
    }


async def _never() -> dict[str, Any]:
    raise AssertionError("not read")


def _print_profile(prof: cProfile.Profile, n: int) -> None:
    stats = pstats.Stats(prof)
    groups: dict[str, float] = {}
    rows = []
    for (file, _line, func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = file.split("/src/")[-1] if "/src/" in file else Path(file).name
        groups[where] = groups.get(where, 0.0) + tt
        rows.append((tt, f"{where}:{func}"))
    # Counts, unlike times, do not move with the machine's load: compare these
    # between two trees when the machine is shared.
    calls = stats.total_calls  # type: ignore[attr-defined]
    callbacks = sum(
        nc
        for (file, _line, func), (_cc, nc, _tt, _ct, _callers) in stats.stats.items()  # type: ignore[attr-defined]
        if func == "_run" and file.endswith("asyncio/events.py")
    )
    print(f"\nPython function calls per message: {calls / n:.0f}")
    print(f"event-loop callbacks per message: {callbacks / n:.1f}")
    print("\ncProfile (own time, µs per message; profiling inflates Python code):")
    for where, tt in sorted(groups.items(), key=lambda kv: -kv[1])[:20]:
        print(f"  {tt / n * 1e6:8.1f}  {where}")
    print("  top functions:")
    for tt, name in sorted(rows, reverse=True)[:20]:
        print(f"  {tt / n * 1e6:8.1f}  {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=4000, help="messages per node wallet")
    parser.add_argument("--kinds", default="ed25519,rsa", help="node wallet kinds to run")
    parser.add_argument("--profile", action="store_true", help="cProfile the in-process run")
    args = parser.parse_args(argv)
    results = {}
    for kind in args.kinds.split(","):
        out = asyncio.run(run(kind, args.n, args.profile))
        results[kind] = out
        print(f"\nnode wallet {kind}: {args.n} messages, {IN_FLIGHT} in flight, in-process")
        print(f"  {out['loop_us']:8.1f} µs  loop thread CPU per message (measured)")
        print(f"  {out['per_s']:8.0f} /s  in-process scheduling rate (wall)")
        staged = 0.0
        for name, us in out.items():
            if name in ("loop_us", "per_s"):
                continue
            note = ""
            if name in (
                "deep hash (signature data)",
                "body JSON form alone",
                "orjson.dumps of the body JSON",
                "assignment tags encode",
            ):
                note = "  (inside another row)"
            elif kind == "rsa" and name == "assignment sign (node wallet)":
                note = "  (on the signing threads, not the loop)"
            else:
                staged += us
            print(f"  {us:8.1f} µs  {name}{note}")
        print(
            f"  {staged:8.1f} µs  sum of loop stages; rest "
            f"(asyncio, store hand-off, metrics, routing): {out['loop_us'] - staged:.1f}"
        )
    print(
        orjson.dumps(
            {k: {s: round(v, 2) for s, v in r.items()} for k, r in results.items()}
        ).decode()
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
