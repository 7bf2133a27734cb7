"""Push: a computed slot's outbox delivered, scheduled, computed, recursively."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aonode.wallet import Wallet
from tests.conftest import LiveNode, sign_message
from tests.process.test_device_http import send, spawn_lua

ANS = {"content-type": "application/ans104"}
Live = Callable[..., Awaitable[LiveNode]]

PING = (
    "Handlers.add('Ping', { Action = 'Ping' }, function(m)\n"
    "  Count = tonumber(m.Count) or 0\n"
    "  if Count < 10 then Send({ Target = ao.id, Action = 'Ping', Count = Count + 1 }) end\n"
    "end)\n"
    "Send({ Target = ao.id, Action = 'Ping', Count = 1 })"
)


def depth_of(tree: dict[str, Any]) -> int:
    children = [v for k, v in tree.items() if k.isdigit() and "resulted-in" in v]
    return 1 + max((depth_of(c["resulted-in"]) for c in children), default=0) if children else 0


async def test_ping_pong_push_delivers_all_ten(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    pid = await spawn_lua(ln, user_wallet)
    slot = await send(ln, user_wallet, pid, PING)
    r = await ln.client.post(f"/{pid}~process@1.0/push", params={"slot": slot})
    assert r.status_code == 200, r.text
    tree = r.json()
    assert tree["process"] == pid and tree["slot"] == slot
    assert depth_of(tree) == 10
    first = tree["1"]
    assert first["target"] == pid and first["slot"] == slot + 1
    assert "results" in tree and "results" not in first["resulted-in"]  # result-depth 1
    last = await send(ln, user_wallet, pid, "return Count")
    got = await ln.client.get(f"/{pid}/compute", params={"slot": last})
    assert got.json()["results"]["data"] == "10"
    # every delivery is on the schedule, traceable to its sender and slot
    page = (
        await ln.client.get(f"/{pid}/schedule", params={"from": slot + 1, "to": slot + 10})
    ).json()
    for a in page["assignments"]:
        tags = {t["name"]: t["value"] for t in a["body"]["tags"]}
        assert tags["From-Process"] == pid and tags["Action"] == "Ping"
        assert int(tags["From-Slot"]) == a["slot"] - 1


async def test_push_a_new_message_and_depth_limits(live: Live, user_wallet: Wallet) -> None:
    ln = await live(push_max_depth=3)
    pid = await spawn_lua(ln, user_wallet)
    m = sign_message(user_wallet, pid, data=PING.encode(), action="Eval")
    r = await ln.client.post(
        f"/{pid}~process@1.0/push", content=m.item.raw, headers=ANS, params={"result-depth": 0}
    )
    assert r.status_code == 200, r.text
    tree = r.json()
    assert tree["id"] == m.id and tree["slot"] == 1 and "results" not in tree
    node = tree
    for _ in range(3):
        node = node["1"]["resulted-in"]
    assert node["1"]["response"] == "error" and node["1"]["status"] == 508


async def test_push_bad_input(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    pid = await spawn_lua(ln, user_wallet)
    cases = [
        ({"params": {"slot": "x"}}, 400),
        ({"params": {"slot": "-2"}}, 400),
        ({"params": {"slot": "9"}}, 404),
        ({"params": {"slot": "0", "push-mode": "sometimes"}}, 400),
        ({"params": {"slot": "0", "result-depth": "-1"}}, 400),
        ({"content": b"garbage", "headers": ANS}, 400),
    ]
    for kwargs, status in cases:
        r = await ln.client.post(f"/{pid}~process@1.0/push", **kwargs)
        assert r.status_code == status, (kwargs, r.text)
        assert "error" in r.json()
    r = await ln.client.get(f"/{pid}~process@1.0/push")
    assert r.status_code == 405
    r = await ln.client.post(f"/{pid}~process@1.0/push", params={"slot": "0", "push-mode": "async"})
    assert r.status_code == 202 and r.json()["push-mode"] == "async"
