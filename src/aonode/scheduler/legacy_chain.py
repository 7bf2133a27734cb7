"""The legacy Scheduler Unit's hash chain, for the legacy view of a schedule.

aonode chains assignments as HyperBEAM does (``sha256(prev ‖ message id)``,
see :mod:`aonode.scheduler.hashchain`); that is what it signs and stores.
Tools of the legacy ao network check another chain (research/peers.md, the
legacy SU's ``gen_hash_chain`` and the CU's ``isHashChainValidWith``):

* slot 0: ``sha256(process id)``;
* slot n: ``sha256(assignment id of n-1 ‖ chain of n-1)``

(ids as their 32 raw bytes; the result base64url).  The legacy surface shows
that chain in the ``Hash-Chain`` tag, computed from the assignment ids it
shows (the node's commitments), so a legacy CU's check holds.  It is derived,
never stored: computing it needs every earlier assignment id, so this keeps,
per process, the chain at every ``every``-th slot and at the last slot it
computed.  A reader paging forward (what a CU does) costs one step per slot;
a read far ahead of what was computed walks the schedule once from the
nearest mark.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import OrderedDict
from collections.abc import Sequence

from aonode.codec.b64 import b64url_decode, b64url_encode
from aonode.scheduler.assignment import Assignment
from aonode.store.base import ScheduleReader

_PAGE = 256  # assignments read per store trip while walking


def first_link(process_id: str) -> bytes:
    """The chain of slot 0."""
    return hashlib.sha256(b64url_decode(process_id)).digest()


def next_link(previous_assignment_id: str, previous: bytes) -> bytes:
    """The chain of slot n from slot n-1's assignment id and chain."""
    return hashlib.sha256(b64url_decode(previous_assignment_id) + previous).digest()


class LegacyChains:
    """Memoised legacy chains of the processes of one store."""

    def __init__(self, store: ScheduleReader, *, every: int = 1024, processes: int = 1024) -> None:
        self._store = store
        self._every = every
        self._processes = processes
        # pid → {slot: chain of that slot}: every ``every``-th slot, and the last computed
        self._marks: OrderedDict[str, dict[int, bytes]] = OrderedDict()
        self._last: dict[str, int] = {}  # pid → the slot of its last computed mark

    async def of(self, pid: str, assignments: Sequence[Assignment]) -> dict[int, str]:
        """The legacy ``Hash-Chain`` of each of ``assignments`` (consecutive slots)."""
        if not assignments:
            return {}
        first = assignments[0].slot
        link = await self._at(pid, first)
        out = {first: link}
        for prev, cur in itertools.pairwise(assignments):
            if cur.slot != prev.slot + 1:  # not consecutive: look it up on its own
                link = await self._at(pid, cur.slot)
            else:
                link = next_link(prev.id, link)
                self._mark(pid, cur.slot, link)
            out[cur.slot] = link
        return {slot: b64url_encode(chain) for slot, chain in out.items()}

    async def _at(self, pid: str, slot: int) -> bytes:
        """The chain of ``slot``: from the nearest mark at or below it, walking forward."""
        marks = self._marks.get(pid, {})
        known = max((s for s in marks if s <= slot), default=None)
        if known is None:
            known, link = 0, first_link(pid)
            self._mark(pid, 0, link)
        else:
            link = marks[known]
        while known < slot:
            rows = await self._store.slots(pid, known, slot - 1, _PAGE)
            if not rows or rows[0].assignment.slot != known:
                raise LookupError(f"slot {known} of {pid} is not stored")
            for row in rows:
                link = next_link(Assignment.from_stored(row).id, link)
                known = row.assignment.slot + 1
                self._mark(pid, known, link)
        return link

    def _mark(self, pid: str, slot: int, link: bytes) -> None:
        marks = self._marks.get(pid)
        if marks is None:
            marks = self._marks[pid] = {}
            while len(self._marks) > self._processes:
                evicted, _ = self._marks.popitem(last=False)
                self._last.pop(evicted, None)
        else:
            self._marks.move_to_end(pid)
        last = self._last.get(pid)
        if last is not None and last != slot and last % self._every != 0:
            marks.pop(last, None)  # one "last computed" mark besides the regular ones
        marks[slot] = link
        self._last[pid] = slot
