"""The one behavioural test suite every :class:`~aonode.store.base.Store` backend runs.

It lives in the package (not under ``tests/``) so that a backend is judged by
exactly the same rules wherever it is developed.  A backend's test module
subclasses :class:`StoreConformance` and provides ``store_factory``::

    class TestSQLiteStore(StoreConformance):
        @pytest.fixture
        def store_factory(self, tmp_path: Path) -> StoreFactory:
            return lambda name: SQLiteStore(tmp_path / f"{name}.db")

Importing this module only defines things; pytest collects the subclass.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aonode.errors import IntegrityError, StoreError
from aonode.store.base import (
    AssignmentRecord,
    LocationRecord,
    MessageRecord,
    Record,
    ResultRecord,
    Store,
    StoredSlot,
)

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


# One operation of the property test: (kind, process index, free integer).
_KINDS = ("next", "next", "next", "dup_slot", "dup_message", "gap", "foreign_message", "put")
_operations = st.lists(
    st.lists(
        st.tuples(st.sampled_from(_KINDS), st.integers(0, 2), st.integers(0, 9)),
        min_size=1,
        max_size=8,
    ),
    min_size=1,
    max_size=6,
)


class StoreConformance:
    """Base class of a backend's conformance tests (it is not collected itself)."""

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        raise NotImplementedError("the backend's test class provides store_factory")

    @pytest.fixture
    async def store(self, store_factory: StoreFactory) -> AsyncIterator[Store]:
        store = store_factory("main")
        await store.open()
        yield store
        await store.close()

    # -- reading back what was appended ------------------------------------------

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

    # -- durability ----------------------------------------------------------------

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

    # -- integrity -----------------------------------------------------------------

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

    # -- concurrency -----------------------------------------------------------------

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

    # -- messages and processes --------------------------------------------------------

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

    # -- scheduler locations -----------------------------------------------------------

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

    # -- computed results ---------------------------------------------------------------

    async def test_results_and_snapshots(self, store_factory: StoreFactory) -> None:
        store = store_factory("results")
        await store.open()
        assert await store.get_result("p", 0) is None
        assert await store.latest_snapshot("p", 100) is None
        await settle(
            [
                store.put_result(
                    ResultRecord("p", n, f"m{n}", b"r%d" % n, b"s%d" % n if n % 3 == 0 else None)
                )
                for n in range(8)
            ]
        )
        await store.put_result(ResultRecord("p", 2, "other", b"second write", None))
        await store.put_result(ResultRecord("p", 7, "m7", b"again", b"s7-late"))
        await store.close()
        again = store_factory("results")
        await again.open()
        try:
            got = await again.get_result("p", 2)
            assert got is not None and got.results == b"r2" and got.message == "m2"
            assert got.snapshot is None  # results reads leave the snapshot out
            by_msg = await again.result_by_message("p", "m5")
            assert by_msg is not None and by_msg.slot == 5
            snap = await again.latest_snapshot("p", 5)
            assert snap is not None and (snap.slot, snap.snapshot) == (3, b"s3")
            snap = await again.latest_snapshot("p", 100)
            assert snap is not None and (snap.slot, snap.snapshot) == (7, b"s7-late")
            late = await again.get_result("p", 7)
            assert late is not None and late.results == b"r7"  # results stay the first
            assert await again.latest_snapshot("p", -1) is None
            assert await again.latest_snapshot("q", 100) is None
        finally:
            await again.close()

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

    async def test_processes_in_order_of_first_storing(self, store: Store) -> None:
        await append(store, "zeta", 0)
        await append(store, "alpha", 0)
        await append(store, "zeta", 1)
        with pytest.raises(IntegrityError):
            await append(store, "never", 1)
        await append(store, "mid", 0)
        assert await store.processes() == ["zeta", "alpha", "mid"]

    # -- lifecycle -------------------------------------------------------------------

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
        with pytest.raises(StoreError):
            await append(store, "p", 1)
        with pytest.raises(StoreError):
            await store.put_message(message("m"))

    # -- the property: any mix of operations behaves like a dict of lists ---------------

    @settings(
        max_examples=100,
        deadline=None,
        # One test method, run by each backend's subclass: differing executors by design.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(waves=_operations)
    def test_behaves_like_a_model(
        self, store_factory: StoreFactory, waves: list[list[tuple[str, int, int]]]
    ) -> None:
        # A fresh location per example; the factory fixture is shared across examples.
        name = f"model-{next(_examples)}"
        asyncio.run(_check_against_model(store_factory, name, waves))


_examples = itertools.count()


async def _check_against_model(
    factory: StoreFactory, name: str, waves: list[list[tuple[str, int, int]]]
) -> None:
    """Each wave runs concurrently; the model applies it in call order, as the store must."""
    model: dict[str, list[StoredSlot]] = {}  # process -> schedule
    first_stored: list[str] = []  # what processes() must list, in its order
    loose: set[str] = set()  # put_message ids
    rejected: set[str] = set()  # ids only ever sent in appends that must fail
    fresh = itertools.count()
    store = factory(name)
    await store.open()
    try:
        for wave in waves:
            calls: list[Awaitable[Any]] = []
            expected: list[str] = []
            for kind, index, n in wave:
                p = f"p{index}"
                sched = model.setdefault(p, [])
                used = {s.assignment.message for s in sched}
                foreign = sorted(
                    {s.assignment.message for q, ss in model.items() if q != p for s in ss} - used
                )
                if kind == "put":
                    calls.append(store.put_message(message(f"put{n}")))
                    loose.add(f"put{n}")
                    expected.append("ok")
                    continue
                if kind == "dup_slot" and sched:
                    slot, mid, ok = n % len(sched), f"x{next(fresh)}", False
                elif kind == "dup_message" and sched:
                    slot, mid, ok = len(sched), sched[n % len(sched)].assignment.message, False
                elif kind == "gap" or (kind == "dup_slot" and not sched):
                    slot, mid, ok = len(sched) + 1 + n % 3, f"x{next(fresh)}", False
                elif kind == "foreign_message" and foreign:
                    slot, mid, ok = len(sched), foreign[n % len(foreign)], True
                else:
                    slot, mid, ok = len(sched), f"m{next(fresh)}", True
                calls.append(append(store, p, slot, mid))
                expected.append("ok" if ok else "integrity")
                if ok:
                    sched.append(slot_of(p, slot, mid))
                    if slot == 0:
                        first_stored.append(p)
                elif mid.startswith("x"):
                    rejected.add(mid)
            assert outcomes(await settle(calls)) == expected
        await _assert_holds(store, model, first_stored, loose, rejected)
    finally:
        await store.close()
    reopened = factory(name)
    await reopened.open()
    try:
        await _assert_holds(reopened, model, first_stored, loose, rejected)
    finally:
        await reopened.close()


async def _assert_holds(
    store: Store,
    model: dict[str, list[StoredSlot]],
    first_stored: list[str],
    loose: set[str],
    rejected: set[str],
) -> None:
    assert await store.processes() == first_stored
    for p, sched in model.items():
        assert await schedule(store, p) == sched
        assert await store.latest(p) == (sched[-1].assignment if sched else None)
        for stored in sched:
            assert await store.by_message(p, stored.assignment.message) == stored
    for mid in loose:
        assert await store.get_message(mid) == message(mid)
    for mid in rejected:  # a rejected append wrote nothing, not even its body
        assert await store.get_message(mid) is None
