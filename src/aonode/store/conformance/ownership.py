"""The :class:`~aonode.store.base.Ownership` role: one owner per process across nodes.

Only a store several nodes share implements it (PostgreSQL today).  What is
backend-neutral is here: claiming, redirecting to the owner, fencing appends,
release.  Expiry and fencing tokens are the backend's own (its clock, its rows)
and are tested with it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import pytest

from aonode.errors import LeaseLost
from aonode.store.base import Ownership, Store
from aonode.store.conformance.helpers import append, outcomes, schedule, settle, slot_of


class SharedStore(Store, Ownership, Protocol):
    """A store with ownership: what several nodes open on one database."""


NodeStoreFactory = Callable[[str], Awaitable[SharedStore]]
"""``factory(name)``: an *opened* store as node ``name`` opens it, leases on, one
database for every name, reachable at ``http://{name}.test:8734``; the factory closes
what it opened at the end of the test."""


def url_of(name: str) -> str:
    return f"http://{name}.test:8734"


class OwnershipConformance:
    """Base of a shared backend's ownership tests (provide ``node_store_factory``)."""

    @pytest.fixture
    def node_store_factory(self) -> NodeStoreFactory:
        raise NotImplementedError("the backend's test class provides node_store_factory")

    async def test_one_owner_at_a_time(self, node_store_factory: NodeStoreFactory) -> None:
        a, b = await node_store_factory("a"), await node_store_factory("b")
        assert isinstance(a, Ownership) and isinstance(a, Store)
        assert await a.claim("p") is None
        assert await a.claim("p") is None  # keeping one's own lease changes nothing
        assert await b.claim("p") == url_of("a")
        assert (a.holds("p"), b.holds("p")) == (True, False)
        await append(a, "p", 0)
        with pytest.raises(LeaseLost):
            await append(b, "p", 1)
        assert await schedule(b, "p") == [slot_of("p", 0)]

    async def test_a_fenced_item_fails_alone_in_its_batch(
        self, node_store_factory: NodeStoreFactory
    ) -> None:
        a = await node_store_factory("a")
        assert await a.claim("mine") is None
        results = await settle(
            [append(a, "mine", 0), append(a, "never-claimed", 0), append(a, "mine", 1)]
        )
        assert outcomes(results)[0::2] == ["ok", "ok"]
        assert isinstance(results[1], LeaseLost)
        assert await a.processes() == ["mine"]

    async def test_release_and_close_hand_over_at_once(
        self, node_store_factory: NodeStoreFactory
    ) -> None:
        a, b = await node_store_factory("a"), await node_store_factory("b")
        assert await a.claim("p") is None and await a.claim("q") is None
        await a.release("p")
        assert not a.holds("p")
        assert await b.claim("p") is None  # no waiting for expiry
        await a.close()  # a clean stop releases everything a held
        assert await b.claim("q") is None
        await append(b, "q", 0)
        assert await schedule(b, "q") == [slot_of("q", 0)]
