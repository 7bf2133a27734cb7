"""A running cluster (a supervisor and its real worker processes) for the tests here."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from aonode.cluster.supervisor import Supervisor
from aonode.config import NodeConfig


@dataclass
class Events:
    """What the supervisor reported, awaitable by (event, index)."""

    seen: list[tuple[str, int, int]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, event: str, index: int, pid: int) -> None:
        self.seen.append((event, index, pid))
        self.changed.set()

    async def next(self, event: str, index: int, after: int) -> int:
        """The pid of the first (event, index) reported after ``after`` events."""
        while True:
            for e, i, pid in self.seen[after:]:
                if (e, i) == (event, index):
                    return pid
            self.changed.clear()
            await self.changed.wait()


@dataclass
class Cluster:
    supervisor: Supervisor
    events: Events
    url: str
    data_dir: Path


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    """Two workers on one 127.0.0.1 port, stopped (exit 0 asserted) at the end."""
    config = NodeConfig(host="127.0.0.1", port=0, data_dir=tmp_path / "data")
    async with run_cluster(config) as running:
        yield running


@contextlib.asynccontextmanager
async def run_cluster(config: NodeConfig, workers: int = 2) -> AsyncIterator[Cluster]:
    """A cluster of ``config`` for the body, stopped (exit 0 asserted) after it."""
    events = Events()
    sup = Supervisor(config, workers, observe=events)
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    run = asyncio.create_task(sup.run(on_ready=ready.set_result, stop=stop))
    waits: set[asyncio.Future[Any]] = {run, ready}
    done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    assert ready in done, (run.result(), events.seen)  # a worker that never started
    yield Cluster(sup, events, ready.result(), config.data_dir)
    stop.set()
    assert await run == 0
