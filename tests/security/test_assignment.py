"""Assignments follow aos 2's rules on the built-in aos, over real HTTP.

The legacy SU route lets anyone assign any stored message to any process:
``POST /?process-id=B&assign=ID`` needs no signature.  An Eval the owner
signed for process A, assigned to B, would run in B as the owner.  The node
hands aos the message's own Target (A), so B's aos sees an assignment and
refuses it unless B made such messages assignable (``ao.addAssignable``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aonode.wallet import Wallet
from tests.conftest import LiveNode, sign_message, sign_process
from tests.process.test_device_http import ANS, LUA, send

Live = Callable[..., Awaitable[LiveNode]]
RAW = {"content-type": "application/octet-stream", "accept": "application/json"}


async def spawn_lua(ln: LiveNode, user: Wallet, name: str) -> str:
    """A built-in aos process; the name keeps two spawns' ids apart."""
    proc = sign_process(user, ln.node.address, extra=[*LUA, ("Name", name)])
    r = await ln.client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    return proc.id


async def _results(ln: LiveNode, pid: str, slot: int) -> dict[str, Any]:
    r = await ln.client.get(f"/{pid}~process@1.0/compute", params={"slot": slot})
    assert r.status_code == 200, r.text
    results: dict[str, Any] = r.json()["results"]
    return results


async def _assign(ln: LiveNode, pid: str, mid: str) -> int:
    r = await ln.client.post("/", params={"process-id": pid, "assign": mid}, headers=RAW)
    assert r.status_code == 200, r.text
    slot: int = (await ln.client.get(f"/{pid}/slot")).json()["current"]
    return slot


async def _value(ln: LiveNode, user: Wallet, pid: str, expr: str) -> str:
    slot = await send(ln, user, pid, f"return tostring({expr})")
    data: str = (await _results(ln, pid, slot))["data"]
    return data


async def test_an_eval_signed_for_a_does_not_run_when_assigned_to_b(
    live: Live, user_wallet: Wallet
) -> None:
    ln = await live()
    a, b = await spawn_lua(ln, user_wallet, "A"), await spawn_lua(ln, user_wallet, "B")
    evil = sign_message(user_wallet, a, data=b"Pwned = 'yes'", action="Eval")
    r = await ln.client.post(f"/{a}/schedule", content=evil.item.raw, headers=ANS)
    assert r.status_code == 200, r.text

    slot = await _assign(ln, b, evil.id)  # unsigned: anyone can do this
    res = await _results(ln, b, slot)
    owner = user_wallet.address
    assert res["output"] == f"Assignment is not trusted! From: {owner} - Owner: {owner}"
    assert [m["Data"] for m in res["outbox"]] == ["Assignment is not trusted by this process!"]
    assert await _value(ln, user_wallet, b, "Pwned") == "nil"
    assert await _value(ln, user_wallet, a, "Pwned") == "yes"  # where it was meant to run

    # B opts in: the same kind of assignment now runs, as in aos 2
    await send(ln, user_wallet, b, "ao.addAssignable('evals', { Action = 'Eval' })")
    again = sign_message(user_wallet, a, data=b"Pwned = 'assigned'", action="Eval")
    await ln.client.post(f"/{a}/schedule", content=again.item.raw, headers=ANS)
    slot = await _assign(ln, b, again.id)
    assert (await _results(ln, b, slot)).get("error") is None
    assert await _value(ln, user_wallet, b, "Pwned") == "assigned"


async def test_a_push_cannot_smuggle_an_eval(live: Live, user_wallet: Wallet) -> None:
    """A delivered outbox message is a new message the node signs with Target =
    the receiving process, From = the sending process: never the owner's
    signature, so it is no assignment and no owner Eval either (a cron firing
    is likewise a node-signed message targeting its own process)."""
    ln = await live()
    b, c = await spawn_lua(ln, user_wallet, "B"), await spawn_lua(ln, user_wallet, "C")
    code = f"Send({{ Target = '{c}', Action = 'Eval', Data = \"Pwned = 'pushed'\" }})"
    m = sign_message(user_wallet, b, data=code.encode(), action="Eval")
    r = await ln.client.post(f"/{b}~process@1.0/push", content=m.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    assert await _value(ln, user_wallet, c, "Pwned") == "nil"
    got = await _value(ln, user_wallet, c, "Inbox[#Inbox].From .. ' ' .. Inbox[#Inbox].Target")
    assert got == f"{b} {c}"
