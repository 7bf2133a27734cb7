"""Durable push bookkeeping: the signed delivery messages and the pending async jobs.

Exactly-once delivery rests on two facts:

1. Before an outbox entry is scheduled anywhere, the signed message that
   carries it is stored under ``(sender, slot, outbox index)`` (record kind
   ``push-delivery``).  Every later attempt — a retry, a second push of the
   same slot, a job resumed after kill -9 — sends exactly those bytes, so the
   same message id.  (An RSA signature is randomised: signing again would make
   another id, which is why the bytes are kept, not re-made.)
2. A scheduler answers a re-post of an already-assigned message id with the
   existing assignment (``Node.schedule`` here, and a remote aonode's
   ``/schedule`` and ``/push``), never with a second slot.

Signing is serialised per ``(sender, slot)`` within this process, so two
pushes of one slot running at once cannot sign two messages for one entry;
across nodes sharing one store, the record is *added* (kept if present), so
whichever node stored its signed message first, both send that one.
An async push is a ``push-job`` record from the moment it is accepted (before
the 202) until its walk completes.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from aonode.codec import ans104
from aonode.codec.b64 import b64url_decode
from aonode.message import Message
from aonode.store.base import Record, RecordStore
from aonode.wallet import RSAWallet, Wallet

Json = dict[str, Any]

DELIVERY = "push-delivery"
JOB = "push-job"


_NOT_FROM_OUTBOX = frozenset(
    {"from", "owner", "pushed-for", "forwarded-by", "forwarded-for", "cron-task", "cron-owner"}
)


def target_of(out: Json) -> str:
    return str(out.get("Target") or out.get("target") or "")


def _slot_prefix(sender: str, slot: int) -> str:
    return f"{sender}/{slot:012d}/"


def delivery_key(sender: str, slot: int, index: int) -> str:
    """Record key of outbox entry ``index`` (1-based) of ``sender``'s ``slot``."""
    return f"{_slot_prefix(sender, slot)}{index:06d}"


def delivery_tags(
    sender: str, slot: int, origin: str, index: int, out: Json
) -> list[tuple[str, str]]:
    """The tags of a delivery: ao's, the trace back to the sender, then the entry's own."""
    tags: list[tuple[str, str]] = [
        ("Data-Protocol", "ao"),
        ("Variant", "ao.N.1"),
        ("Type", "Message"),
        ("From-Process", sender),
        ("Pushed-From", origin),
        ("From-Slot", str(slot)),
        ("Outbox-Index", str(index)),
    ]
    # the trace above is the only sender a delivery names: keys that would name
    # another (the node signs this, and processes trust the node) are dropped
    seen = {n.lower() for n, _ in tags} | _NOT_FROM_OUTBOX
    raw_tags = out.get("Tags") or []
    for t in raw_tags if isinstance(raw_tags, list) else []:
        if isinstance(t, dict) and "name" in t and "value" in t:
            name, value = str(t["name"]), str(t["value"])
            if name.lower() not in seen:
                tags.append((name, value))
                seen.add(name.lower())
    return tags


def sign_delivery(
    wallet: Wallet, sender: str, slot: int, origin: str, index: int, out: Json
) -> ans104.DataItem:
    """The signed message that delivers one outbox entry.

    The anchor is derived from ``(sender, slot, index)``: a delivery names
    which entry it carries even where the tags were stripped.
    """
    data = out.get("Data", out.get("data", ""))
    body = data.encode() if isinstance(data, str) else str(data or "").encode()
    anchor = hashlib.sha256(f"aonode-push/{sender}/{slot}/{index}".encode()).digest()
    return ans104.sign(
        wallet,
        data=body,
        tags=delivery_tags(sender, slot, origin, index, out),
        target=b64url_decode(target_of(out)),
        anchor=anchor,
    )


@dataclass(frozen=True, slots=True)
class PushJob:
    """An accepted async push of one slot, pending until its walk completes."""

    process: str
    slot: int

    @property
    def key(self) -> str:
        return f"{self.process}/{self.slot:012d}"

    def record(self) -> Record:
        return Record(JOB, self.key, orjson.dumps({"process": self.process, "slot": self.slot}))

    @classmethod
    def from_record(cls, record: Record) -> PushJob:
        doc = orjson.loads(record.value)
        return cls(str(doc["process"]), int(doc["slot"]))


class Ledger:
    """Get-or-create of delivery messages, and the job records, on a :class:`RecordStore`."""

    def __init__(self, store: RecordStore, wallet: Wallet) -> None:
        self._store = store
        self._wallet = wallet
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def deliveries(
        self, sender: str, slot: int, origin: str, entries: Mapping[int, Json]
    ) -> dict[int, Message]:
        """The delivery message of each outbox entry (by index): the stored one, else a new one.

        New ones are durable on return (their writes share group commits).
        """
        prefix = _slot_prefix(sender, slot)
        lock = self._locks.get(prefix)
        if lock is None:
            lock = self._locks[prefix] = asyncio.Lock()
        async with lock:
            have = {
                int(r.key[len(prefix) :]): r.value
                for r in await self._store.records(DELIVERY, prefix)
            }
            found: dict[int, Message] = {}
            signed: dict[int, ans104.DataItem] = {}
            for index, out in entries.items():
                raw = have.get(index)
                if raw is not None:
                    found[index] = Message.from_item(ans104.parse(raw))
                    continue
                signed[index] = await self._sign(sender, slot, origin, index, out)
            # add, not put: a node sharing this store that signed the same entry first
            # wins, and both then send its message (one id, so one delivery)
            kept = await asyncio.gather(
                *(
                    self._store.add_record(Record(DELIVERY, delivery_key(sender, slot, i), it.raw))
                    for i, it in signed.items()
                )
            )
            for (index, item), record in zip(signed.items(), kept, strict=True):
                won = item if record.value == item.raw else ans104.parse(record.value)
                found[index] = Message.from_item(won)
        return found

    async def _sign(
        self, sender: str, slot: int, origin: str, index: int, out: Json
    ) -> ans104.DataItem:
        if isinstance(self._wallet, RSAWallet):  # milliseconds each: off the event loop
            return await asyncio.to_thread(
                sign_delivery, self._wallet, sender, slot, origin, index, out
            )
        return sign_delivery(self._wallet, sender, slot, origin, index, out)

    async def put_job(self, job: PushJob) -> None:
        await self._store.put_record(job.record())

    async def finish_job(self, job: PushJob) -> None:
        await self._store.delete_record(JOB, job.key)

    async def jobs(self) -> list[PushJob]:
        return [PushJob.from_record(r) for r in await self._store.records(JOB)]
