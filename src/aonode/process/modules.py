"""The modules and WASM images processes name: found in the store, else at the gateway.

A module is a message (Lua source, or a WebAssembly binary) referred to by id
from a process's ``module`` (several, comma-separated) or ``image`` tag.  A
node holds what was posted to it; what it lacks it fetches once from the
configured Arweave gateway and keeps in memory.  Images are compiled through
:mod:`aonode.process.runtime.wasm_image`, which caches the compiled code on disk.
"""

from __future__ import annotations

import asyncio
import logging
import re
from concurrent.futures import Executor
from pathlib import Path

import httpx

from aonode.errors import BadParameter
from aonode.message import Message
from aonode.process.runtime import wasm_image
from aonode.process.runtime.wasm_image import Image
from aonode.store.base import Store

log = logging.getLogger("aonode.process")

ID_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def module_ids(process: Message) -> list[str]:
    """The module messages a process names, in order."""
    raw = process.keys.get("module", "")
    return [m.strip().strip('"') for m in raw.split(",") if m.strip()]


def image_id(process: Message) -> str | None:
    """The WASM image a process names: ``image``, else its (first) ``module``."""
    image = process.keys.get("image", "").strip()
    if image:
        return image
    ids = module_ids(process)
    return ids[0] if ids else None


def media_type(content_type: str) -> str:
    """``application/wasm; x=y`` → ``application/wasm``."""
    return content_type.split(";")[0].strip().lower()


class ModuleSource:
    """One node's modules: its store first, then its gateway (fetched once)."""

    def __init__(
        self,
        store: Store,
        *,
        gateway: str | None,
        executor: Executor,
        cache_dir: Path | None = None,
    ) -> None:
        self._store = store
        self.gateway = gateway.rstrip("/") if gateway else None
        self._executor = executor
        self._cache_dir = cache_dir  # compiled WASM images (None: compile in memory only)
        self._fetched: dict[str, tuple[bytes, str]] = {}  # id → (content, type) from the gateway

    def _nowhere(self) -> str:
        return f" nor at the gateway {self.gateway}" if self.gateway else ""

    async def fetch(self, mid: str) -> tuple[bytes, str] | None:
        """A module message's data and Content-Type: from the store, else the gateway."""
        record = await self._store.get_message(mid)
        if record is not None:
            item = Message.from_record(record).item
            ctype = next((v for n, v in item.tags if n.lower() == "content-type"), "")
            return item.data, ctype
        return await self._from_gateway(mid)

    async def _from_gateway(self, mid: str) -> tuple[bytes, str] | None:
        if mid in self._fetched:
            return self._fetched[mid]
        if not self.gateway or not ID_RE.match(mid):
            return None
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                r = await client.get(f"{self.gateway}/{mid}")
        except httpx.HTTPError as exc:
            log.warning("fetching module %s from %s failed: %s", mid, self.gateway, exc)
            return None
        if r.status_code != 200:
            return None
        self._fetched[mid] = (r.content, r.headers.get("content-type", ""))
        return self._fetched[mid]

    async def sources(self, process: Message) -> list[str] | None:
        """The text of every module a process names (None: it names none); 400 for one
        this node cannot find."""
        ids = module_ids(process)
        if not ids:
            return None
        sources = []
        for mid in ids:
            found = await self.fetch(mid)
            if found is None:
                raise BadParameter(
                    f"module {mid} is not stored on this node{self._nowhere()}",
                    code="module-not-found",
                )
            sources.append(found[0].decode("utf-8", "replace"))
        return sources

    async def image(self, process: Message) -> Image:
        """The compiled WASM image a process names; 400 when there is none to run."""
        iid = image_id(process)
        if iid is None:
            raise BadParameter("the process names no image", code="missing-image")
        found = await self.fetch(iid)
        if found is None:
            raise BadParameter(
                f"image {iid} is not stored on this node{self._nowhere()}", code="image-not-found"
            )
        data, ctype = found
        ctype = media_type(ctype)
        if (ctype and ctype != "application/wasm") or not wasm_image.is_wasm(data):
            raise BadParameter(
                f"image {iid} is not a WebAssembly module (Content-Type {ctype or 'none'}; "
                "expected application/wasm and a \\0asm binary)",
                code="image-not-wasm",
            )
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._executor, wasm_image.load, iid, data, self._cache_dir
            )
        except wasm_image.BadImage as exc:
            raise BadParameter(f"image {iid}: {exc}", code="image-not-wasm") from None
