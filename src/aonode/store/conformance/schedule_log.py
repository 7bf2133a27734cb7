"""The :class:`~aonode.store.base.ScheduleLog` role: gap-free, unique, durable slots."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable

import pytest

from aonode.errors import IntegrityError
from aonode.store.base import Store, StoredSlot
from aonode.store.conformance.helpers import (
    EVERYTHING,
    Conformance,
    StoreFactory,
    append,
    message,
    outcomes,
    schedule,
    settle,
    slot_of,
)


class ScheduleLogConformance(Conformance):
    """Append, read back, refuse duplicates and gaps, keep call order under concurrency."""

    async def test_empty_store(self, store: Store) -> None:
        assert await store.latest("p") is None
        assert await store.slots("p", 0, EVERYTHING, EVERYTHING) == []
        assert await store.by_message("p", "m") is None
        assert await store.get_message("m") is None
        assert await store.processes() == []

    async def test_append_then_latest_and_slots(self, store: Store) -> None:
        stored = [await append(store, "p", n) for n in range(5)]
        assert await store.latest("p") == stored[-1].assignment
        assert await schedule(store, "p") == stored
        assert await store.latest("other") is None
        assert await store.get_message("p/3") == stored[3].body

    async def test_slots_bounds_and_limit(self, store: Store) -> None:
        stored = [await append(store, "p", n) for n in range(10)]
        await append(store, "q", 0)
        assert await store.slots("p", 2, 5, 100) == stored[2:6]
        assert await store.slots("p", 4, 4, 100) == [stored[4]]
        assert await store.slots("p", 5, 4, 100) == []  # first > last
        assert await store.slots("p", 10, 20, 100) == []  # beyond latest
        assert await store.slots("p", 8, 20, 100) == stored[8:]  # range runs past latest
        assert await store.slots("p", 1, 9, 3) == stored[1:4]  # limit cuts, lowest first
        assert await store.slots("p", 0, 9, 0) == []
        assert await store.slots("p", 0, EVERYTHING, EVERYTHING) == stored

    async def test_by_message(self, store: Store) -> None:
        stored = [await append(store, "p", n, f"m{n}") for n in range(3)]
        assert await store.by_message("p", "m1") == stored[1]
        assert await store.by_message("q", "m1") is None
        assert await store.by_message("p", "m9") is None

    async def test_same_message_on_two_processes(self, store: Store) -> None:
        on_p = await append(store, "p", 0, "shared")
        on_q = await append(store, "q", 0, "shared")
        assert await store.by_message("p", "shared") == on_p
        assert await store.by_message("q", "shared") == on_q

    async def test_durable_across_close_and_reopen(self, store_factory: StoreFactory) -> None:
        first = store_factory("durable")
        await first.open()
        stored_q = [await append(first, "q", n) for n in range(4)]
        stored_p = [await append(first, "p", n) for n in range(10)]
        await first.put_message(message("loose"))
        await first.close()

        again = store_factory("durable")
        await again.open()
        try:
            assert await schedule(again, "p") == stored_p
            assert await schedule(again, "q") == stored_q
            assert await again.latest("p") == stored_p[-1].assignment
            assert await again.get_message("loose") == message("loose")
            assert await again.processes() == ["q", "p"]
            # The gap guard resumes from what is stored, not from zero.
            for wrong in (0, 9, 11):
                with pytest.raises(IntegrityError):
                    await append(again, "p", wrong, f"new{wrong}")
            assert (await append(again, "p", 10)).assignment == await again.latest("p")
        finally:
            await again.close()

    async def test_duplicate_slot_is_rejected_and_original_untouched(self, store: Store) -> None:
        stored = [await append(store, "p", n, f"m{n}") for n in range(3)]
        for slot in (0, 1, 2):
            with pytest.raises(IntegrityError):
                await append(store, "p", slot, f"intruder{slot}")
        assert await schedule(store, "p") == stored
        assert await store.by_message("p", "intruder1") is None
        assert await store.get_message("intruder1") is None  # the body was not written either

    async def test_duplicate_message_is_rejected(self, store: Store) -> None:
        stored = [await append(store, "p", n, f"m{n}") for n in range(2)]
        with pytest.raises(IntegrityError):
            await append(store, "p", 2, "m0")
        assert await schedule(store, "p") == stored
        assert await store.latest("p") == stored[-1].assignment
        # The slot was not used up: the next distinct message takes it.
        assert (await append(store, "p", 2, "m2")).assignment == await store.latest("p")

    async def test_gap_is_rejected_and_writes_nothing(self, store: Store) -> None:
        with pytest.raises(IntegrityError):
            await append(store, "new", 1, "gap1")
        assert await store.latest("new") is None
        assert await store.processes() == []
        assert await store.get_message("gap1") is None
        stored = [await append(store, "p", n) for n in range(3)]
        with pytest.raises(IntegrityError):
            await append(store, "p", 4, "gap4")
        with pytest.raises(IntegrityError):
            await append(store, "p", -1, "negative")
        assert await schedule(store, "p") == stored
        assert await store.get_message("gap4") is None

    async def test_rejected_append_does_not_fail_its_neighbours(self, store: Store) -> None:
        Call = tuple[str, int, str | None, str]  # process, slot, message, expected outcome
        mixed: list[Call] = [
            ("p", 0, None, "ok"),
            ("q", 0, None, "ok"),
            ("p", 1, None, "ok"),
            ("p", 3, "p-gap", "integrity"),  # gap: p's next is 2
            ("q", 1, None, "ok"),
            ("p", 2, None, "ok"),
            ("p", 3, "p/1", "integrity"),  # p/1 already has slot 1
            ("q", 1, "q-dup", "integrity"),  # slot 1 of q is taken
            ("p", 3, None, "ok"),
            ("q", 2, None, "ok"),
        ]
        others: list[Call] = [(f"o{n}", 0, None, "ok") for n in range(30)]
        calls = others[:15] + mixed + others[15:]  # the bad ones amid a crowd
        results = await settle([append(store, p, s, m) for p, s, m, _ in calls])
        assert outcomes(results) == [want for *_, want in calls]
        assert await schedule(store, "p") == [slot_of("p", n) for n in range(4)]
        assert await schedule(store, "q") == [slot_of("q", n) for n in range(3)]
        for mid in ("p-gap", "q-dup"):
            assert await store.get_message(mid) is None

    async def test_failed_append_never_lets_a_later_slot_in(self, store: Store) -> None:
        # Pipelined like the scheduler actor: nothing awaited before the next call.
        calls = [("p", 0, "a"), ("p", 2, "b"), ("p", 3, "c"), ("p", 1, "d"), ("p", 2, "e")]
        results = await settle([append(store, p, s, m) for p, s, m in calls])
        assert outcomes(results) == ["ok", "integrity", "integrity", "ok", "ok"]
        assert await schedule(store, "p") == [
            slot_of("p", 0, "a"),
            slot_of("p", 1, "d"),
            slot_of("p", 2, "e"),
        ]

    async def test_pipelined_appends_for_one_process(self, store: Store) -> None:
        results = await settle([append(store, "p", n) for n in range(200)])
        assert outcomes(results) == ["ok"] * 200
        assert await schedule(store, "p") == [slot_of("p", n) for n in range(200)]

    async def test_many_processes_append_concurrently(self, store: Store) -> None:
        processes = [f"proc-{n:02d}" for n in range(50)]
        rng = random.Random(7)
        calls: list[Awaitable[StoredSlot]] = []
        first_order: list[str] = []
        for slot in range(40):  # each process in slot order; processes interleaved at random
            rng.shuffle(processes)
            if slot == 0:
                first_order = list(processes)
            calls += [append(store, p, slot) for p in processes]
        results = await asyncio.gather(*calls)
        assert len(results) == 2000
        for p in processes:
            assert await schedule(store, p) == [slot_of(p, n) for n in range(40)]
            assert await store.latest(p) == slot_of(p, 39).assignment
        assert await store.processes() == first_order

    async def test_processes_in_order_of_first_storing(self, store: Store) -> None:
        await append(store, "zeta", 0)
        await append(store, "alpha", 0)
        await append(store, "zeta", 1)
        with pytest.raises(IntegrityError):
            await append(store, "never", 1)
        await append(store, "mid", 0)
        assert await store.processes() == ["zeta", "alpha", "mid"]

    async def test_a_second_store_on_the_same_data_cannot_overwrite(
        self, store_factory: StoreFactory
    ) -> None:
        # Two stores on one location (two nodes on one database, or a misconfigured
        # second writer on one file): the first one's next-slot hint goes stale, and
        # the database, not the hint, decides.
        first, second = store_factory("shared"), store_factory("shared")
        await first.open()
        await second.open()
        try:
            await append(first, "p", 0)
            await append(second, "p", 1, "from-second")
            with pytest.raises(IntegrityError):
                await append(first, "p", 1, "from-first")
            await append(first, "p", 2)  # slot 2 is right, although first never wrote slot 1
            expected = [slot_of("p", 0), slot_of("p", 1, "from-second"), slot_of("p", 2)]
            assert await schedule(first, "p") == expected
            assert await schedule(second, "p") == expected
        finally:
            await first.close()
            await second.close()
