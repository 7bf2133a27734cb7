"""Block info sources, against a real arlocal node on 127.0.0.1."""

from __future__ import annotations

import asyncio
import inspect
import socket
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import httpx
import pytest

from aonode.scheduler.timestamp import (
    OFFLINE_BLOCK,
    BlockInfo,
    GatewaySource,
    OfflineSource,
    TimestampSource,
    make_source,
)

if TYPE_CHECKING:
    from conftest import Arlocal

WAIT = 30.0  # upper bound on any single wait, so a broken source fails instead of hanging


async def gateway_block(client: httpx.AsyncClient, url: str) -> BlockInfo:
    """What arlocal itself says the current block is."""
    info = (await client.get(f"{url}/info")).json()
    block = (await client.get(f"{url}/block/height/{info['height']}")).json()
    assert block["indep_hash"] == info["current"]
    return BlockInfo(height=info["height"], hash=block["indep_hash"], timestamp=block["timestamp"])


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


class Tap(httpx.AsyncBaseTransport):
    """A real transport that counts ``/info`` requests and can fail the first few.

    Counting requests lets a test wait for "one whole refresh happened after
    this point" without sleeping: refresh k+1 only starts once refresh k is done.
    """

    def __init__(self, fail_first: int = 0) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.fail_first = fail_first
        self.info_requests = 0
        self.changed = asyncio.Condition()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/info":
            async with self.changed:
                self.info_requests += 1
                self.changed.notify_all()
            if self.info_requests <= self.fail_first:
                raise httpx.ConnectError("injected failure", request=request)
        return await self.inner.handle_async_request(request)

    async def wait_for_info_requests(self, n: int) -> None:
        async with asyncio.timeout(WAIT), self.changed:
            await self.changed.wait_for(lambda: self.info_requests >= n)

    async def aclose(self) -> None:
        await self.inner.aclose()


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def assert_no_background_tasks() -> None:
    others = asyncio.all_tasks() - {asyncio.current_task()}
    assert not others, f"source left tasks running: {others}"


async def test_offline_source_serves_zero_block() -> None:
    source = OfflineSource()
    await source.start()
    block = source.current()
    assert block == BlockInfo(height=0, hash="A" * 43, timestamp=0)
    assert block is OFFLINE_BLOCK
    assert source.name == "offline"
    assert source.status()["source"] == "offline"
    assert source.status()["fresh"] is True
    assert isinstance(source, TimestampSource)
    await source.stop()


def test_make_source_picks_by_configuration() -> None:
    assert isinstance(make_source(None), OfflineSource)
    assert isinstance(make_source(""), OfflineSource)
    gateway = make_source("http://127.0.0.1:1984/")
    assert isinstance(gateway, GatewaySource)
    assert gateway.name == "gateway"
    assert gateway.status()["url"] == "http://127.0.0.1:1984"


async def test_gateway_values_equal_arlocal(arlocal: Arlocal, client: httpx.AsyncClient) -> None:
    # Mine a couple of blocks so that height 0 / genesis defaults cannot pass by accident.
    await client.get(f"{arlocal.url}/mine/2")
    source = GatewaySource(arlocal.url)
    await source.start()
    try:
        expected = await gateway_block(client, arlocal.url)
        assert expected.height == 2
        assert source.current() == expected
        status = source.status()
        assert status["source"] == "gateway"
        assert status["url"] == arlocal.url
        assert status["height"] == 2
        assert status["hash"] == expected.hash
        assert status["fresh"] is True
        assert status["last-error"] is None
    finally:
        await source.stop()
    assert_no_background_tasks()


async def test_refresh_follows_a_mined_block(arlocal: Arlocal, client: httpx.AsyncClient) -> None:
    source = GatewaySource(arlocal.url)
    await source.start()
    try:
        before = source.current()
        mined = (await client.get(f"{arlocal.url}/mine")).json()
        assert source.current() == before, "current() must not fetch on its own"
        assert await source.refresh_now() is True
        after = source.current()
        assert after.height == before.height + 1 == mined["height"]
        assert after.hash != before.hash
        assert after.hash == mined["current"]
        assert after == await gateway_block(client, arlocal.url)
    finally:
        await source.stop()


async def test_background_loop_survives_errors_and_follows_the_chain(
    arlocal: Arlocal, client: httpx.AsyncClient
) -> None:
    tap = Tap(fail_first=3)
    async with httpx.AsyncClient(transport=tap) as tapped:
        source = GatewaySource(arlocal.url, refresh_seconds=0.01, client=tapped)
        await source.start()
        try:
            # The start-up refresh was the first injected failure.
            assert source.current() == OFFLINE_BLOCK
            assert source.status()["fresh"] is False
            # Two failures later the loop is still running and gets through.
            await tap.wait_for_info_requests(5)
            assert source.current() == await gateway_block(client, arlocal.url)
            # (not "fresh": with a 10 ms refresh, "fresh" means "succeeded in the last
            # 30 ms", which a loaded machine can outlast before this line runs)
            status = source.status()
            assert status["last-error"] is None and status["age-seconds"] is not None

            await client.get(f"{arlocal.url}/mine")
            seen = tap.info_requests
            # Request seen+1 began after the mine; seen+2 begins only once it finished.
            await tap.wait_for_info_requests(seen + 2)
            assert source.current() == await gateway_block(client, arlocal.url)
            assert source.current().height == 1
        finally:
            await source.stop()
        assert_no_background_tasks()
        # A caller-supplied client stays the caller's to close.
        assert not tapped.is_closed


async def test_gateway_down_at_start_still_starts() -> None:
    url = f"http://127.0.0.1:{unused_port()}"
    source = GatewaySource(url)
    await source.start()
    try:
        assert source.current() == OFFLINE_BLOCK
        status = source.status()
        assert status["fresh"] is False
        assert status["height"] == 0
        error = status["last-error"]
        assert isinstance(error, str)
        assert "ConnectError" in error
    finally:
        await source.stop()
    assert_no_background_tasks()


async def test_silent_gateway_at_start_is_bounded_by_start_timeout() -> None:
    accepted = asyncio.Event()
    held: list[asyncio.StreamWriter] = []

    async def never_answer(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        held.append(w)
        accepted.set()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    source = GatewaySource(f"http://127.0.0.1:{port}", start_timeout=0.2)
    try:
        async with asyncio.timeout(WAIT):
            await source.start()
        assert accepted.is_set()
        status = source.status()
        assert status["fresh"] is False
        assert "TimeoutError" in str(status["last-error"])
        assert source.current() == OFFLINE_BLOCK
    finally:
        await source.stop()
        for w in held:
            w.close()
        server.close()
        await server.wait_closed()


async def test_keeps_last_known_block_when_gateway_dies(
    arlocal_factory: Callable[[], Arlocal],
) -> None:
    node = arlocal_factory()
    source = GatewaySource(node.url)
    await source.start()
    try:
        good = source.current()
        assert source.status()["fresh"] is True
        node.stop()
        assert await source.refresh_now() is False
        assert source.current() == good
        status = source.status()
        assert status["fresh"] is False
        assert status["height"] == good.height
        assert status["last-error"]
    finally:
        await source.stop()


async def test_rejects_a_gateway_answer_without_a_height() -> None:
    async def bad_gateway(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")
        body = b'{"network": "not-arweave"}'
        w.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await w.drain()
        w.close()

    server = await asyncio.start_server(bad_gateway, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    source = GatewaySource(f"http://127.0.0.1:{port}")
    try:
        assert await source.refresh_now() is False
        assert source.current() == OFFLINE_BLOCK
        assert "'height'" in str(source.status()["last-error"])
    finally:
        server.close()
        await server.wait_closed()


async def test_current_never_awaits_even_while_a_refresh_hangs() -> None:
    assert not inspect.iscoroutinefunction(GatewaySource.current)
    assert not inspect.iscoroutinefunction(OfflineSource.current)

    accepted = asyncio.Event()
    held: list[asyncio.StreamWriter] = []

    async def never_answer(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        held.append(w)
        accepted.set()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    source = GatewaySource(f"http://127.0.0.1:{port}", start_timeout=WAIT)
    refresh = asyncio.create_task(source.refresh_now())
    try:
        async with asyncio.timeout(WAIT):
            await accepted.wait()
        block = source.current()
        assert not inspect.isawaitable(block)
        assert block == OFFLINE_BLOCK
        assert not refresh.done(), "the refresh should still be waiting on the silent gateway"
    finally:
        refresh.cancel()
        with pytest.raises(asyncio.CancelledError):
            await refresh
        for w in held:
            w.close()
        server.close()
        await server.wait_closed()
