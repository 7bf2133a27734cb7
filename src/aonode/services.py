"""What the HTTP layer is handed: the node's use cases and parts, named one by one.

The node is the composition root (``aonode.node``): it builds every part and
owns the start/stop order.  The web layer never sees it; it receives a
:class:`Services` (``node.services()``) and reaches nothing else.  Scheduling
is typed by the :class:`Scheduling` protocol, so whichever object holds the
scheduling use case (the node today, a scheduler service tomorrow) fits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aonode.config import NodeConfig
    from aonode.cron.timer import Cron
    from aonode.instrument import Instrument
    from aonode.message import Message
    from aonode.process.device import ProcessDevice
    from aonode.push import Pusher
    from aonode.scheduler.assignment import Assignment
    from aonode.scheduler.registry import Registry
    from aonode.scheduler.timestamp import TimestampSource
    from aonode.store import Store
    from aonode.verifier import Verifier


class Page(Protocol):
    """One page of a process's schedule."""

    @property
    def process(self) -> str: ...

    @property
    def assignments(self) -> Sequence[Assignment]: ...

    @property
    def continues(self) -> bool: ...

    @property
    def next(self) -> int | None: ...


class Scheduling(Protocol):
    """The scheduling use case: give a message its slot, read the schedule back."""

    async def schedule(
        self,
        message: Message,
        *,
        path: str = "compute",
        query_target: str | None = None,
        assign_to: str | None = None,
    ) -> Assignment:
        """A slot for ``message`` (a re-post keeps its slot)."""
        ...

    async def process_message(self, process_id: str) -> Message | None:
        """The process definition, or ``None`` when unknown here."""
        ...

    async def require_process(self, process_id: str) -> Message:
        """The process definition (404 when unknown)."""
        ...

    async def schedule_page(
        self, process_id: str, first: int = 0, last: int | None = None, limit: int | None = None
    ) -> Page:
        """Slots ``first..last`` of the schedule, at most ``limit`` (capped by the node)."""
        ...

    async def slot_info(self, process_id: str) -> dict[str, Any]:
        """The current slot, hash chain, block and committing addresses."""
        ...


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the node is: its main address, every address it signs with, its URL."""

    address: str
    addresses: list[str]
    url: str


@dataclass(frozen=True, slots=True)
class Services:
    """Everything the web layer uses (see the module docstring)."""

    scheduling: Scheduling
    processes: ProcessDevice
    pusher: Pusher
    cron: Cron
    verifier: Verifier
    store: Store
    registry: Registry  # the live scheduler actors (the dashboard's queue depths)
    timestamps: TimestampSource
    instruments: Instrument
    metrics: Callable[[], bytes]  # the Prometheus exposition
    status: Callable[[], Awaitable[dict[str, Any]]]
    identity: Identity
    config: NodeConfig  # the limits: body/header sizes, quotas, page and push limits
