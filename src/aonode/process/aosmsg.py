"""Assignments → the aos-shaped ``msg`` and ``env`` a runtime evaluates.

The shape is the one AO's compute units build for aos (json-iface), so the
Lua runtimes and the WASM stack see the same thing.  Everything here comes
from the signed body and the assignment: nothing from the wall clock.

The message carries its tags as the sender wrote them, in ``Tags`` only, as
the legacy CU hands them: aos itself title-cases names (``action`` →
``Action``) and lifts tags to keys.  Copying tags to keys here, before aos
normalises, made a lowercase tag reach a handler under another name than on
the network.  ``Target`` is the message's own target (the process it was
signed for), so aos's ``ao.isAssignment`` can tell an assigned message from
one sent to this process.
"""

from __future__ import annotations

from typing import Any

from aonode.message import Message
from aonode.process.runtime.base import MESSAGE_FIELDS
from aonode.scheduler.assignment import Assignment
from aonode.scheduler.formats import text_or_b64

Json = dict[str, Any]

_RESERVED = frozenset(MESSAGE_FIELDS)  # a tag may not overwrite a message field


def _with_tags(doc: Json, tags: tuple[tuple[str, str], ...]) -> Json:
    for name, value in tags:
        if name not in _RESERVED and name not in doc:
            doc[name] = value
    return doc


def process_env(process: Message) -> Json:
    item = process.item
    proc: Json = {
        "Id": process.id,
        "Owner": process.signer,
        "Tags": [{"name": n, "value": v} for n, v in item.tags],
        "Module": process.keys.get("module"),
        "Data": text_or_b64(item.data),
    }
    return {"Process": _with_tags(proc, item.tags)}


def message_json(
    body: Message,
    *,
    process_id: str,
    slot: int,
    timestamp: int,
    block_height: int,
    hash_chain: str,
    module: str | None,
) -> Json:
    item = body.item
    signer = body.signer  # a hash of the owner: once
    doc: Json = {
        "Id": body.id,
        "Owner": signer,
        "From": body.keys.get("from-process") or signer,
        "Target": body.target or process_id,
        "Anchor": text_or_b64(item.anchor) if item.anchor else "",
        "Data": text_or_b64(item.data),
        "Tags": [{"name": n, "value": v} for n, v in item.tags],
        "Timestamp": timestamp,
        "Block-Height": block_height,
        "Epoch": 0,
        "Nonce": slot,
        "Hash-Chain": hash_chain,
        "Cron": False,
        "Module": module,
    }
    return doc


def from_assignment(assignment: Assignment, process: Message) -> Json:
    h = assignment.header
    return message_json(
        assignment.body,
        process_id=h.process,
        slot=h.slot,
        timestamp=h.timestamp,
        block_height=h.block_height,
        hash_chain=h.hash_chain,
        module=process.keys.get("module"),
    )
