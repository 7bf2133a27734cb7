"""The push walk: compute a slot, deliver its outbox, recurse (HyperBEAM's tree).

Each outbox entry becomes a message to its target, signed by this node and
tagged ``From-Process`` (the sender), ``Pushed-From`` (the message whose
computation produced it), ``From-Slot`` and ``Outbox-Index``, so a delivery
can be traced back.  It is scheduled on the target — here, or on the node
that schedules it (:mod:`aonode.push.remote`) — computed, and its own outbox
pushed in turn, until no more messages are produced or a depth / message
limit cuts the tree, which then says so where it was cut.

The tree has HyperBEAM's shape: ``{"process", "slot", "results"?, "<n>":
{"id", "target", "slot", "resulted-in": <tree>} | {"response": "error",
"target", "reason", "status"}}``; ``results`` appear at depths below
``result-depth``.  Delivery messages come from the :class:`Ledger`, so
pushing a slot again re-sends the same messages, which keep their slots: the
second push answers with the tree of the first, and nothing is delivered
twice.  An entry's ``status`` is part of the tree (as in HyperBEAM), not an
HTTP answer of this node.  An entry for another node that failed also says
why in ``failure`` (a reason of :mod:`aonode.push.failures`, which reports it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aonode.errors import (
    AONodeError,
    Conflict,
    Expired,
    InputError,
    NotFound,
    Overloaded,
    RemoteError,
    StoreError,
    Unreachable,
)
from aonode.message import Message
from aonode.push.failures import Failure, Failures, reason_of
from aonode.push.ledger import Ledger, target_of
from aonode.push.limits import PushLimits
from aonode.push.remote import Remote, Route

if TYPE_CHECKING:
    from aonode.push.host import PushHost

Json = dict[str, Any]

# Failures that may pass: an async push waits and walks again instead of reporting them.
TRANSIENT: tuple[type[AONodeError], ...] = (Unreachable, Overloaded, Expired, StoreError)


class _Walk:
    """The state one push shares across its tree."""

    __slots__ = ("background", "budget", "result_depth")

    def __init__(self, result_depth: int, budget: int, background: bool) -> None:
        self.result_depth = result_depth
        self.budget = budget
        self.background = background


def _status(exc: AONodeError) -> int:
    """The ``status`` of an error entry (tree data, in HyperBEAM's vocabulary)."""
    if isinstance(exc, RemoteError):
        return exc.status
    for cls, status in ((NotFound, 404), (InputError, 400), (Conflict, 409)):
        if isinstance(exc, cls):
            return status
    return 503 if isinstance(exc, Overloaded | Expired) else 500


def error_entry(target: str, exc: AONodeError) -> Json:
    entry: Json = {
        "response": "error",
        "status": _status(exc),
        "target": target,
        "reason": exc.message,
    }
    if isinstance(exc, RemoteError):
        entry["node"] = exc.node
        entry["attempts"] = exc.attempts
    return entry


def deliveries_in(tree: Json) -> int:
    """How many deliveries a (remote) subtree made."""
    count = 0
    for key, value in tree.items():
        if key.isdigit() and isinstance(value, dict) and "id" in value:
            count += 1
            child = value.get("resulted-in")
            if isinstance(child, dict):
                count += deliveries_in(child)
    return count


class Walker:
    """Runs push walks over one node (see the module docstring)."""

    def __init__(
        self,
        node: PushHost,
        ledger: Ledger,
        remote: Remote,
        limits: PushLimits,
        failures: Failures,
    ) -> None:
        self._node = node
        self._ledger = ledger
        self._remote = remote
        self.limits = limits
        self._failures = failures

    async def push(
        self,
        pid: str,
        slot: int,
        *,
        result_depth: int = 1,
        depth: int = 0,
        budget: int | None = None,
        background: bool = False,
    ) -> Json:
        """Compute ``slot`` of ``pid`` and deliver its outbox recursively.

        ``depth``/``budget`` continue a walk another node began.  With
        ``background`` (an async job) a transient failure raises, so the job
        can retry, instead of becoming an error entry.
        """
        limit = self.limits.max_messages
        left = limit if budget is None else max(0, min(budget, limit))
        return await self._push(pid, slot, max(depth, 0), _Walk(result_depth, left, background))

    async def _push(self, pid: str, slot: int, depth: int, walk: _Walk) -> Json:
        node = self._node
        results = await node.compute(pid, slot)  # waits until durable (aggressive mode)
        tree: Json = {"process": pid, "slot": slot}
        if depth < walk.result_depth:
            tree["results"] = results.to_json()
        if not results.outbox:
            return tree
        entries: dict[int, Json] = {}
        planned: dict[int, tuple[str, Route, Json]] = {}
        limits = self.limits
        for index, out in enumerate(results.outbox, start=1):
            target = target_of(out)
            if not target:
                entries[index] = {
                    "response": "error",
                    "status": 404,
                    "outbox-index": index,
                    "reason": "Target process not available.",
                }
                continue
            if depth + 1 > limits.max_depth or walk.budget <= 0:
                entries[index] = {
                    "response": "error",
                    "status": 508,
                    "target": target,
                    "reason": f"push limit reached (depth {limits.max_depth}, "
                    f"{limits.max_messages} messages): the delivery was not made",
                }
                continue
            try:
                route = await self._remote.route(target)
            except NotFound as exc:
                await self._failed(pid, slot, index, target, exc, routing=True)
                entries[index] = {
                    "response": "error",
                    "status": 404,
                    "target": target,
                    "reason": "Could not access target process!",
                    "failure": "no-route",
                }
                continue
            except Unreachable as exc:
                reason = await self._failed(pid, slot, index, target, exc, routing=True)
                if walk.background:
                    raise
                entries[index] = {**error_entry(target, exc), "failure": reason}
                continue
            walk.budget -= 1
            planned[index] = (target, route, out)
        if planned:
            stored = await node.store.slots(pid, slot, slot, 1)
            origin = stored[0].assignment.message if stored else ""
            messages = await self._ledger.deliveries(
                pid, slot, origin, {i: out for i, (_, _, out) in planned.items()}
            )
            for index, (target, route, _) in planned.items():
                entries[index] = await self._deliver(
                    (pid, slot, index), target, route, messages[index], depth + 1, walk
                )
                node.instruments.push_delivered(route.url is None, entries[index])
        for index in sorted(entries):
            tree[str(index)] = entries[index]
        return tree

    async def _failed(
        self,
        pid: str,
        slot: int,
        index: int,
        target: str,
        exc: AONodeError,
        *,
        routing: bool = False,
    ) -> str:
        reason = reason_of(exc, routing=routing)
        await self._failures.report(Failure.of(pid, slot, index, target, exc, reason))
        return reason

    async def _deliver(
        self,
        entry_of: tuple[str, int, int],
        target: str,
        route: Route,
        message: Message,
        depth: int,
        walk: _Walk,
    ) -> Json:
        """Deliver one entry (``entry_of`` = sender, slot, outbox index) and push on."""
        try:
            if route.url is None:
                assignment = await self._node.schedule(message)  # a re-post keeps its slot
                child = await self._push(target, assignment.slot, depth, walk)
                return {
                    "id": message.id,
                    "target": target,
                    "slot": assignment.slot,
                    "resulted-in": child,
                }
            answer = await self._remote.deliver(
                route.url,
                target,
                message,
                depth=depth,
                result_depth=walk.result_depth,
                budget=walk.budget,
                attempts=1 if walk.background else self.limits.remote_attempts,
            )
        except AONodeError as exc:
            failed = error_entry(target, exc)
            if route.url is not None:  # a local target's own errors are its entries' business
                failed["failure"] = await self._failed(*entry_of, target, exc)
            if walk.background and isinstance(exc, TRANSIENT):
                raise
            return failed
        await self._failures.delivered(*entry_of)
        entry: Json = {
            "id": message.id,
            "target": target,
            "slot": answer.tree.get("slot"),
            "node": route.url,
        }
        if answer.status == 202:
            entry["push-mode"] = "async"
        else:
            walk.budget -= deliveries_in(answer.tree)
            entry["resulted-in"] = answer.tree
        return entry
