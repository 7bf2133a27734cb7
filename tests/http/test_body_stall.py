"""The body-stall timer: a silent client gets a 408, any other cancellation stays one."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest

from aonode.errors import RequestTimeout
from aonode.http.request import Request

SCOPE = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-length", b"6")]}


def request(receive: Any, timeout: float | None) -> Request:
    return Request.from_scope(SCOPE, receive, 1000, body_timeout=timeout)


async def test_a_body_that_stops_arriving_is_a_request_timeout() -> None:
    sent = 0

    async def receive() -> MutableMapping[str, Any]:
        nonlocal sent
        if sent < 2:  # two events, then silence
            sent += 1
            return {"type": "http.request", "body": b"ab", "more_body": True}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    with pytest.raises(RequestTimeout):
        await request(receive, 0.05).body()
    assert sent == 2


async def test_a_body_in_several_events_is_read_whole() -> None:
    chunks = [b"ab", b"cd", b"ef"]

    async def receive() -> MutableMapping[str, Any]:
        await asyncio.sleep(0)
        return {"type": "http.request", "body": chunks.pop(0), "more_body": True}

    assert await request(receive, 5.0).body() == b"abcdef"


async def test_cancelling_the_reader_is_not_a_stall() -> None:
    waiting = asyncio.Event()

    async def receive() -> MutableMapping[str, Any]:
        waiting.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    task = asyncio.create_task(request(receive, 30.0).body())
    await waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
