"""The legacy ao Scheduler Unit's JSON shapes, drawn from the same schedule.

The legacy network's SU (and the compute units, ``aoconnect`` and HyperBEAM
reading it) see one slot as a ``Message``: ``{"message": MessageInner|null,
"assignment": AssignmentInner}``, where both inner shapes are data items
written ``{id, owner: {address, key}, tags, signature, anchor, target}`` (the
message also carries ``data``).  A page is ``{"page_info": {"has_next_page"},
"edges": [{"cursor", "node": Message}]}``.

The assignment's tags are the legacy ones (``Process, Epoch, Nonce,
Hash-Chain, Block-Height, Timestamp, Data-Protocol, Type, Variant`` and
``Message`` except on the process's own slot 0), rendered from the stored
header: ``Nonce`` is the slot, ``Hash-Chain`` and ``Timestamp`` are the
native values.  ``id``, ``owner`` and ``signature`` are those of the node's
first commitment, which signs the native tag set (``Slot`` rather than
``Nonce``): verify signatures through the HyperBEAM-style surface.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aonode.codec import ans104
from aonode.codec.b64 import b64url_encode
from aonode.message import SignedItem
from aonode.scheduler.assignment import EPOCH, Assignment

LEGACY_VARIANT = "ao.TN.1"
HEIGHT_DIGITS = 12  # the legacy SU zero-pads block heights to 12 digits


def _text_or_none(raw: bytes) -> str | None:
    """Data as the legacy SU shows it: UTF-8 text, else null."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _anchor(raw: bytes, *, b64: bool) -> str | None:
    if not raw:
        return None
    if b64:
        return b64url_encode(raw)
    text = _text_or_none(raw)
    return text if text is not None else b64url_encode(raw)


def owner(item: SignedItem) -> dict[str, str]:
    return {"address": item.owner_address, "key": b64url_encode(item.owner)}


def message_inner(item: SignedItem, *, show_anchor: bool = False) -> dict[str, Any]:
    return {
        "id": item.id,
        "owner": owner(item),
        "data": _text_or_none(item.data),
        "tags": [{"name": n, "value": v} for n, v in item.tags],
        "signature": b64url_encode(item.signature),
        "anchor": _anchor(item.anchor, b64=show_anchor),
        "target": b64url_encode(item.target) if item.target else "",
    }


def legacy_tags(assignment: Assignment, chain: str) -> list[dict[str, str]]:
    """The legacy SU's assignment tags, in its order; ``chain``: the legacy hash chain
    (:mod:`aonode.scheduler.legacy_chain`)."""
    h = assignment.header
    tags = [
        ("Process", h.process),
        ("Epoch", EPOCH),
        ("Nonce", str(h.slot)),
        ("Hash-Chain", chain),
        ("Block-Height", str(h.block_height).zfill(HEIGHT_DIGITS)),
        ("Timestamp", str(h.timestamp)),
        ("Data-Protocol", "ao"),
        ("Type", "Assignment"),
        ("Variant", LEGACY_VARIANT),
    ]
    if h.slot != 0:  # the process's own assignment names no message
        tags.append(("Message", h.message))
    return [{"name": n, "value": v} for n, v in tags]


def assignment_inner(assignment: Assignment, chain: str) -> dict[str, Any]:
    signer: dict[str, str] = {"address": "", "key": ""}
    signature = ""
    if assignment.commitments:  # always, for a stored assignment
        signed = ans104.parse(assignment.commitments[0].raw)
        signer, signature = owner(signed), b64url_encode(signed.signature)
    return {
        "id": assignment.id,
        "owner": signer,
        "tags": legacy_tags(assignment, chain),
        "signature": signature,
        "anchor": None,
        "target": "",
    }


def message(assignment: Assignment, chain: str, *, show_anchor: bool = False) -> dict[str, Any]:
    """One slot as the legacy ``Message``."""
    return {
        "message": message_inner(assignment.body.item, show_anchor=show_anchor),
        "assignment": assignment_inner(assignment, chain),
    }


def page(
    assignments: list[Assignment],
    chains: Mapping[int, str],
    *,
    has_next_page: bool,
    nonce_mode: bool,
    show_anchor: bool,
) -> dict[str, Any]:
    """A ``PaginatedMessages`` page; cursors are timestamps, or slots in nonce mode."""
    return {
        "page_info": {"has_next_page": has_next_page},
        "edges": [
            {
                "cursor": str(a.slot if nonce_mode else a.header.timestamp),
                "node": message(a, chains[a.slot], show_anchor=show_anchor),
            }
            for a in assignments
        ],
    }


def process_inner(first: Assignment) -> dict[str, Any]:
    """``GET /processes/{pid}``: the process item with its slot-0 block and timestamp."""
    item = first.body.item
    doc = message_inner(item)
    return {
        "process_id": item.id,
        "block": str(first.header.block_height).zfill(HEIGHT_DIGITS),
        "owner": doc["owner"],
        "tags": doc["tags"],
        "timestamp": first.header.timestamp,
        "data": doc["data"],
        "anchor": doc["anchor"],
        "signature": doc["signature"],
        "target": doc["target"],
    }
