"""Reading a request body: as granian delivers it, with no wait it does not need."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest

from aonode.errors import PayloadTooLarge
from aonode.http.request import Request


def scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/", "query_string": b"", "headers": headers}


def events(*chunks: tuple[bytes, bool]) -> Any:
    """A receive that hands out ``chunks`` and fails if asked for one more."""
    queue = list(chunks)

    async def receive() -> MutableMapping[str, Any]:
        assert queue, "the body was read past its last needed event"
        body, more = queue.pop(0)
        return {"type": "http.request", "body": body, "more_body": more}

    return receive


async def test_a_declared_length_ends_the_read_without_the_empty_last_event() -> None:
    # granian: the whole small body with more_body True, then an empty last event
    receive = events((b"x" * 400, True))
    request = Request.from_scope(scope([(b"content-length", b"400")]), receive, 1 << 20)
    assert await request.body() == b"x" * 400


async def test_chunks_are_read_until_the_declared_length() -> None:
    receive = events((b"ab", True), (b"cd", True), (b"e", True))
    request = Request.from_scope(scope([(b"content-length", b"5")]), receive, 1 << 20)
    assert await request.body() == b"abcde"


async def test_without_a_length_the_read_ends_at_the_last_event() -> None:
    receive = events((b"ab", True), (b"", False))
    request = Request.from_scope(scope([]), receive, 1 << 20)
    assert await request.body() == b"ab"


async def test_an_empty_declared_body_reads_nothing() -> None:
    request = Request.from_scope(scope([(b"content-length", b"0")]), events(), 1 << 20)
    assert await request.body() == b""


async def test_an_undeclared_body_over_the_limit_is_refused() -> None:
    receive = events((b"x" * 8, True), (b"x" * 8, False))
    request = Request.from_scope(scope([]), receive, 10)
    with pytest.raises(PayloadTooLarge):
        await request.body()
