"""Node's fetch reads the 413 for a body over the limit (issue 13).

undici keeps writing the body while the node answers; if the node closed the
connection with the body unread, the client saw ``write EPIPE`` instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from tests.conftest import LiveNode
from tests.interop.conftest import RunNode

Live = Callable[..., Awaitable[LiveNode]]
MIB = 1 << 20


@pytest.mark.parametrize("size", [11 * MIB, 40 * MIB])
async def test_node_fetch_reads_413_for_oversized_body(
    live: Live, run_node: RunNode, size: int
) -> None:
    ln = await live(max_body=10 * MIB)
    url = ln.url + "/~scheduler@1.0/schedule"
    seen = await asyncio.to_thread(run_node, "oversize_fetch.mjs", {"url": url, "size": size})
    assert "error" not in seen, seen
    assert seen["status"] == 413
    assert seen["body"]["error"]["code"] == "payload-too-large"
    assert seen["connection"] == "close"
