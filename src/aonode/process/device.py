"""``~process@1.0``: compute, now, dry run and snapshot, through one worker per process.

Which runtime a process gets follows its definition: ``execution-device:
lua@5.3a`` (or ``stack@1.0`` whose ``execution-stack`` holds ``lua@5.3a``)
runs Lua — the module messages named by ``module`` when there are any (the
HyperBEAM Lua-device contract, e.g. hyper-aos), else the node's built-in aos
module.  A process with another execution device is refused at spawn; a
process with none is a schedule only, and computing it is refused.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from aonode.errors import BadParameter, InvalidMessage
from aonode.message import Message
from aonode.process.runtime.base import Limits, Results, Runtime
from aonode.process.worker import ProcessWorker
from aonode.store.base import Store

log = logging.getLogger("aonode.process")

LUA = "lua@5.3a"
ID_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
SUPPORTED = {LUA}


def execution_devices(process: Message) -> list[str]:
    """The execution devices a process names, stack members expanded."""
    device = process.keys.get("execution-device", "")
    if not device:
        return []
    if device.lower() == "stack@1.0":
        stack = process.keys.get("execution-stack", "")
        return [d.strip().strip('"') for d in stack.split(",") if d.strip()]
    return [device]


def module_ids(process: Message) -> list[str]:
    raw = process.keys.get("module", "")
    return [m.strip().strip('"') for m in raw.split(",") if m.strip()]


def check_spawn(process: Message) -> None:
    """Refuse, at spawn, a process this node could never compute."""
    devices = execution_devices(process)
    if not devices:
        return
    runnable = [d for d in devices if d.lower() in SUPPORTED]
    others = [d for d in devices if d.lower() not in SUPPORTED | {"patch@1.0"}]
    if not runnable or others:
        raise InvalidMessage(
            f"execution device(s) {', '.join(others or devices)} cannot run on this node; "
            f"supported: {', '.join(sorted(SUPPORTED))} (alone or in a stack@1.0 "
            "with patch@1.0)",
            code="unsupported-execution-device",
        )


class ProcessDevice:
    """The workers of this node, and the runtimes they are made with."""

    def __init__(
        self,
        store: Store,
        *,
        snapshot_slots: int = 100,
        snapshot_seconds: float = 60.0,
        max_idle: float = 300.0,
        limits: Limits | None = None,
        threads: int = 2,
        gateway: str | None = None,
        async_cache: bool = True,
    ) -> None:
        self._store = store
        self._async_cache = async_cache
        self._workers: dict[str, ProcessWorker] = {}
        self._starting: dict[str, asyncio.Lock] = {}
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="aonode-compute")
        self._snapshot_slots = snapshot_slots
        self._snapshot_seconds = snapshot_seconds
        self.max_idle = max_idle
        self._limits = limits or Limits()
        self._gateway = gateway.rstrip("/") if gateway else None
        self._fetched: dict[str, str] = {}  # module id → source fetched from the gateway

    async def module_sources(self, process: Message) -> list[str] | None:
        ids = module_ids(process)
        if not ids:
            return None
        sources = []
        for mid in ids:
            record = await self._store.get_message(mid)
            if record is not None:
                sources.append(Message.from_record(record).item.data.decode("utf-8", "replace"))
            elif (fetched := await self._from_gateway(mid)) is not None:
                sources.append(fetched)
            else:
                where = f" nor at the gateway {self._gateway}" if self._gateway else ""
                raise BadParameter(
                    f"module {mid} is not stored on this node{where}", code="module-not-found"
                )
        return sources

    async def _from_gateway(self, mid: str) -> str | None:
        """A module's source by id from the configured Arweave gateway (cached)."""
        if mid in self._fetched:
            return self._fetched[mid]
        if not self._gateway or not ID_RE.match(mid):
            return None
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                r = await client.get(f"{self._gateway}/{mid}")
        except httpx.HTTPError as exc:
            log.warning("fetching module %s from %s failed: %s", mid, self._gateway, exc)
            return None
        if r.status_code != 200:
            return None
        self._fetched[mid] = r.content.decode("utf-8", "replace")
        return self._fetched[mid]

    async def worker(self, process: Message) -> ProcessWorker:
        pid = process.id
        if (w := self._workers.get(pid)) is not None:
            return w
        lock = self._starting.setdefault(pid, asyncio.Lock())
        async with lock:
            if (w := self._workers.get(pid)) is not None:
                return w
            if not any(d.lower() == LUA for d in execution_devices(process)):
                raise BadParameter(
                    f"process {pid} names no execution device this node runs; it is a "
                    "schedule only",
                    code="no-execution-device",
                )
            sources = await self.module_sources(process)
            limits = self._limits

            def factory(snapshot: bytes | None) -> Runtime:
                return make_runtime(sources, limits, snapshot)

            w = ProcessWorker(
                process,
                store=self._store,
                factory=factory,
                executor=self._executor,
                snapshot_slots=self._snapshot_slots,
                snapshot_seconds=self._snapshot_seconds,
                async_cache=self._async_cache,
                patching=any(d.lower() == "patch@1.0" for d in execution_devices(process)),
            )
            self._workers[pid] = w
            return w

    async def unload_idle(self, now: float | None = None) -> list[str]:
        """Unload workers unused for ``max_idle`` seconds; they come back from a snapshot."""
        now = time.monotonic() if now is None else now
        unloaded = []
        for pid, w in list(self._workers.items()):
            if now - w.last_used >= self.max_idle and await w.unload() is not None:
                del self._workers[pid]
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


def make_runtime(sources: list[str] | None, limits: Limits, snapshot: bytes | None) -> Runtime:
    """The runtime for a process: built-in aos, or the named module (hyper-aos contract)."""
    if sources is None:
        from aonode.process.runtime.lua import LuaRuntime

        if snapshot is not None:
            restored: Runtime = LuaRuntime.restore(snapshot, limits=limits)
            return restored
        fresh: Runtime = LuaRuntime(None, limits=limits)
        return fresh
    from aonode.process.runtime.hyperaos import HyperAOSRuntime

    if snapshot is not None:
        return HyperAOSRuntime.restore(snapshot, limits=limits)
    runtime: Runtime = HyperAOSRuntime(sources, limits=limits)
    return runtime


def results_doc(process: str, slot: int, results: Results) -> dict[str, Any]:
    """The reply for a computed slot; patch@1.0 state keys sit beside the results."""
    doc: dict[str, Any] = {"process": process, "slot": slot, "results": results.to_json()}
    state = results.extra.get("state")
    if isinstance(state, dict):
        for key, value in state.items():
            doc.setdefault(key, value)
    return doc
