"""``~push@1.0``: deliver a computed slot's outbox, recursively, to local and remote targets.

- :mod:`aonode.push.tree` — the walk and the tree (HyperBEAM's shape), limits;
- :mod:`aonode.push.ledger` — the signed delivery messages and async jobs, durable
  (the exactly-once mechanism is described there);
- :mod:`aonode.push.remote` — where a target is scheduled, and delivering there;
- :mod:`aonode.push.failures` — failed deliveries: logged once, counted, kept;
- :mod:`aonode.push.jobs` — :class:`Pusher`, the node's entry point.
"""

from __future__ import annotations

from aonode.push.host import PushHost
from aonode.push.jobs import Pusher
from aonode.push.limits import PushLimits

__all__ = ["PushHost", "PushLimits", "Pusher"]
