"""CPU cost of one hop between cluster workers (aonode.cluster.channel), at full load.

A request that lands on a worker that does not own its process is forwarded to
the owner as one channel call: the signed message out, the assignment back.
This measures what that costs in CPU, both ends together: a caller process
keeps ``--window`` calls in flight against an owner process (its own OS
process, as in a cluster), and

    µs per call = (process_time of caller + process_time of owner) ÷ calls

is printed beside the 50 µs target of issue 22 (the earlier HTTP-over-a-Unix-
socket hop cost ~1,070 µs).  Both ends run uvloop, as the node does.  Two rows
per window:

- ``bytes``: the channel alone (opaque payloads of ``--request``/``--reply`` bytes);
- ``schedule``: the whole forwarded schedule call minus the scheduling itself: a
  real signed data item encoded as ``cluster.routing`` sends it, parsed again on
  the owner (not re-verified), and a real signed assignment document rebuilt
  around the message on the caller's side.

    .venv/bin/python bench/hop.py -n 100000 -w 1,16,256 --request 1200 --reply 400
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from aonode import wallet as wallet_mod
from aonode.cluster.channel import Link, Listener
from aonode.cluster.routing import (
    assignment_from,
    decode_schedule,
    encode_assignment,
    encode_schedule,
)
from aonode.codec import ans104
from aonode.message import Message
from aonode.scheduler.assignment import Assignment, Header, commit

TARGET_US = 50.0


def _as_the_node() -> None:
    """The garbage collector as a served node sets it (cli._tune_gc, cluster.worker)."""
    gc.set_threshold(10_000, 10, 100)
    gc.freeze()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    _as_the_node()
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return None
    return uvloop.new_event_loop


def sample(data_size: int) -> tuple[Message, bytes]:
    """A signed message like a client's and the document of an assignment of it."""
    user, node = wallet_mod.generate("ed25519"), wallet_mod.generate("rsa")
    pid = "P" * 43
    tags = [("Data-Protocol", "ao"), ("Variant", "ao.N.1"), ("Type", "Message"), ("Action", "Hop")]
    target, anchor = b"\x01" * 32, os.urandom(32)
    message = Message.from_item(
        ans104.sign(user, data=os.urandom(data_size), tags=tags, target=target, anchor=anchor)
    )
    header = Header(
        pid,
        7,
        1_500_000,
        "H" * 64,
        1_700_000_000,
        1_700_000_000_123,
        "C" * 43,
        "compute",
        message.id,
    )
    assignment = Assignment(header, commit(header, [node]), message)
    return message, encode_assignment(assignment)


def owner(
    path: str, reply_size: int, document: bytes, ready: multiprocessing.synchronize.Event
) -> None:
    """The owning worker: ``bytes`` answers ``reply_size`` bytes; ``schedule`` a document."""
    reply = os.urandom(reply_size)

    async def raw(payload: bytes) -> bytes:
        return reply

    async def schedule(payload: bytes) -> bytes:
        decode_schedule(payload)  # the message parsed again, as the owner does
        return document

    async def cpu(payload: bytes) -> bytes:
        return orjson.dumps(time.process_time())

    async def main() -> None:
        stop = asyncio.Event()

        async def quit_(payload: bytes) -> bytes:
            asyncio.get_running_loop().call_soon(stop.set)
            return b""

        calls = {"bytes": raw, "schedule": schedule, "cpu": cpu, "quit": quit_}
        listener = Listener(Path(path), calls)
        await listener.start()
        ready.set()
        await stop.wait()
        await listener.close()

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main())


async def drive(
    path: Path, calls: int, window: int, request_size: int, message: Message | None
) -> tuple[float, float]:
    """(µs of CPU per call, calls per second of wall time) for ``calls`` calls.

    With ``message``: forwarded schedule calls; without: ``request_size`` opaque bytes.
    """
    link = Link(path, name="owner")
    body = os.urandom(request_size)
    await link.call("bytes", body)  # connect outside the measurement
    per_task = calls // window

    async def one_stream() -> None:
        if message is None:
            for _ in range(per_task):
                await link.call("bytes", body)
            return
        for _ in range(per_task):  # as ShardedScheduling.schedule does it
            payload = encode_schedule(message, "compute", None, None)
            assignment_from(await link.call("schedule", payload), message)

    owner_before = orjson.loads(await link.call("cpu"))
    mine_before, wall_before = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one_stream() for _ in range(window)))
    mine = time.process_time() - mine_before
    wall = time.perf_counter() - wall_before
    owner_cpu = orjson.loads(await link.call("cpu")) - owner_before
    await link.close()
    done = per_task * window
    return (mine + owner_cpu) / done * 1e6, done / wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--calls", type=int, default=100_000)
    parser.add_argument("-w", "--windows", default="1,16,256", help="calls in flight, e.g. 1,256")
    parser.add_argument("--request", type=int, default=1200, help="bytes per call (a message)")
    parser.add_argument("--reply", type=int, default=400, help="bytes per reply (an assignment)")
    args = parser.parse_args(argv)
    windows = [int(w) for w in args.windows.split(",")]

    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="aonode-hop-") as tmp:
        path = Path(tmp) / "owner.sock"
        ready = ctx.Event()
        message, document = sample(args.request)
        proc = ctx.Process(target=owner, args=(str(path), args.reply, document, ready))
        proc.start()
        try:
            if not ready.wait(30):
                print("the owner process did not start", file=sys.stderr)
                return 1
            print(
                f"hop: {args.calls} calls per row, {args.request} B out, {args.reply} B back, "
                f"{os.cpu_count()} cores"
            )
            print(
                f"{'call':>9} {'in flight':>10} {'CPU µs/call':>12} {'calls/s':>10} "
                f"{'target':>8}  verdict"
            )
            for window in windows:
                for kind, sent in (("bytes", None), ("schedule", message)):

                    async def run(window: int = window, sent: Message | None = sent) -> Any:
                        return await drive(path, args.calls, window, args.request, sent)

                    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                        us, rate = runner.run(run())
                    verdict = "within" if us <= TARGET_US else "OVER"
                    print(
                        f"{kind:>9} {window:>10} {us:>12.1f} {rate:>10.0f} {TARGET_US:>8.0f}  "
                        f"{verdict}"
                    )

            async def stop() -> None:
                link = Link(path)
                await link.call("quit")
                await link.close()

            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                runner.run(stop())
        finally:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
