"""The compute threads: each process's messages run on one thread, its own for life.

A pool of single-thread executors rather than one shared pool: with a shared
pool its threads take turns on one process's messages, so a WASM instance's
memory (tens of MiB) and a Lua state move between cores from message to
message.  A process worker is pinned to one thread when it starts (the one
with the fewest processes pinned, the lowest first) and released when it is
dropped, so processes spread over the threads while each stays on its own.
Work that belongs to no process (loading a module, compiling an image: seconds)
goes to threads of its own, so no process's messages wait behind it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class ComputePool(Executor):
    """``threads`` single-thread executors; a process is pinned to one of them."""

    def __init__(self, threads: int = 2, *, name: str = "aonode-compute") -> None:
        self._threads = [
            ThreadPoolExecutor(1, thread_name_prefix=f"{name}-{i}") for i in range(max(1, threads))
        ]
        self._pinned: dict[str, int] = {}  # process id → its thread
        self._load = [0] * len(self._threads)  # processes pinned to each thread
        self._shared = ThreadPoolExecutor(len(self._threads), thread_name_prefix=f"{name}-any")

    def pin(self, process: str) -> Executor:
        """The thread ``process`` runs on, the same one until it is released."""
        if (i := self._pinned.get(process)) is None:
            i = min(range(len(self._threads)), key=lambda k: (self._load[k], k))
            self._pinned[process] = i
            self._load[i] += 1
        return self._threads[i]

    def release(self, process: str) -> None:
        """``process`` no longer runs here (unloaded or closed): its place is free."""
        if (i := self._pinned.pop(process, None)) is not None:
            self._load[i] -= 1

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return self._shared.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        for t in [*self._threads, self._shared]:
            t.shutdown(wait=wait, cancel_futures=cancel_futures)
