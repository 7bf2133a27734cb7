"""The :class:`~aonode.store.base.ResultCache` role: computed slots and snapshots."""

from __future__ import annotations

from aonode.store.base import ResultRecord
from aonode.store.conformance.helpers import (
    Conformance,
    StoreFactory,
    settle,
)


class ResultCacheConformance(Conformance):
    """First results win; a snapshot can be added later; reads survive a reopen."""

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
