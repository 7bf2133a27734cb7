"""Independent check of a stored or served schedule (``aonode verify``).

It trusts nothing the node computed: it re-derives every hash-chain link from
the body ids, re-hashes each body's signature into its id, verifies each
body's signature and every scheduler commitment over the assignment's keys,
and stops at the first break with the slot and the reason.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
from rich.progress import Progress

from aonode.codec.b64 import b64url_decode, b64url_encode
from aonode.errors import ConfigError, InputError, NotFound
from aonode.message import Message
from aonode.scheduler.assignment import Assignment, Commitment, Header, check_commitment
from aonode.scheduler.hashchain import next_link
from aonode.store import open_store
from aonode.store.export_view import sqlite_path

Problem = tuple[int, str]


def check_assignment(a: Assignment, process: str, previous: bytes, slot: int) -> str | None:
    """The reason ``a`` is not a valid slot ``slot`` after chain value ``previous``."""
    h = a.header
    if h.slot != slot:
        return f"expected slot {slot}, found slot {h.slot}"
    if h.process != process:
        return f"assignment names process {h.process}"
    if a.body.id != h.message:
        return "body id does not equal the assignment's message id"
    if not a.body.item.verify():
        return "body signature does not verify"
    if b64url_encode(next_link(previous, a.body.id_bytes)) != h.hash_chain:
        return "hash-chain does not equal sha256(previous ‖ message id)"
    if not a.commitments:
        return "assignment has no scheduler commitment"
    for c in a.commitments:
        if (reason := check_commitment(h, c)) is not None:
            return f"commitment by {c.committer}: {reason}"
    return None


def _from_json(doc: dict[str, object]) -> Assignment:
    header = Header.from_json(doc)
    raw_commitments = doc.get("commitments")
    if not isinstance(raw_commitments, list):
        raise ValueError("commitments missing")
    commitments = tuple(
        Commitment(committer=c["committer"], id=c["id"], raw=b64url_decode(c["raw"]))
        for c in raw_commitments
    )
    body = Message.from_json(doc["body"])
    return Assignment(header, commitments, body)


async def _from_url(url: str, process: str, total: list[int]) -> AsyncIterator[Assignment]:
    async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=60) as client:
        slot_info = await client.get(f"/{process}~process@1.0/slot")
        if slot_info.status_code == 404:
            raise NotFound(f"the node does not know process {process}")
        slot_info.raise_for_status()
        total.append(int(slot_info.json()["current"]) + 1)
        first = 0
        while True:
            r = await client.get(f"/{process}~process@1.0/schedule", params={"from": first})
            r.raise_for_status()
            page = orjson.loads(r.content)
            for doc in page["assignments"]:
                yield _from_json(doc)
            if not page["continues"] or page["next"] is None:
                return
            first = int(page["next"])


def store_url(source: str) -> str | None:
    """The store URL ``source`` names: itself (``sqlite:…``, ``postgresql://…``) or the
    SQLite file of a data directory; ``None`` for a node URL (``http(s)://``)."""
    if source.startswith(("http://", "https://")):
        return None
    if source.startswith(("sqlite:", "postgresql:", "postgres:")):
        path = sqlite_path(source)
        if path is not None and not path.is_file():
            raise ConfigError(f"no SQLite store at {path}")
        return source
    db = Path(source) / "aonode.sqlite3"
    if not db.exists():
        raise ConfigError(f"no aonode store in {source} (expected {db})")
    return f"sqlite:///{db.resolve()}"


async def list_processes(source: str) -> list[str]:
    """Every process whose schedule ``source`` (node URL, data dir or store URL) holds."""
    url = store_url(source)
    if url is None:
        try:
            async with httpx.AsyncClient(base_url=source.rstrip("/"), timeout=60) as client:
                r = await client.get("/~scheduler@1.0/status")
                r.raise_for_status()
                return [str(p) for p in r.json()["processes"]]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise ConfigError(f"cannot list the processes of {source}: {exc}") from exc
    store = open_store(url)
    await store.open()
    try:
        return await store.processes()
    finally:
        await store.close()


async def _from_store(url: str, process: str, total: list[int]) -> AsyncIterator[Assignment]:
    store = open_store(url)
    await store.open()
    try:
        latest = await store.latest(process)
        if latest is None:
            raise NotFound(f"the store has no schedule for process {process}")
        total.append(latest.slot + 1)
        first = 0
        while first <= latest.slot:
            rows = await store.slots(process, first, latest.slot, 1000)
            if not rows:
                return
            for row in rows:
                yield Assignment.from_stored(row)
            first = rows[-1].assignment.slot + 1
    finally:
        await store.close()


async def verify_schedule(source: str, process: str) -> tuple[Problem | None, int]:
    """Verify the schedule of ``process`` at ``source`` (node URL, data dir or store URL)."""
    total: list[int] = []
    url = store_url(source)
    stream = _from_url(source, process, total) if url is None else _from_store(url, process, total)
    previous, slot = b"", 0
    with Progress(transient=True, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("verifying", total=None)
        try:
            async for a in stream:
                if total and progress.tasks[task].total is None:
                    progress.update(task, total=total[0])
                if (reason := check_assignment(a, process, previous, slot)) is not None:
                    return (slot, reason), slot
                previous = b64url_decode(a.header.hash_chain)
                slot += 1
                progress.advance(task)
        except (KeyError, ValueError, TypeError, InputError) as exc:
            return (slot, f"unreadable assignment: {exc}"), slot
        except httpx.HTTPError as exc:
            raise ConfigError(f"cannot read the schedule from {source}: {exc}") from exc
    if total and slot != total[0]:
        return (
            slot,
            f"schedule ends at slot {slot - 1}, but the node reports current {total[0] - 1}",
        ), slot
    return None, slot
