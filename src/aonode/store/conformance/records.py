"""The :class:`~aonode.store.base.RecordStore` role: the node's records and scheduler locations."""

from __future__ import annotations

import asyncio

import pytest

from aonode.errors import IntegrityError
from aonode.store.base import LocationRecord, Record
from aonode.store.conformance.helpers import (
    Conformance,
    StoreFactory,
    message,
    settle,
)


class RecordStoreConformance(Conformance):
    """Records by (kind, key) and locations by nonce, durable and race-safe."""

    async def test_records_put_replace_delete_and_survive(
        self, store_factory: StoreFactory
    ) -> None:
        store = store_factory("records")
        await store.open()
        assert await store.get_record("cron", "t1") is None
        assert await store.records("cron") == []
        await settle(
            [
                store.put_record(Record("cron", "t2", b"two")),
                store.put_record(Record("cron", "t1", b"one")),
                store.put_record(Record("push", "t1", b"other kind")),
                store.put_record(Record("cron", "x9", b"\x00binary\xff")),
            ]
        )
        await store.put_record(Record("cron", "t2", b"two, replaced"))
        assert await store.delete_record("cron", "gone") is False
        # A put and a delete of one key queued together keep their call order.
        await settle(
            [store.put_record(Record("cron", "tmp", b"x")), store.delete_record("cron", "tmp")]
        )
        await store.close()
        again = store_factory("records")
        await again.open()
        try:
            assert [r.key for r in await again.records("cron")] == ["t1", "t2", "x9"]
            assert await again.records("cron", "t") == [
                Record("cron", "t1", b"one"),
                Record("cron", "t2", b"two, replaced"),
            ]
            assert await again.get_record("cron", "x9") == Record("cron", "x9", b"\x00binary\xff")
            assert await again.get_record("push", "t1") == Record("push", "t1", b"other kind")
            assert await again.delete_record("cron", "t1") is True
            assert await again.get_record("cron", "t1") is None
            assert await again.get_record("cron", "tmp") is None
        finally:
            await again.close()

    async def test_add_record_keeps_the_first_value(self, store_factory: StoreFactory) -> None:
        store = store_factory("add-records")
        await store.open()
        first = Record("push-delivery", "p/1/1", b"first")
        assert await store.add_record(first) == first
        assert await store.add_record(Record("push-delivery", "p/1/1", b"second")) == first
        # racing writers on one key: every one of them is told the same winner
        racers = [Record("push-delivery", "p/1/2", b"racer %d" % i) for i in range(8)]
        won = await asyncio.gather(*(store.add_record(r) for r in racers))
        assert len(set(won)) == 1 and won[0] in racers
        await store.close()
        again = store_factory("add-records")
        await again.open()
        try:
            assert await again.get_record("push-delivery", "p/1/1") == first
            assert await again.get_record("push-delivery", "p/1/2") == won[0]
        finally:
            await again.close()

    async def test_locations_keep_the_highest_nonce(self, store_factory: StoreFactory) -> None:
        store = store_factory("locations")
        await store.open()
        assert await store.get_location("A") is None
        assert await store.put_location(LocationRecord("A", 1, "loc1"), message("loc1"))
        assert not await store.put_location(LocationRecord("A", 1, "loc1b"), message("loc1b"))
        assert not await store.put_location(LocationRecord("A", 0, "loc0"), message("loc0"))
        assert await store.put_location(LocationRecord("B", 0, "locb"), message("locb"))
        assert await store.get_location("A") == (LocationRecord("A", 1, "loc1"), message("loc1"))
        results = await settle(
            [
                store.put_location(LocationRecord("A", n, f"l{n}"), message(f"l{n}"))
                for n in (5, 3, 4)
            ]
        )
        assert all(r is None for r in results)
        await store.close()
        again = store_factory("locations")
        await again.open()
        try:
            assert await again.get_location("A") == (LocationRecord("A", 5, "l5"), message("l5"))
            assert (await again.get_location("B")) == (
                LocationRecord("B", 0, "locb"),
                message("locb"),
            )
            with pytest.raises(IntegrityError):
                await again.put_location(LocationRecord("A", 9, "x"), message("y"))
        finally:
            await again.close()
