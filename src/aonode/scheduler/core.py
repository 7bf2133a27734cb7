"""The scheduling decision with no I/O: slot, hash chain and timestamp.

:class:`ScheduleState` is the whole of what makes a schedule gap-free and
hash-chained.  It holds the last slot given, the chain value after it and
the timestamp floor; :meth:`ScheduleState.assign` turns the next message id,
the current Arweave block and the wall-clock reading (both given to it, never
read by it) into the next assignment :class:`Header` and advances.  No
sockets, no store, no clock, no asyncio: the actor in ``server.py`` feeds it
and does the I/O, and the property tests drive it directly.

Rules (invariants 1 and 2 of DESIGN.md):

* slots are ``current + 1``: 0, 1, 2, … — the state never skips or repeats;
* ``hash-chain[n] = sha256(hash-chain[n-1] ‖ id(n))``, ``b""`` before slot 0;
* a slot's ``timestamp`` never goes back, even when the wall clock does;
* :meth:`resume` restarts from the newest durable assignment (after a crash
  or a failed write), so what was never stored is given again, never skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from aonode.codec.b64 import b64url_decode, b64url_encode
from aonode.scheduler.assignment import Header
from aonode.scheduler.hashchain import next_link
from aonode.scheduler.timestamp import BlockInfo


@dataclass(slots=True)
class ScheduleState:
    """One process's schedule position (see the module docstring)."""

    process: str
    current: int = -1  # the last slot given; -1 before slot 0
    chain: bytes = b""  # the hash chain after ``current``
    last_timestamp: int = 0  # ms; the floor for the next slot's timestamp

    def resume(self, slot: int | None, hash_chain: str = "", timestamp: int = 0) -> None:
        """Continue after the durable slot ``slot`` (``None``: an empty schedule).

        The timestamp floor only rises: a resume after a failed write must not
        let the next slot's time go back past what was already handed out, and
        a restart takes the stored slot's ``timestamp`` as the floor (a wall
        clock set back while the node was down does not reorder time).
        """
        self.last_timestamp = max(self.last_timestamp, timestamp)
        if slot is None:
            self.current, self.chain = -1, b""
        else:
            self.current, self.chain = slot, b64url_decode(hash_chain)

    def assign(
        self, message_id: str, message_id_bytes: bytes, *, path: str, block: BlockInfo, now_ms: int
    ) -> Header:
        """The header of the next slot for ``message_id``; the state advances past it."""
        slot = self.current + 1
        link = next_link(self.chain, message_id_bytes)
        timestamp = max(now_ms, self.last_timestamp)
        header = Header(
            process=self.process,
            slot=slot,
            block_height=block.height,
            block_hash=block.hash,
            block_timestamp=block.timestamp,
            timestamp=timestamp,
            hash_chain=b64url_encode(link),
            path=path,
            message=message_id,
        )
        self.current, self.chain, self.last_timestamp = slot, link, timestamp
        return header

    @property
    def hash_chain(self) -> str:
        """The chain after ``current``, base64url (``""`` before slot 0)."""
        return b64url_encode(self.chain)
