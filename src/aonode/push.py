"""``~push@1.0``: deliver a computed slot's outbox, recursively (local targets).

Each outbox message becomes a new message to its target, signed by this node
and tagged ``From-Process`` (the sender), ``Pushed-From`` (the message whose
computation produced it) and ``From-Slot``, so a delivery can be traced back.
It is scheduled on the target, computed, and its own outbox pushed in turn,
until no more messages are produced — or a configured depth / message limit
cuts the tree, which then says so where it was cut.

The tree has HyperBEAM's shape: ``{"process", "slot", "results"?, "<n>":
{"id", "target", "slot", "resulted-in": <tree>} | {"response": "error",
"target", "reason", "status"}}``; ``result-depth`` decides down to which depth
``results`` are included.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aonode.codec import ans104
from aonode.codec.b64 import b64url_decode
from aonode.errors import AONodeError
from aonode.message import Message

if TYPE_CHECKING:
    from aonode.node import Node

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class PushLimits:
    max_depth: int = 32
    max_messages: int = 1000


class _Budget:
    def __init__(self, limit: int) -> None:
        self.left = limit


def outbox_item(node: Node, sender: str, slot: int, origin: str, out: Json) -> Message:
    """The signed message that delivers one outbox entry."""
    target = str(out.get("Target") or out.get("target") or "")
    tags: list[tuple[str, str]] = [
        ("Data-Protocol", "ao"),
        ("Variant", "ao.N.1"),
        ("Type", "Message"),
        ("From-Process", sender),
        ("Pushed-From", origin),
        ("From-Slot", str(slot)),
    ]
    seen = {n.lower() for n, _ in tags}
    raw_tags = out.get("Tags") or []
    for t in raw_tags if isinstance(raw_tags, list) else []:
        if isinstance(t, dict) and "name" in t and "value" in t:
            name, value = str(t["name"]), str(t["value"])
            if name.lower() not in seen:
                tags.append((name, value))
                seen.add(name.lower())
    data = out.get("Data", out.get("data", ""))
    body = data.encode() if isinstance(data, str) else str(data or "").encode()
    return Message.from_item(
        ans104.sign(
            node.wallets[0],
            data=body,
            tags=tags,
            target=b64url_decode(target),
            anchor=os.urandom(32),
        )
    )


async def push_slot(
    node: Node, pid: str, slot: int, *, result_depth: int = 1, limits: PushLimits | None = None
) -> Json:
    """Compute ``slot`` of ``pid`` and deliver its outbox recursively."""
    limits = limits or PushLimits()
    return await _push(node, pid, slot, 0, result_depth, limits, _Budget(limits.max_messages))


async def _push(
    node: Node,
    pid: str,
    slot: int,
    depth: int,
    result_depth: int,
    limits: PushLimits,
    budget: _Budget,
) -> Json:
    process = await node.require_process(pid)
    worker = await node.processes.worker(process)
    results = await worker.compute(slot)
    tree: Json = {"process": pid, "slot": slot}
    if depth < result_depth:
        tree["results"] = results.to_json()
    stored = await node.store.slots(pid, slot, slot, 1)
    origin = stored[0].assignment.message if stored else ""
    for index, out in enumerate(results.outbox, start=1):
        target = str(out.get("Target") or out.get("target") or "")
        if not target:
            tree[str(index)] = {
                "response": "error",
                "status": 404,
                "outbox-index": index,
                "reason": "Target process not available.",
            }
            continue
        if depth + 1 > limits.max_depth or budget.left <= 0:
            tree[str(index)] = {
                "response": "error",
                "status": 508,
                "target": target,
                "reason": f"push limit reached (depth {limits.max_depth}, "
                f"{limits.max_messages} messages)",
            }
            continue
        if await node.process_message(target) is None:
            tree[str(index)] = {
                "response": "error",
                "status": 404,
                "target": target,
                "reason": "Could not access target process!",
            }
            continue
        budget.left -= 1
        try:
            message = outbox_item(node, pid, slot, origin, out)
            assignment = await node.schedule(message)
            child = await _push(
                node, target, assignment.slot, depth + 1, result_depth, limits, budget
            )
        except AONodeError as exc:
            tree[str(index)] = {
                "response": "error",
                "status": 500,
                "target": target,
                "reason": exc.message,
            }
            continue
        tree[str(index)] = {
            "id": message.id,
            "target": target,
            "slot": assignment.slot,
            "resulted-in": child,
        }
    return tree
