"""The property every backend's schedule log and message store hold together:
any mix of operations, run concurrently wave by wave, behaves like a dict of lists."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aonode.store.base import Store, StoredSlot
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


class ModelConformance(Conformance):
    """Random waves of appends (good and bad) and message puts against a model."""

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
