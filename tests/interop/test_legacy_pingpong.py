"""aoconnect's legacy mode: a ping/pong between two processes delivers both ways.

The node is aoconnect's MU: a message posted to ``POST /`` is cranked (computed,
its outbox delivered recursively) by a durable async push job, as the legacy
MU does.  Before the crank, A's Ping to B was scheduled on A and never sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from aonode import wallet as wallet_mod
from aonode.wallet import Wallet
from tests.conftest import LiveNode
from tests.interop.conftest import RunNode
from tests.interop.test_legacy_gateway_interop import store_module
from tests.push_helpers import deliveries, schedule_of

Live = Callable[..., Awaitable[LiveNode]]


async def test_aoconnect_legacy_ping_pong_delivers_both_ways(
    live: Live, run_node: RunNode, rsa_wallet: Wallet, tmp_path: Path
) -> None:
    ln = await live(wallets=[wallet_mod.generate("rsa")])
    module = await store_module(ln, rsa_wallet)
    jwk = tmp_path / "me.json"
    wallet_mod.save(rsa_wallet, jwk)
    config = {"url": ln.url.rstrip("/"), "jwk_path": str(jwk), "module": module}
    sent = await asyncio.to_thread(
        run_node, "legacy_pingpong.mjs", {**config, "phase": "send"}, timeout=180
    )
    a, b = sent["a"], sent["b"]
    await ln.node.pusher.idle()  # the cranks run after the answers: let them finish
    # A's Ping is on B's schedule, B's Pong on A's, each delivered once
    (ping,) = deliveries(await schedule_of(ln.client, b))
    (pong,) = deliveries(await schedule_of(ln.client, a))
    assert ping[0] == a and pong[0] == b
    read = await asyncio.to_thread(
        run_node, "legacy_pingpong.mjs", {**config, "phase": "read", **sent}, timeout=180
    )
    assert [m["Target"] for m in read["result"]["Messages"]] == [b]
    assert "PushFailures" not in read["result"]
    assert read["pings"]["data"] == "1"
    assert read["pongs"]["data"] == "1"
