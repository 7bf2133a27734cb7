"""``aonode export`` / ``aonode import``: move a node's data between stores as a stream.

Export reads one consistent snapshot of the source (``store/snapshot.py``) and
writes the stream format of ``store/dumpfile.py``: every process's schedule
(assignments with their bodies, in slot order), the messages no schedule
assigns, location records, computed results (optional: derived data) and the
node's records.  Import writes it through the ordinary
:class:`~aonode.store.base.Store` API of the target, so the target's own rules
apply (durability, the gap guard, unique slots and messages), and many writes
are in flight at once so group commit packs them into few transactions.

Import is idempotent and refuses conflicts:

* The header lists each process with its slot count and last hash-chain value.
  Before anything is written, each process is compared with the target: a
  target that already holds the same schedule (or a longer one with the same
  chain at the export's last slot: it went on after an earlier import) is
  skipped; a target whose chain differs there is a conflict, and import
  refuses.  The hash chain covers every message id before it, so equal chain
  values mean equal schedules up to that slot.
* A target with a *shorter* schedule (an interrupted import) is compared
  when the stream reaches the target's last slot, before anything of that
  process is written; only the missing slots are appended.
* The stream's own hash chain is re-derived frame by frame, and its trailer
  (counts and SHA-256) must match, so a cut or corrupted stream is reported.
  Everything written before the fault is valid and a re-run completes it.

Messages, locations (by nonce), results (first wins) and records (replaced
by the same value) are idempotent by the store's own rules.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Final

from aonode.codec.b64 import b64url_decode, b64url_encode
from aonode.errors import IntegrityError
from aonode.scheduler.hashchain import next_link
from aonode.store import (
    AssignmentRecord,
    LocationRecord,
    MessageRecord,
    Record,
    ResultRecord,
    Store,
    open_snapshot,
    open_store,
)
from aonode.store import export_view as q
from aonode.store.dumpfile import BadStream, DumpReader, DumpWriter, blob, number, text

_WINDOW: Final = 512  # writes in flight during an import (one group commit's worth)
_LABELS: Final = {"A": "assignments", "M": "messages", "L": "locations", "R": "results"}


class ImportConflict(IntegrityError):
    """The target holds a different schedule for a process of the stream."""

    code = "import-conflict"


def _progress(total: int, what: str) -> tuple[AbstractContextManager[Any], Callable[[], None]]:
    """A rich progress bar on stderr, or nothing when stderr is not a terminal."""
    if not sys.stderr.isatty():
        return nullcontext(), lambda: None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task(what, total=total)
    return bar, lambda: bar.advance(task)


# -- export ----------------------------------------------------------------------------


async def export_store(url: str, out: BinaryIO, *, results: bool = True) -> dict[str, int]:
    """Write the store ``url`` to ``out``; the number of frames of each kind."""
    snap = await open_snapshot(url)
    try:
        processes = []
        async for pid, top, count in snap.rows(q.PROCESSES):
            if count != top + 1:
                raise IntegrityError(f"process {pid}: {count} slots up to slot {top} (a gap)")
            chain = await snap.value(q.CHAIN_AT, pid, top)
            processes.append({"id": pid, "slots": count, "hash_chain": chain})
        counts = {"A": sum(int(p["slots"]) for p in processes)}
        counts["M"] = int(await snap.value(snap.loose_count))
        for tag, sql in q.COUNTS.items():
            counts[tag] = 0 if tag == "R" and not results else int(await snap.value(sql))
        writer = DumpWriter(out)
        await writer.header(
            {"source": open_store(url).url, "created": time.time(),
             "processes": processes, "counts": counts}
        )  # fmt: skip
        bar, tick = _progress(sum(counts.values()), "exporting")
        with bar:
            for p in processes:
                async for slot, mid, chain, doc, codec, raw in snap.rows(
                    q.ASSIGNMENTS, p["id"], int(p["slots"]) - 1
                ):
                    await writer.frame(b"A", [p["id"], slot, mid, chain, doc, codec, raw])
                    tick()
            parts = [(b"M", snap.loose_messages), (b"L", q.LOCATIONS), (b"K", q.RECORDS)]
            if results:
                parts.insert(2, (b"R", q.RESULTS))
            for frame_tag, sql in parts:
                async for row in snap.rows(sql):
                    await writer.frame(frame_tag, row)
                    tick()
        await writer.finish()
    finally:
        await snap.close()
    return dict(writer.counts)


# -- import ----------------------------------------------------------------------------


@dataclass
class _Plan:
    """What the target holds of one process, and what the stream must agree with."""

    slots: int  # in the stream
    last_chain: str  # the stream's chain at its last slot
    have: int = 0  # slots the target holds
    have_chain: str | None = None  # the target's chain at slot have - 1
    skip: bool = False  # the target holds all of it already
    next_slot: int = 0  # next slot expected from the stream
    previous: bytes = b""  # the stream's chain value so far


@dataclass
class ImportReport:
    processes: int = 0
    added: dict[str, int] = field(default_factory=dict)  # written (or confirmed) per kind
    present: int = 0  # assignments the target already held

    def as_dict(self) -> dict[str, object]:
        return {"processes": self.processes, "present": self.present, **self.added}


class _Window:
    """Writes in flight, oldest first; an error surfaces when its turn comes."""

    def __init__(self) -> None:
        self._tasks: deque[asyncio.Future[Any]] = deque()

    async def add(self, write: Awaitable[Any]) -> None:
        # Tasks start in creation order, so a process's appends are queued in slot order.
        self._tasks.append(asyncio.ensure_future(write))
        if len(self._tasks) >= _WINDOW:
            await self._tasks.popleft()

    async def drain(self) -> None:
        try:
            while self._tasks:
                await self._tasks.popleft()
        finally:
            await self.abandon()

    async def abandon(self) -> None:
        rest, self._tasks = list(self._tasks), deque()
        await asyncio.gather(*rest, return_exceptions=True)


async def _plan(store: Store, header: dict[str, object]) -> dict[str, _Plan]:
    listed = header.get("processes")
    if not isinstance(listed, list):
        raise BadStream("the header lists no processes")
    plans: dict[str, _Plan] = {}
    conflicts: list[str] = []
    for p in listed:
        try:
            pid, slots, chain = str(p["id"]), int(p["slots"]), str(p["hash_chain"])
        except (TypeError, KeyError, ValueError):
            raise BadStream(f"bad process entry in the header: {p!r}") from None
        plan = plans[pid] = _Plan(slots, chain)
        latest = await store.latest(pid)
        if latest is None:
            continue
        plan.have, plan.have_chain = latest.slot + 1, latest.hash_chain
        if plan.have >= slots:
            there = await store.slots(pid, slots - 1, slots - 1, 1)
            if there and there[0].assignment.hash_chain == chain:
                plan.skip = True
            else:
                conflicts.append(f"{pid} (slot {slots - 1} differs)")
    if conflicts:
        raise ImportConflict(
            "the target holds different schedules for: " + ", ".join(conflicts)
            + "; nothing was imported"
        )  # fmt: skip
    return plans


async def import_store(url: str, source: BinaryIO) -> ImportReport:
    """Read a stream from ``source`` into the store ``url`` (see the module docstring)."""
    reader = DumpReader(source)
    header = await reader.header()
    store = open_store(url)
    await store.open()
    window = _Window()
    try:
        plans = await _plan(store, header)
        report = ImportReport(processes=len(plans))
        counts = header.get("counts")
        total = sum(counts.values()) if isinstance(counts, dict) else 0
        bar, tick = _progress(total, "importing")
        with bar:
            async for tag, f in reader.frames():
                kind = _LABELS.get(tag.decode(), "records")
                if tag == b"A":
                    added = await _assignment(store, window, plans, f)
                    if not added:
                        report.present += 1
                        kind = ""
                else:
                    await window.add(_write_other(store, tag, f))
                if kind:
                    report.added[kind] = report.added.get(kind, 0) + 1
                tick()
            await window.drain()
        short = [pid for pid, p in plans.items() if p.next_slot != p.slots]
        if short:
            raise BadStream(f"the stream misses slots of {', '.join(short)}")
        return report
    finally:
        await window.abandon()
        await store.close()


async def _assignment(
    store: Store, window: _Window, plans: dict[str, _Plan], f: list[bytes | None]
) -> bool:
    """Check one assignment frame against the stream's chain and the plan; queue it if new."""
    if len(f) != 7:
        raise BadStream("an assignment frame has the wrong number of fields")
    pid, slot, mid, chain = text(f[0]), number(f[1]), text(f[2]), text(f[3])
    plan = plans.get(pid)
    if plan is None:
        raise BadStream(f"assignment of process {pid}, which the header does not list")
    if slot != plan.next_slot or slot >= plan.slots:
        raise BadStream(f"process {pid}: slot {slot} out of order (expected {plan.next_slot})")
    try:
        link = next_link(plan.previous, b64url_decode(mid))
    except ValueError:
        raise BadStream(f"process {pid} slot {slot}: message id is not base64url") from None
    if b64url_encode(link) != chain:
        raise BadStream(f"process {pid} slot {slot}: the hash chain is broken in the stream")
    plan.previous, plan.next_slot = link, slot + 1
    if plan.skip or slot < plan.have - 1:
        return False
    if slot == plan.have - 1:
        if chain != plan.have_chain:
            raise ImportConflict(
                f"the target holds a different schedule for {pid} (slot {slot} differs);"
                " nothing of it was imported"
            )
        return False
    record = AssignmentRecord(pid, slot, mid, chain, blob(f[4]))
    await window.add(store.append(record, MessageRecord(mid, blob(f[6]), text(f[5]))))
    return True


async def _write_other(store: Store, tag: bytes, f: list[bytes | None]) -> None:
    want = {b"M": 3, b"L": 5, b"R": 5, b"K": 3}[tag]
    if len(f) != want:
        raise BadStream(f"a {tag.decode()} frame has the wrong number of fields")
    if tag == b"M":
        await store.put_message(MessageRecord(text(f[0]), blob(f[2]), text(f[1])))
    elif tag == b"L":
        message = MessageRecord(text(f[2]), blob(f[4]), text(f[3]))
        await store.put_location(LocationRecord(text(f[0]), number(f[1]), message.id), message)
    elif tag == b"R":
        await store.put_result(ResultRecord(text(f[0]), number(f[1]), text(f[2]), blob(f[3]), f[4]))
    else:
        await store.put_record(Record(text(f[0]), text(f[1]), blob(f[2])))
