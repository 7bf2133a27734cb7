"""Shared fixtures: real wallets, real SQLite stores, real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from aonode import wallet as wallet_mod
from aonode.codec import ans104
from aonode.codec.b64 import b64url_decode
from aonode.config import Mode, NodeConfig
from aonode.http.server import free_port, serve
from aonode.message import Message
from aonode.node import Node
from aonode.scheduler.timestamp import OfflineSource
from aonode.store.sqlite import SQLiteStore
from aonode.wallet import Wallet

# A subprocess `aonode serve` runs one process per core by default; the suite's run
# one unless a test asks for more (AONODE_WORKERS=2: tests/test_crash.py and others).
os.environ.setdefault("AONODE_WORKERS", "1")


@pytest.fixture(scope="session")
def rsa_wallet() -> Wallet:
    return wallet_mod.generate("rsa")


@pytest.fixture(scope="session")
def ed_wallet() -> Wallet:
    return wallet_mod.generate("ed25519")


@pytest.fixture(scope="session")
def user_wallet() -> Wallet:
    """A client's wallet (ed25519 keeps tests fast; RSA clients are in interop)."""
    return wallet_mod.generate("ed25519")


def sign_process(
    signer: Wallet,
    scheduler: str | Sequence[str],
    *,
    data: bytes = b"1984",
    extra: Sequence[tuple[str, str]] = (),
) -> Message:
    schedulers = scheduler if isinstance(scheduler, str) else ",".join(scheduler)
    tags = [
        ("Data-Protocol", "ao"),
        ("Variant", "ao.N.1"),
        ("Type", "Process"),
        ("Device", "process@1.0"),
        ("Scheduler-Device", "scheduler@1.0"),
        ("Scheduler", schedulers),
        *extra,
    ]
    return Message.from_item(ans104.sign(signer, data=data, tags=tags))


def sign_message(
    signer: Wallet,
    process: str,
    *,
    data: bytes = b"",
    action: str = "Test",
    extra: Sequence[tuple[str, str]] = (),
    anchor: bytes | None = None,
) -> Message:
    """A signed message; a random anchor (as aoconnect sets) keeps ids unique."""
    if anchor is None:
        anchor = os.urandom(32)
    tags = [
        ("Data-Protocol", "ao"),
        ("Variant", "ao.N.1"),
        ("Type", "Message"),
        ("Action", action),
        *extra,
    ]
    return Message.from_item(
        ans104.sign(signer, data=data, tags=tags, target=b64url_decode(process), anchor=anchor)
    )


NodeFactory = Callable[..., Awaitable[Node]]


@pytest.fixture
async def make_node(tmp_path: Path, ed_wallet: Wallet) -> AsyncIterator[NodeFactory]:
    """Start nodes on real SQLite files; every node is stopped at the end."""
    nodes: list[Node] = []

    async def factory(
        *,
        mode: Mode = Mode.LOCAL_CONFIRMATION,
        wallets: list[Wallet] | None = None,
        db: Path | None = None,
        **changes: object,
    ) -> Node:
        config = replace(NodeConfig(data_dir=tmp_path, mode=mode), **changes)  # type: ignore[arg-type]
        store = SQLiteStore(db or tmp_path / "aonode.sqlite3")
        node = Node(config, wallets=wallets or [ed_wallet], store=store, timestamps=OfflineSource())
        await node.start()
        nodes.append(node)
        return node

    yield factory
    for node in nodes:
        await node.stop()


class LiveNode:
    """A node served over real HTTP on 127.0.0.1, in the test's event loop."""

    def __init__(
        self,
        node: Node,
        url: str,
        client: httpx.AsyncClient,
        task: asyncio.Task[None],
        stop: asyncio.Event,
    ) -> None:
        self.node, self.url, self.client, self._task, self._stop = node, url, client, task, stop

    async def close(self) -> None:
        await self.client.aclose()
        self._stop.set()
        await self._task


async def serve_live(node: Node, *, client_timeout: float = 30) -> LiveNode:
    """Serve ``node`` over HTTP on its configured port; returns once it listens
    (a failure to start is raised here).  ``LiveNode.close`` stops it."""
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(node, on_ready=ready.set_result, stop=stop))
    waiting: set[asyncio.Future[Any]] = {task, ready}
    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    url = ready.result()
    return LiveNode(node, url, httpx.AsyncClient(base_url=url, timeout=client_timeout), task, stop)


@pytest.fixture
async def live(
    tmp_path: Path, ed_wallet: Wallet
) -> AsyncIterator[Callable[..., Awaitable[LiveNode]]]:
    started: list[LiveNode] = []

    async def factory(
        *,
        mode: Mode = Mode.LOCAL_CONFIRMATION,
        wallets: list[Wallet] | None = None,
        **changes: object,
    ) -> LiveNode:
        port = free_port("127.0.0.1")
        config = replace(NodeConfig(data_dir=tmp_path, port=port, mode=mode), **changes)  # type: ignore[arg-type]
        node = Node(
            config,
            wallets=wallets or [ed_wallet],
            store=SQLiteStore(tmp_path / "aonode.sqlite3"),
            timestamps=OfflineSource(),
        )
        ln = await serve_live(node)
        started.append(ln)
        return ln

    yield factory
    for ln in started:
        await ln.close()
