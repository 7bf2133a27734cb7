"""The :class:`~aonode.store.base.MessageStore` role: messages kept by id, idempotently."""

from __future__ import annotations

from aonode.store.base import Store
from aonode.store.conformance.helpers import (
    Conformance,
    append,
    message,
    settle,
)


class MessageStoreConformance(Conformance):
    """Messages stored without a schedule, then scheduled."""

    async def test_put_message_is_idempotent(self, store: Store) -> None:
        await store.put_message(message("m1"))
        await store.put_message(message("m1"))
        await settle([store.put_message(message("m2")) for _ in range(5)])
        assert await store.get_message("m1") == message("m1")
        assert await store.get_message("m2") == message("m2")
        assert await store.get_message("m3") is None
        assert await store.processes() == []  # a stored message schedules nothing
        # A message stored first can be scheduled later; the body is the same record.
        stored = await append(store, "p", 0, "m1")
        assert await store.by_message("p", "m1") == stored
        assert await store.get_message("m1") == message("m1")
