"""What every conformance case shares: the store fixtures and small helpers.

A message's content follows from its id (content addressing), and an appended
slot's every field follows from ``(process, slot, message)``, so a test can say
what a read must return without keeping what it wrote.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import pytest

from aonode.errors import IntegrityError
from aonode.store.base import AssignmentRecord, MessageRecord, Store, StoredSlot

StoreFactory = Callable[[str], Store]
"""``factory(name)``: a new, unopened store for location ``name``.  Within one
test the same name reaches the same data (that is how reopening is tested);
distinct names are independent and empty at first use."""

EVERYTHING = 2**62  # a "last" / "limit" no schedule reaches


def message(mid: str) -> MessageRecord:
    """A message whose content follows from its id, as content addressing requires."""
    return MessageRecord(mid, b"raw:" + mid.encode())


def slot_of(process: str, slot: int, mid: str | None = None) -> StoredSlot:
    """What ``append`` receives and ``slots`` must give back for one slot."""
    mid = f"{process}/{slot}" if mid is None else mid
    document = f'{{"process":"{process}","slot":{slot},"message":"{mid}"}}'.encode()
    assignment = AssignmentRecord(process, slot, mid, f"chain:{process}:{slot}:{mid}", document)
    return StoredSlot(assignment, message(mid))


async def append(store: Store, process: str, slot: int, mid: str | None = None) -> StoredSlot:
    stored = slot_of(process, slot, mid)
    await store.append(stored.assignment, stored.body)
    return stored


async def schedule(store: Store, process: str) -> list[StoredSlot]:
    return await store.slots(process, 0, EVERYTHING, EVERYTHING)


def outcomes(results: list[BaseException | None]) -> list[str]:
    """``ok`` / ``integrity`` / the unexpected exception, for one readable assert."""
    return [
        "ok" if r is None else "integrity" if isinstance(r, IntegrityError) else repr(r)
        for r in results
    ]


async def settle(calls: Iterable[Awaitable[object]]) -> list[BaseException | None]:
    """Run ``calls`` concurrently, started in list order (gather keeps that order)."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    return [r if isinstance(r, BaseException) else None for r in results]


class Conformance:
    """Base of every role's case: the ``store`` fixture over the backend's factory."""

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        raise NotImplementedError("the backend's test class provides store_factory")

    @pytest.fixture
    async def store(self, store_factory: StoreFactory) -> AsyncIterator[Store]:
        store = store_factory("main")
        await store.open()
        yield store
        await store.close()
