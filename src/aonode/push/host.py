"""What ``~push@1.0`` needs from the node it runs on, and nothing more.

Push receives a :class:`PushHost` when it is built; the node satisfies it
structurally (``aonode.node.Node``), but push never imports the node: it sees
the store, the node's wallets, the scheduling and process-lookup use cases,
computing a slot and the instruments — the services a walk uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aonode.instrument import Instrument
    from aonode.message import Message
    from aonode.process.runtime.base import Results
    from aonode.scheduler.assignment import Assignment
    from aonode.store.base import Store
    from aonode.wallet import Wallet


class PushHost(Protocol):
    """The services a push walk uses (see the module docstring)."""

    @property
    def store(self) -> Store: ...

    @property
    def wallets(self) -> list[Wallet]: ...

    @property
    def addresses(self) -> list[str]: ...

    @property
    def scheduler_map(self) -> Mapping[str, str]: ...

    @property
    def instruments(self) -> Instrument: ...

    async def compute(self, process_id: str, slot: int) -> Results:
        """The results of ``slot`` of ``process_id`` (404 when the process is unknown).

        Aggressive mode answers a slot (and a push or crank may start) before it
        is durable; this waits for it rather than finding it missing.
        """
        ...

    async def schedule(self, message: Message) -> Assignment:
        """Give ``message`` a slot on its target (a re-post keeps its slot)."""
        ...

    async def process_message(self, process_id: str) -> Message | None:
        """The process definition, or ``None`` when this node does not know it."""
        ...

    async def require_process(self, process_id: str) -> Message:
        """The process definition (404 when unknown)."""
        ...
