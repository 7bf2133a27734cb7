"""The :class:`~aonode.store.base.StoreLifecycle` role: close drains, then refuses writes."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import pytest

from aonode.errors import StoreUnavailable
from aonode.store.conformance.helpers import (
    Conformance,
    StoreFactory,
    append,
    message,
    outcomes,
    schedule,
    settle,
    slot_of,
)


class LifecycleConformance(Conformance):
    """What ``open`` / ``close`` promise about queued and later writes."""

    async def test_close_drains_pending_appends(self, store_factory: StoreFactory) -> None:
        store = store_factory("drain")
        await store.open()
        calls: list[Awaitable[Any]] = [append(store, f"p{n % 4}", n // 4) for n in range(100)]
        calls.append(store.put_message(message("late")))
        # close() is started after every append is queued and must wait for them.
        results = await settle([*calls, store.close()])
        assert outcomes(results) == ["ok"] * 102
        again = store_factory("drain")
        await again.open()
        try:
            for p in range(4):
                assert await schedule(again, f"p{p}") == [slot_of(f"p{p}", n) for n in range(25)]
            assert await again.get_message("late") == message("late")
        finally:
            await again.close()

    async def test_write_after_close_raises_store_error(self, store_factory: StoreFactory) -> None:
        store = store_factory("closed")
        await store.open()
        await append(store, "p", 0)
        await store.close()
        # Retryable (503 at the HTTP boundary): a node shutting down is not a server bug.
        with pytest.raises(StoreUnavailable):
            await append(store, "p", 1)
        with pytest.raises(StoreUnavailable):
            await store.put_message(message("m"))
