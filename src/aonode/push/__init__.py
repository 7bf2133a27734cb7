"""``~push@1.0``: deliver a computed slot's outbox, recursively, to local and remote targets.

- :mod:`aonode.push.tree` — the walk and the tree (HyperBEAM's shape), limits;
- :mod:`aonode.push.ledger` — the signed delivery messages and async jobs, durable
  (the exactly-once mechanism is described there);
- :mod:`aonode.push.remote` — where a target is scheduled, and delivering there;
- :mod:`aonode.push.failures` — failed deliveries: logged once, counted, kept;
- :mod:`aonode.push.jobs` — :class:`Pusher`, the node's entry point.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aonode.push.jobs import Pusher
from aonode.push.tree import PushLimits

if TYPE_CHECKING:
    from aonode.node import Node

__all__ = ["PushLimits", "Pusher", "push_slot"]


async def push_slot(node: Node, pid: str, slot: int, *, result_depth: int = 1) -> dict[str, Any]:
    """Compute ``slot`` of ``pid`` and deliver its outbox recursively (a sync push)."""
    return await node.pusher.push(pid, slot, result_depth=result_depth)
