"""What the dashboard shows live: scheduler actors, compute workers, failing pushes.

Live state is in memory, and in a cluster (``serve --workers N``) each AO
process lives on one worker: its scheduler actor (current slot, queue) and its
compute worker (the slot it has applied).  The dashboard reads a
:class:`LiveView` instead of the node's parts, so the page shows the whole node
wherever its request lands.  :class:`LocalLive` is one OS process's view (a
single-process node, and each worker's own share of a cluster);
``aonode.cluster.dashboard`` asks every worker for its share and merges them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aonode.push.failures import Failures
    from aonode.scheduler.registry import Registry


@dataclass(frozen=True, slots=True)
class Live:
    """A moment of live state: of this node, or merged from the workers that answered."""

    actors: dict[str, tuple[int, int]]  # active process → (current slot, queue), oldest first
    computed: dict[str, int | None]  # loaded compute worker → the slot it is at
    push_failures: dict[str, Any]  # push.failures.Failures.summary()'s shape
    failure_keys: frozenset[str]  # the open failures' delivery keys (to merge without doubles)
    here: int = 0  # the worker that answered
    answered: int = 1  # workers whose state this holds
    of: int = 1  # workers in the node

    def to_json(self) -> dict[str, Any]:
        """One worker's share as it crosses the cluster channel."""
        return {
            "actors": [[pid, slot, queue] for pid, (slot, queue) in self.actors.items()],
            "computed": self.computed,
            "push-failures": self.push_failures,
            "failure-keys": sorted(self.failure_keys),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Live:
        """The share :meth:`to_json` sent."""
        return cls(
            actors={str(pid): (int(slot), int(queue)) for pid, slot, queue in doc["actors"]},
            computed=dict(doc["computed"]),
            push_failures=dict(doc["push-failures"]),
            failure_keys=frozenset(doc["failure-keys"]),
        )


class LiveView(Protocol):
    """Where the dashboard reads live state."""

    async def live(self) -> Live:
        """The live state now."""
        ...


class Loaded(Protocol):
    """The compute workers loaded in one OS process (``ProcessDevice``)."""

    def info(self) -> dict[str, Any]:
        """Each loaded worker's ``at-slot`` (and more), by process id."""
        ...


class LocalLive:
    """The live state of this OS process's parts."""

    def __init__(self, registry: Registry, processes: Loaded, failures: Failures) -> None:
        self.registry = registry
        self.processes = processes
        self.failures = failures

    def now(self) -> Live:
        actors: dict[str, tuple[int, int]] = {}
        for pid in self.registry.processes():
            server = self.registry.find(pid)
            if server is not None:
                actors[pid] = (server.current, int(server.info()["queue"]))
        computed = {pid: w.get("at-slot") for pid, w in self.processes.info().items()}
        return Live(actors, computed, self.failures.summary(), self.failures.open_keys())

    async def live(self) -> Live:
        return self.now()
