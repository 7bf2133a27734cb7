"""What the HTTP layer is handed: the node's use cases and parts, named one by one.

The node is the composition root (``aonode.node``): it builds every part and
owns the start/stop order.  The web layer never sees it; it receives a
:class:`Services` (``node.services()``) and reaches nothing else.  Scheduling
is typed by the :class:`Scheduling` protocol, so whichever object holds the
scheduling use case (the node today, a scheduler service tomorrow) fits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aonode.config import NodeConfig
    from aonode.cron.task import Caller, CronTask, TaskType
    from aonode.instrument import Instrument
    from aonode.live import LiveView
    from aonode.message import Message
    from aonode.process.runtime.base import Json, Results
    from aonode.push import Pusher
    from aonode.quotas import Quotas
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


class Computing(Protocol):
    """The compute use cases of one process (its worker, here or on another core)."""

    async def compute(self, slot: int) -> Results:
        """The results of ``slot``."""
        ...

    async def now(self) -> tuple[int, Results]:
        """The latest slot and its results."""
        ...

    async def dryrun(self, msg: Json) -> tuple[int, Results]:
        """``msg`` run on the latest state, nothing kept."""
        ...

    async def snapshot(self) -> tuple[int, bytes]:
        """The runtime's state image at its latest snapshot."""
        ...


class Processes(Protocol):
    """The process device as the routes use it: a process's compute use cases."""

    async def worker(self, process: Message) -> Computing:
        """Where ``process`` computes (started when it is not yet)."""
        ...

    def info(self) -> dict[str, Any]:
        """The workers loaded in this OS process (the dashboard)."""
        ...


class Timers(Protocol):
    """The cron use cases the routes call (``~cron@1.0``)."""

    def is_operator(self, token: str) -> bool:
        """``token`` is the operator's."""
        ...

    async def add(
        self, type_: TaskType, params: Iterable[tuple[str, str]], caller: Caller
    ) -> CronTask:
        """Create and durably store a task."""
        ...

    async def cancel(self, task_id: str, caller: Caller) -> None:
        """Stop a task."""
        ...

    async def tasks(self) -> list[dict[str, Any]]:
        """Every task, as listed."""
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
    processes: Processes
    pusher: Pusher
    cron: Timers
    verifier: Verifier
    store: Store
    registry: Registry  # the live scheduler actors of this OS process
    timestamps: TimestampSource
    instruments: Instrument
    metrics: Callable[[], Awaitable[bytes]]  # the Prometheus exposition (a cluster's: summed)
    status: Callable[[], Awaitable[dict[str, Any]]]
    identity: Identity
    config: NodeConfig  # the limits: body/header sizes, quotas, page and push limits
    live: LiveView  # what the dashboard shows live (a cluster's: every worker's, merged)
    quotas: Quotas | None = None  # None: in this process, from config (a cluster's: shared)
