"""Issue 19 part 1: the node signs only what it decided (DESIGN.md invariant 9).

The attack: an anonymous ``POST /~cron@1.0/once`` naming another user's
process, with ``From-Process=<its owner>`` and ``Action=Eval``.  Before the
fix the node signed the firing with the caller's tags copied in and aos, which
trusts the node as the process's Authority, ran the Eval as the owner.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

from aonode.cron import Cron
from aonode.cron_task import RunStatus
from aonode.wallet import Wallet
from tests.conftest import LiveNode
from tests.process.test_device_http import send, spawn_lua

Live = Callable[..., Awaitable[LiveNode]]
WAIT = 60.0


async def state_of(ln: LiveNode, owner: Wallet, pid: str, expr: str) -> str:
    """``expr`` evaluated in the process by its owner, at the latest slot."""
    slot = await send(ln, owner, pid, f"return tostring({expr})")
    r = await ln.client.get(f"/{pid}/compute", params={"slot": slot})
    assert r.status_code == 200, r.text
    data: str = r.json()["results"]["data"]
    return data


async def settle(cron: Cron, ln: LiveNode) -> None:
    """Let the timer loop pass a due moment: a 0-delay operator task has fired."""
    seen: list[tuple[str, RunStatus]] = []
    cron.observe(lambda task, status: seen.append((task.id, status)))
    r = await ln.client.post(
        "/~cron@1.0/once",
        params={"cron-path": "/~meta@1.0/info"},
        headers={"authorization": "Bearer op-token"},
    )
    assert r.status_code == 200, r.text
    task = r.json()["task"]
    await asyncio.wait_for(cron.wait_for(lambda: any(t == task for t, _ in seen)), WAIT)


async def test_anonymous_cron_cannot_eval_as_the_owner(live: Live, user_wallet: Wallet) -> None:
    ln = await live(operator_token="op-token")
    pid = await spawn_lua(ln, user_wallet)
    assert await state_of(ln, user_wallet, pid, "Pwned") == "nil"
    before = (await ln.client.get(f"/{pid}/slot")).json()["current"]
    r = await ln.client.post(
        "/~cron@1.0/once",
        json={
            "cron-path": f"/{pid}~process@1.0/schedule",
            "From-Process": user_wallet.address,
            "Action": "Eval",
            "data": "Pwned = 'yes'",
        },
    )
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthenticated"
    await settle(ln.node.cron, ln)
    assert (await ln.client.get(f"/{pid}/slot")).json()["current"] == before
    assert await state_of(ln, user_wallet, pid, "Pwned") == "nil"
    assert [t["cron-path"] for t in (await ln.client.get("/~cron@1.0/tasks")).json()] == [
        "/~meta@1.0/info"
    ]
    assert os.environ.get("AONODE_OPERATOR_TOKEN") is None
