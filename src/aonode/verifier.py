"""Signature checks of incoming messages.

Small items are verified inline on the event loop.  That was measured
(BENCHMARKS.md, "verifier placement"): for a ~300-byte item the signature
check is ~60 µs and handing it to a thread costs more in GIL hand-offs than it
saves: a batched verifier thread gave 8.1k rejected-signature requests/s
against 9.0k/s inline, and no gain on scheduling.  Large items are different:
hashing their data (1 MiB ≈ 1 ms) releases the GIL, so they go to verifier
threads in batches, which keeps the loop responsive for everyone else; the
pool has one thread per spare core.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable

from aonode.codec.ans104 import DataItem
from aonode.errors import InvalidSignature

_Job = tuple[DataItem, asyncio.Future[bool]]
_BATCH = 256
INLINE_LIMIT = 64 * 1024  # data bytes up to which verifying inline is cheaper


class Verifier:
    """Batches ``DataItem.verify`` calls onto worker threads."""

    def __init__(self, threads: int = 1) -> None:
        self._threads_wanted = max(1, threads)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        # Told the seconds each check took (aonode.ops.metrics); may run on a verifier thread.
        self.observer: Callable[[float], None] | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for i in range(self._threads_wanted):
            t = threading.Thread(target=self._work, name=f"aonode-verify-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    async def stop(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        threads, self._threads = self._threads, []

        def join() -> None:
            for t in threads:
                t.join()

        await asyncio.to_thread(join)

    async def check(self, item: DataItem) -> None:
        """Return when ``item``'s signature verifies; raise ``InvalidSignature`` if not."""
        if len(item.data) <= INLINE_LIMIT or not self._threads or self._loop is None:
            started = time.perf_counter()
            ok = item.verify()
            if self.observer is not None:
                self.observer(time.perf_counter() - started)
        else:
            fut: asyncio.Future[bool] = self._loop.create_future()
            self._jobs.put((item, fut))
            ok = await fut
        if not ok:
            raise InvalidSignature("the data item's signature does not verify")

    def _work(self) -> None:
        jobs = self._jobs
        while True:
            first = jobs.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < _BATCH:
                try:
                    nxt = jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    jobs.put(None)  # keep the stop signal for this thread's next turn
                    break
                batch.append(nxt)
            results = []
            for item, fut in batch:
                started = time.perf_counter()
                try:
                    results.append((fut, item.verify()))
                except Exception:  # a malformed key etc. is a failed verification
                    results.append((fut, False))
                if self.observer is not None:
                    self.observer(time.perf_counter() - started)
            assert self._loop is not None
            try:
                self._loop.call_soon_threadsafe(_resolve(results))
            except RuntimeError:  # the loop closed under us during shutdown
                return


def _resolve(results: list[tuple[asyncio.Future[bool], bool]]) -> Callable[[], None]:
    def run() -> None:
        for fut, ok in results:
            if not fut.done():
                fut.set_result(ok)

    return run
