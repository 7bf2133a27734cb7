"""``~process@1.0``: compute, now, dry run and snapshot, through one worker per process.

Which runtime a process gets follows its definition: ``execution-device:
lua@5.3a`` (or ``stack@1.0`` whose ``execution-stack`` holds ``lua@5.3a``)
runs Lua — the module messages named by ``module`` when there are any (the
HyperBEAM Lua-device contract, e.g. hyper-aos), else the node's built-in aos
module.  ``stack@1.0`` with ``wasi@1.0, json-iface@1.0, wasm-64@1.0`` runs
the WebAssembly ``image`` (aos as AO's compute units run it; without
``json-iface@1.0`` exported functions are called by name), and so does
``genesis-wasm@1.0`` (the legacy network's device) with the image named by
``module``.  A process with no execution device whose ``module`` is a WASM
module (``Content-Type: application/wasm``) is a legacy-network process and
runs the same way; one whose module is anything else (or absent) is a schedule
only, and computing it is refused.  Any other execution device is refused at
spawn, and so is a WASM process whose image is missing, is not WebAssembly, or
(with json-iface) exports no ``handle``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from aonode.errors import BadParameter, InvalidMessage
from aonode.message import Message
from aonode.process.runtime import wasm_image
from aonode.process.runtime.base import Limits, Results, Runtime
from aonode.process.runtime.wasm_image import Image
from aonode.process.worker import ProcessWorker, RecentAssignments
from aonode.store.base import Store

log = logging.getLogger("aonode.process")

LUA = "lua@5.3a"
WASM64 = "wasm-64@1.0"
JSON_IFACE = "json-iface@1.0"
GENESIS_WASM = "genesis-wasm@1.0"
WASM_STACK = {WASM64, "wasi@1.0", JSON_IFACE}
ID_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
SUPPORTED = {LUA, WASM64, GENESIS_WASM}


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


def wasm_mode(process: Message) -> str | None:
    """ "json" (aos through json-iface), "raw" (exported functions), or None (not WASM)."""
    devices = {d.lower() for d in execution_devices(process)}
    if GENESIS_WASM in devices:
        return "json"
    if WASM64 in devices:
        return "json" if JSON_IFACE in devices else "raw"
    return None


def image_id(process: Message) -> str | None:
    """The WASM image a process names: ``image``, else its (first) ``module``."""
    image = process.keys.get("image", "").strip()
    if image:
        return image
    ids = module_ids(process)
    return ids[0] if ids else None


def check_spawn(process: Message) -> None:
    """Refuse, at spawn, a process this node could never compute."""
    devices = execution_devices(process)
    if not devices:
        return
    lowered = {d.lower() for d in devices}
    runnable = [d for d in devices if d.lower() in SUPPORTED]
    allowed = SUPPORTED | WASM_STACK | {"patch@1.0"}
    others = [d for d in devices if d.lower() not in allowed]
    if JSON_IFACE in lowered and WASM64 not in lowered:
        others.append(f"{JSON_IFACE} without {WASM64}")
    if not runnable or others or (LUA in lowered and lowered & (WASM_STACK | {GENESIS_WASM})):
        raise InvalidMessage(
            f"execution device(s) {', '.join(others or devices)} cannot run on this node; "
            f"supported: {LUA} (alone or in a stack@1.0 with patch@1.0), a stack@1.0 of "
            f"wasi@1.0, {JSON_IFACE}, {WASM64}, or {GENESIS_WASM}",
            code="unsupported-execution-device",
        )
    if wasm_mode(process) is not None and image_id(process) is None:
        raise InvalidMessage(
            "a WASM process names its image: tag Image (or Module) = the id of a message "
            "holding the WebAssembly module",
            code="missing-image",
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
        cache_dir: Path | None = None,
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
        self._fetched: dict[str, tuple[bytes, str]] = {}  # id → (content, type) from the gateway
        self._cache_dir = cache_dir  # compiled WASM images (None: compile in memory only)
        self.on_applied: Callable[[int], None] | None = None  # told slots applied (metrics)
        self.recent_assignments: RecentAssignments | None = None  # the scheduler's, if local

    async def module_sources(self, process: Message) -> list[str] | None:
        ids = module_ids(process)
        if not ids:
            return None
        sources = []
        for mid in ids:
            found = await self._module_bytes(mid)
            if found is None:
                where = f" nor at the gateway {self._gateway}" if self._gateway else ""
                raise BadParameter(
                    f"module {mid} is not stored on this node{where}", code="module-not-found"
                )
            sources.append(found[0].decode("utf-8", "replace"))
        return sources

    async def _module_bytes(self, mid: str) -> tuple[bytes, str] | None:
        """A module message's data and Content-Type: from the store, else the gateway."""
        record = await self._store.get_message(mid)
        if record is not None:
            item = Message.from_record(record).item
            ctype = next((v for n, v in item.tags if n.lower() == "content-type"), "")
            return item.data, ctype
        return await self._from_gateway(mid)

    async def _from_gateway(self, mid: str) -> tuple[bytes, str] | None:
        """A module by id from the configured Arweave gateway (cached)."""
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
        self._fetched[mid] = (r.content, r.headers.get("content-type", ""))
        return self._fetched[mid]

    async def check_modules(self, process: Message) -> None:
        """At spawn: the modules or the image a process names exist and can run (else 4xx).

        A Lua module is loaded once in a throw-away VM: one that fails to load
        (a syntax error, ``require`` of a library the sandbox lacks) would
        otherwise be accepted and then fail every message it is given a slot for."""
        if wasm_mode(process) is not None:
            image = await self.wasm_image(process)
            await self._check_instantiates(image, json_iface=wasm_mode(process) == "json")
            return
        sources = await self.module_sources(process)
        if sources is None or not any(d.lower() == LUA for d in execution_devices(process)):
            return  # the built-in aos module, or a schedule only (never computed)
        from aonode.process.runtime.hyperaos import ModuleLoadError, check_modules

        names = chunk_names(module_ids(process), sources)
        limits = self._limits
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, check_modules, sources, names, limits)
        except ModuleLoadError as exc:
            raise BadParameter(
                f"the Lua module {exc.module} does not load: {exc.reason}",
                code="module-load-failed",
            ) from None

    async def _check_instantiates(self, image: Image, *, json_iface: bool) -> None:
        """An image that compiles may still not start under this node's limits (its
        initial memory over the cap, an import it cannot satisfy at instantiation):
        found now, it is a 400 at spawn instead of an error at every message."""
        from aonode.process.runtime.wasm import WasmFailure

        limits = self._limits

        def start() -> None:
            make_wasm_runtime(image, limits, None, json_iface=json_iface).close()

        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, start)
        except WasmFailure as exc:
            raise BadParameter(
                f"image {image.id} cannot start on this node: {exc}", code="image-cannot-start"
            ) from None

    async def wasm_image(self, process: Message, *, legacy: bool = False) -> Image:
        """The compiled image of a WASM process; BadParameter (400) when it cannot run."""
        iid = image_id(process)
        if iid is None:
            raise BadParameter("the process names no image", code="missing-image")
        found = await self._module_bytes(iid)
        if found is None:
            where = f" nor at the gateway {self._gateway}" if self._gateway else ""
            raise BadParameter(
                f"image {iid} is not stored on this node{where}", code="image-not-found"
            )
        data, ctype = found
        ctype = ctype.split(";")[0].strip().lower()
        if (ctype and ctype != "application/wasm") or not wasm_image.is_wasm(data):
            raise BadParameter(
                f"image {iid} is not a WebAssembly module (Content-Type {ctype or 'none'}; "
                "expected application/wasm and a \\0asm binary)",
                code="image-not-wasm",
            )
        loop = asyncio.get_running_loop()
        try:
            image = await loop.run_in_executor(
                self._executor, wasm_image.load, iid, data, self._cache_dir
            )
        except wasm_image.BadImage as exc:
            raise BadParameter(f"image {iid}: {exc}", code="image-not-wasm") from None
        if (legacy or wasm_mode(process) == "json") and not image.has_handle:
            raise BadParameter(
                f"image {iid} exports no handle(msg, env) function, which json-iface@1.0 calls",
                code="image-without-handle",
            )
        return image

    async def _legacy_wasm(self, process: Message) -> bool:
        """A process with no execution device whose Module is a WASM module."""
        ids = module_ids(process)
        if execution_devices(process) or not ids:
            return False
        found = await self._module_bytes(ids[0])
        if found is None:
            return False
        ctype = found[1].split(";")[0].strip().lower()
        return ctype == "application/wasm" or (not ctype and wasm_image.is_wasm(found[0]))

    async def worker(self, process: Message) -> ProcessWorker:
        pid = process.id
        if (w := self._workers.get(pid)) is not None:
            return w
        lock = self._starting.setdefault(pid, asyncio.Lock())
        async with lock:
            if (w := self._workers.get(pid)) is not None:
                return w
            limits = self._limits
            factory: Callable[[bytes | None], Runtime]
            legacy = await self._legacy_wasm(process)
            if wasm_mode(process) is not None or legacy:
                image = await self.wasm_image(process, legacy=legacy)
                raw = not legacy and wasm_mode(process) == "raw"

                def factory(snapshot: bytes | None) -> Runtime:
                    return make_wasm_runtime(image, limits, snapshot, json_iface=not raw)

            elif any(d.lower() == LUA for d in execution_devices(process)):
                sources = await self.module_sources(process)
                names = chunk_names(module_ids(process), sources or [])

                def factory(snapshot: bytes | None) -> Runtime:
                    return make_runtime(sources, limits, snapshot, names=names)

            else:
                raise BadParameter(
                    f"process {pid} names no execution device this node runs; it is a "
                    "schedule only",
                    code="no-execution-device",
                )

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


def chunk_names(ids: list[str], sources: list[str]) -> list[str]:
    """The name each module's Lua chunk gets (errors quote it): its id, or ``hyper-aos``.

    Error positions read ``<name>:<line>:``; naming a user's module "hyper-aos"
    would send them looking in the wrong file, so only hyper-aos (it names
    itself in its ``info``) keeps that name."""
    return [
        "hyper-aos" if _HYPER_AOS_MARK in src else mid
        for mid, src in zip(ids, sources, strict=False)
    ]


_HYPER_AOS_MARK = 'info = "hyper-aos"'


def make_runtime(
    sources: list[str] | None,
    limits: Limits,
    snapshot: bytes | None,
    *,
    names: list[str] | None = None,
) -> Runtime:
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
    runtime: Runtime = HyperAOSRuntime(sources, limits=limits, names=names or ())
    return runtime


def make_wasm_runtime(
    image: Image, limits: Limits, snapshot: bytes | None, *, json_iface: bool = True
) -> Runtime:
    """A process on its WASM image (wasi/json-iface/wasm-64), fresh or from a snapshot."""
    from aonode.process.runtime.wasm import WasmRuntime

    if snapshot is not None:
        return WasmRuntime.restore(image, snapshot, limits=limits, json_iface=json_iface)
    return WasmRuntime(image, limits=limits, json_iface=json_iface)


def results_doc(process: str, slot: int, results: Results) -> dict[str, Any]:
    """The reply for a computed slot; patch@1.0 state keys sit beside the results."""
    doc: dict[str, Any] = {"process": process, "slot": slot, "results": results.to_json()}
    state = results.extra.get("state")
    if isinstance(state, dict):
        for key, value in state.items():
            doc.setdefault(key, value)
    return doc
