"""The scheduling use case of one cluster worker: its own processes here, the rest forwarded.

Every AO process has one owner (:func:`~aonode.cluster.shard.shard_of`), and
only the owner runs its scheduler actor.  Whatever does not depend on the
process — reading HTTP, parsing the body, verifying the client's signature —
has already happened on the worker the request landed on; only the slot
decision travels: the verified message's raw bytes go to the owner in one
channel call, the signed assignment's document comes back, and the assignment
is rebuilt here around the message this worker already holds.  Reads
(schedule pages, process definitions) come from the shared store, wherever
the request landed; ``slot_info`` goes to the owner, whose actor knows the
current slot before the store does (aggressive mode).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

import orjson

from aonode.cluster.channel import Handler, Link
from aonode.cluster.shard import shard_of
from aonode.codec import ans104
from aonode.message import Message
from aonode.scheduler.assignment import Assignment, Commitment, Header
from aonode.services import Page, Scheduling
from aonode.store.base import MessageRecord

_HEAD = struct.Struct("!I")


def encode_schedule(
    message: Message, path: str, query_target: str | None, assign_to: str | None
) -> bytes:
    """A forwarded ``schedule`` call: its options as JSON, then the message as it arrived.

    An ANS-104 item's tags travel decoded beside it: the owner trusts this
    worker's parse (one node, one trust domain) instead of decoding them again.
    """
    record = message.record()
    opts: dict[str, Any] = {
        "path": path,
        "target": query_target,
        "assign-to": assign_to,
        "codec": record.codec,
    }
    if isinstance(message.item, ans104.DataItem):
        opts["tags"] = message.item.tags
    head = orjson.dumps(opts)
    return _HEAD.pack(len(head)) + head + record.raw


def decode_schedule(payload: bytes) -> tuple[Message, dict[str, Any]]:
    """The message (not verified again: the worker it reached verified it) and options."""
    (n,) = _HEAD.unpack_from(payload)
    opts: dict[str, Any] = orjson.loads(payload[_HEAD.size : _HEAD.size + n])
    raw = payload[_HEAD.size + n :]
    tags = opts.pop("tags", None)
    if tags is not None:
        return Message.from_item(ans104.parse_trusted(raw, tags)), opts
    message = Message.from_record(MessageRecord(id="", raw=raw, codec=opts["codec"]))
    return message, opts


def encode_assignment(assignment: Assignment) -> bytes:
    """The owner's answer: a small summary, the signed document, each commitment's raw item.

    The summary (the header's fields and the commitments' committer and id) spares
    the caller parsing the document, whose base64 commitments are most of its
    bytes; the raw items travel as bytes so the caller decodes no base64 either.
    """
    h = assignment.header
    fields: tuple[object, ...] = (h.process, h.slot, h.block_height, h.block_hash)
    fields += (h.block_timestamp, h.timestamp, h.hash_chain, h.path, h.message)  # Header's order
    summary = orjson.dumps([fields, [[c.committer, c.id] for c in assignment.commitments]])
    parts = [_HEAD.pack(len(summary)), summary, _HEAD.pack(len(assignment.document))]
    parts.append(assignment.document)
    for c in assignment.commitments:
        parts += (_HEAD.pack(len(c.raw)), c.raw)
    return b"".join(parts)


def assignment_from(reply: bytes, body: Message) -> Assignment:
    """The assignment :func:`encode_assignment` sent, around the message it assigns."""
    (n,) = _HEAD.unpack_from(reply)
    at = _HEAD.size + n
    fields, committed = orjson.loads(reply[_HEAD.size : at])
    (n,) = _HEAD.unpack_from(reply, at)
    document = reply[at + _HEAD.size : at + _HEAD.size + n]
    at += _HEAD.size + n
    commitments = []
    for committer, item_id in committed:
        (size,) = _HEAD.unpack_from(reply, at)
        at += _HEAD.size
        commitments.append(Commitment(committer=committer, id=item_id, raw=reply[at : at + size]))
        at += size
    return Assignment(
        header=Header(*fields), commitments=tuple(commitments), body=body, document=document
    )


class ShardedScheduling:
    """:class:`~aonode.services.Scheduling` for worker ``index`` of ``count``."""

    def __init__(
        self, local: Scheduling, index: int, count: int, peers: Mapping[int, Link]
    ) -> None:
        self.local = local
        self.index = index
        self.count = count
        self.peers = peers

    def owner(self, process_id: str) -> int:
        return shard_of(process_id, self.count)

    async def schedule(
        self,
        message: Message,
        *,
        path: str = "compute",
        query_target: str | None = None,
        assign_to: str | None = None,
    ) -> Assignment:
        pid = assign_to or message.process_id(query_target)
        owner = self.index if pid is None else self.owner(pid)
        if owner == self.index:  # also a message naming no process: the local 400
            return await self.local.schedule(
                message, path=path, query_target=query_target, assign_to=assign_to
            )
        payload = encode_schedule(message, path, query_target, assign_to)
        return assignment_from(await self.peers[owner].call("schedule", payload), message)

    async def process_message(self, process_id: str) -> Message | None:
        return await self.local.process_message(process_id)

    async def require_process(self, process_id: str) -> Message:
        return await self.local.require_process(process_id)

    async def schedule_page(
        self, process_id: str, first: int = 0, last: int | None = None, limit: int | None = None
    ) -> Page:
        return await self.local.schedule_page(process_id, first, last, limit)

    async def slot_info(self, process_id: str) -> dict[str, Any]:
        owner = self.owner(process_id)
        if owner == self.index:
            return await self.local.slot_info(process_id)
        info: dict[str, Any] = await self.peers[owner].call_json("slot-info", process_id)
        return info


def handlers(local: Scheduling) -> dict[str, Handler]:
    """What an owner answers to the calls :class:`ShardedScheduling` forwards."""

    async def schedule(payload: bytes) -> bytes:
        message, opts = decode_schedule(payload)
        assignment = await local.schedule(
            message, path=opts["path"], query_target=opts["target"], assign_to=opts["assign-to"]
        )
        return encode_assignment(assignment)

    async def slot_info(payload: bytes) -> bytes:
        return orjson.dumps(await local.slot_info(orjson.loads(payload)))

    return {"schedule": schedule, "slot-info": slot_info}
