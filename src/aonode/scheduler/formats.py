"""The JSON shapes a schedule is served in.

* the native page (API.md): ``{"type":"schedule", "process", "assignments",
  "continues", "next", "timestamp", "block-height", "block-hash"}``;
* ``application/aos-2`` (HyperBEAM's ``dev_scheduler_formats``), which AO
  tooling such as wao's ``HB`` client reads: ``page_info`` + ``edges`` with
  each edge's message and assignment in the legacy ``{Id, Owner, Tags, …}``
  shape.
"""

from __future__ import annotations

import time
from typing import Any

from aonode.codec import ans104
from aonode.codec.b64 import b64url_encode
from aonode.message import SignedItem
from aonode.scheduler.assignment import Assignment
from aonode.scheduler.timestamp import BlockInfo

AOS2 = "application/aos-2"


def _page_time(assignments: list[Assignment], block: BlockInfo) -> tuple[int, int, str]:
    """A page's time fields: its last assignment's (HyperBEAM's rule), else now."""
    if assignments:
        last = assignments[-1].header
        return last.timestamp, last.block_height, last.block_hash
    return time.time_ns() // 1_000_000, block.height, block.hash


def page_json(
    process: str,
    assignments: list[Assignment],
    *,
    continues: bool,
    next_slot: int | None,
    block: BlockInfo,
) -> dict[str, Any]:
    ts, height, bhash = _page_time(assignments, block)
    return {
        "type": "schedule",
        "process": process,
        "assignments": [a.to_json() for a in assignments],
        "continues": continues,
        "next": next_slot,
        "timestamp": ts,
        "block-height": height,
        "block-hash": bhash,
    }


def text_or_b64(raw: bytes) -> str:
    """Data and anchors as AO tooling shows them: UTF-8 text, else base64url."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return b64url_encode(raw)


def header_case(name: str) -> str:
    return "-".join(part[:1].upper() + part[1:] for part in name.split("-"))


def legacy_item(item: SignedItem, *, from_process: str | None = None) -> dict[str, Any]:
    """A signed message (ANS-104 or httpsig) in the ``{Id, Anchor, Owner, From, Tags, …}`` shape."""
    owner = item.owner_address
    return {
        "Id": item.id,
        "Anchor": text_or_b64(item.anchor) if item.anchor else "",
        "Owner": owner,
        "From": from_process or owner,
        "Tags": [{"name": n, "value": v} for n, v in item.tags],
        "Target": b64url_encode(item.target) if item.target else "",
        "Data": text_or_b64(item.data),
        "Signature": b64url_encode(item.signature) if len(item.signature) == 512 else "",
    }


def aos2_edge(assignment: Assignment) -> dict[str, Any]:
    body = assignment.body
    message = legacy_item(body.item, from_process=body.keys.get("from-process"))
    if assignment.commitments:
        commitment = ans104.parse(assignment.commitments[0].raw)
        record = legacy_item(commitment)
    else:  # pragma: no cover - every stored assignment is committed
        record = {"Id": "", "Tags": []}
    record["Tags"] = [{"name": header_case(n), "value": v} for n, v in assignment.header.tags()]
    return {"cursor": assignment.slot, "node": {"message": message, "assignment": record}}


def aos2_page(
    process: str, assignments: list[Assignment], *, continues: bool, block: BlockInfo
) -> dict[str, Any]:
    ts, height, bhash = _page_time(assignments, block)
    return {
        "page_info": {
            "process": process,
            "has_next_page": continues,
            "timestamp": str(ts),
            "block-height": str(height),
            "block-hash": bhash,
        },
        "edges": [aos2_edge(a) for a in assignments],
    }
