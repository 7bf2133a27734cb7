"""``~process@1.0``: compute, now, dry run and snapshot, through one worker per process.

Which runtime a process gets is its execution device's business: this node's
:class:`~aonode.process.devices.DeviceRegistry` maps the device a process
names to its spawn check and runtime factory (built-ins: ``lua@5.3a`` in
:mod:`~aonode.process.lua_device`; ``wasm-64@1.0`` and ``genesis-wasm@1.0`` in
:mod:`~aonode.process.wasm_device`).  A process naming a device no registered
one runs is refused at spawn, and so is one whose modules or image the device
finds missing or unable to run.  A process naming no execution device is
computed by the device that claims its first module (a legacy-network process
whose ``Module`` is WASM runs on ``genesis-wasm@1.0``); any other is a
schedule only, and computing it is refused.  Modules and images come from
:mod:`~aonode.process.modules`.  What stays here is the worker pool: one
:class:`~aonode.process.worker.ProcessWorker` per process, started on demand
and unloaded when idle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aonode.errors import BadParameter
from aonode.message import Message
from aonode.process.devices import (
    PATCH,
    DeviceContext,
    DeviceRegistry,
    ExecutionDevice,
    named,
)
from aonode.process.lua_device import LUA_DEVICE
from aonode.process.modules import ModuleSource, module_ids
from aonode.process.pool import ComputePool
from aonode.process.runtime.base import Limits
from aonode.process.wasm_device import GENESIS_WASM_DEVICE, WASM64_DEVICE
from aonode.process.worker import ProcessWorker, RecentAssignments
from aonode.store.base import Store

log = logging.getLogger("aonode.process")


def builtin_devices() -> list[ExecutionDevice]:
    """The execution devices every node runs (a new built-in adds one line here)."""
    return [LUA_DEVICE, WASM64_DEVICE, GENESIS_WASM_DEVICE]


class ProcessDevice:
    """The workers of this node, and the execution devices they are made with."""

    def __init__(
        self,
        store: Store,
        *,
        snapshot_slots: int = 100,
        heavy_snapshot_slots: int = 1000,
        snapshot_seconds: float = 60.0,
        max_idle: float = 300.0,
        limits: Limits | None = None,
        threads: int = 2,
        gateway: str | None = None,
        async_cache: bool = True,
        cache_dir: Path | None = None,
        devices: DeviceRegistry | None = None,
    ) -> None:
        self._store = store
        self._async_cache = async_cache
        self._workers: dict[str, ProcessWorker] = {}
        self._starting: dict[str, asyncio.Lock] = {}
        self._executor = ComputePool(threads)  # each process on one thread of it
        self._snapshot_slots = snapshot_slots
        self._heavy_snapshot_slots = heavy_snapshot_slots
        self._snapshot_seconds = snapshot_seconds
        self.max_idle = max_idle
        # This node's own registry: registering a device here reaches no other node.
        self.devices = devices if devices is not None else DeviceRegistry(builtin_devices())
        self.modules = ModuleSource(
            store, gateway=gateway, executor=self._executor, cache_dir=cache_dir
        )
        self._context = DeviceContext(self.modules, limits or Limits(), self._executor)
        self.on_applied: Callable[[int], None] | None = None  # told slots applied (metrics)
        self.recent_assignments: RecentAssignments | None = None  # the scheduler's, if local

    async def check_spawn(self, process: Message) -> None:
        """Refuse, at spawn, a process this node could never compute: a 4xx now
        (an unsupported device, a missing or broken module or image) rather than
        an error at every message it is given a slot for."""
        device = self.devices.select(process)
        if device is not None:
            await device.check(process, self._context)
        else:  # the modules a device-less process names must exist (a schedule only, or
            await self.modules.sources(process)  # legacy WASM, claimed when computed)

    async def _device_of(self, process: Message) -> ExecutionDevice:
        device = self.devices.select(process)
        if device is None and (ids := module_ids(process)):
            found = await self.modules.fetch(ids[0])
            if found is not None:
                device = self.devices.claiming(*found)
        if device is None:
            raise BadParameter(
                f"process {process.id} names no execution device this node runs; it is a "
                "schedule only",
                code="no-execution-device",
            )
        return device

    async def worker(self, process: Message) -> ProcessWorker:
        pid = process.id
        if (w := self._workers.get(pid)) is not None:
            return w
        lock = self._starting.setdefault(pid, asyncio.Lock())
        async with lock:
            if (w := self._workers.get(pid)) is not None:
                return w
            device = await self._device_of(process)
            factory = await device.runtime(process, self._context)
            w = ProcessWorker(
                process,
                store=self._store,
                factory=factory,
                executor=self._executor.pin(pid),
                snapshot_slots=(
                    self._heavy_snapshot_slots if device.heavy_state else self._snapshot_slots
                ),
                snapshot_seconds=self._snapshot_seconds,
                async_cache=self._async_cache,
                patching=PATCH in named(process),
            )
            w.on_applied = self.on_applied
            w.recent = self.recent_assignments
            self._workers[pid] = w
            return w

    async def unload_idle(self, now: float | None = None) -> list[str]:
        """Unload workers unused for ``max_idle`` seconds; they come back from a snapshot."""
        now = time.monotonic() if now is None else now
        unloaded = []
        for pid, w in list(self._workers.items()):
            if now - w.last_used >= self.max_idle and await w.unload() is not None:
                del self._workers[pid]
                self._executor.release(pid)
                unloaded.append(pid)
        return unloaded

    async def run_unloader(self, every: float = 30.0) -> None:
        """Background loop (owned by the node) that unloads idle workers."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.unload_idle()
            except Exception:  # keep the loop alive; the next round retries
                log.exception("unloading idle workers failed")

    def info(self) -> dict[str, Any]:
        return {
            pid: {"at-slot": w.at_slot, "replayed": w.replayed, "resumed-from": w.resumed_from}
            for pid, w in self._workers.items()
        }

    async def close(self) -> None:
        workers = list(self._workers.values())
        self._workers.clear()
        await asyncio.gather(*(w.close() for w in workers), return_exceptions=True)
        self._executor.shutdown(wait=True)
