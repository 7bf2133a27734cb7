"""Helpers shared by the push tests: nodes with their own data dirs, bounded polling."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from aonode.codec import jsonform
from aonode.config import NodeConfig
from aonode.node import Node
from aonode.scheduler.timestamp import OfflineSource
from aonode.store.sqlite import SQLiteStore
from aonode.wallet import Wallet
from tests.conftest import LiveNode, serve_live

ServeAt = Callable[..., Awaitable[LiveNode]]


async def until(
    check: Callable[[], Awaitable[bool]], what: str, *, rounds: int = 3000, pause: float = 0.01
) -> None:
    """Poll ``check`` (a bounded loop, not a timing assertion) until it holds."""
    for _ in range(rounds):
        if await check():
            return
        await asyncio.sleep(pause)
    raise AssertionError(f"never happened: {what}")


@contextlib.asynccontextmanager
async def nodes(tmp_path: Path) -> AsyncIterator[ServeAt]:
    """Serve nodes over HTTP, each with its own data dir (``name``), wallet and port.

    Every node started is stopped on exit.
    """
    started: list[LiveNode] = []

    async def factory(name: str, wallet: Wallet, port: int, **changes: Any) -> LiveNode:
        data_dir = tmp_path / name
        data_dir.mkdir(exist_ok=True)
        config = replace(NodeConfig(data_dir=data_dir, port=port), **changes)
        node = Node(
            config,
            wallets=[wallet],
            store=SQLiteStore(data_dir / "aonode.sqlite3"),
            timestamps=OfflineSource(),
        )
        ln = await serve_live(node, client_timeout=60)
        started.append(ln)
        return ln

    try:
        yield factory
    finally:
        for ln in started:
            await ln.close()


async def schedule_of(client: httpx.AsyncClient, pid: str) -> list[dict[str, Any]]:
    """Every assignment of ``pid`` (all pages)."""
    out: list[dict[str, Any]] = []
    first = 0
    while True:
        r = await client.get(f"/{pid}/schedule", params={"from": first})
        assert r.status_code == 200, r.text
        page = r.json()
        out += page["assignments"]
        if not page["continues"]:
            return out
        first = page["next"]


def tags_of(assignment: dict[str, Any]) -> dict[str, str]:
    return {t["name"]: t["value"] for t in assignment["body"]["tags"]}


def deliveries(assignments: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """``(From-Process, From-Slot, Outbox-Index)`` of every pushed message on a schedule."""
    keys = []
    for a in assignments:
        tags = tags_of(a)
        if "Outbox-Index" in tags:
            keys.append((tags["From-Process"], tags["From-Slot"], tags["Outbox-Index"]))
    return keys


def signer_of(assignment: dict[str, Any]) -> str:
    item = jsonform.from_json(assignment["body"])
    assert item.verify()
    return item.owner_address
