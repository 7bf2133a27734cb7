"""Push: a computed slot's outbox delivered, scheduled, computed, recursively."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aonode.wallet import Wallet
from tests.conftest import LiveNode, sign_message
from tests.process.test_device_http import send, spawn_lua
from tests.push_helpers import deliveries, schedule_of, until

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


async def test_pushing_a_slot_twice_delivers_once(live: Live, user_wallet: Wallet) -> None:
    """The second push answers with the first one's tree: same messages, same slots."""
    ln = await live()
    pid = await spawn_lua(ln, user_wallet)
    slot = await send(ln, user_wallet, pid, PING)
    first = (await ln.client.post(f"/{pid}~process@1.0/push", params={"slot": slot})).json()
    current = (await ln.client.get(f"/{pid}/slot/current")).text
    second = (await ln.client.post(f"/{pid}~process@1.0/push", params={"slot": slot})).json()
    assert second == first
    assert (await ln.client.get(f"/{pid}/slot/current")).text == current
    keys = deliveries(await schedule_of(ln.client, pid))
    assert len(keys) == len(set(keys)) == 10


async def test_result_depth_shapes(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    pid = await spawn_lua(ln, user_wallet)
    slot = await send(ln, user_wallet, pid, PING)

    def depths_with_results(tree: dict[str, Any], depth: int = 0) -> list[int]:
        here = [depth] if "results" in tree else []
        for k, v in tree.items():
            if k.isdigit() and "resulted-in" in v:
                here += depths_with_results(v["resulted-in"], depth + 1)
        return here

    for result_depth, expected in ((0, []), (1, [0]), (3, [0, 1, 2])):
        r = await ln.client.post(
            f"/{pid}~process@1.0/push", params={"slot": slot, "result-depth": result_depth}
        )
        tree = r.json()
        assert depths_with_results(tree) == expected, result_depth
        assert tree["process"] == pid and tree["slot"] == slot and depth_of(tree) == 10
        if result_depth == 1:
            assert set(tree["results"]) >= {"data", "output", "outbox"}
            entry = tree["1"]
            assert set(entry) == {"id", "target", "slot", "resulted-in"}


async def test_async_push_is_accepted_then_delivered(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    pid = await spawn_lua(ln, user_wallet)
    m = sign_message(user_wallet, pid, data=PING.encode(), action="Eval")
    r = await ln.client.post(
        f"/{pid}~process@1.0/push", content=m.item.raw, headers=ANS, params={"push-mode": "async"}
    )
    assert r.status_code == 202, r.text
    assert r.json() == {"process": pid, "slot": 1, "id": m.id, "push-mode": "async"}

    async def delivered() -> bool:
        status = (await ln.client.get("/~scheduler@1.0/status")).json()
        current = (await ln.client.get(f"/{pid}/slot/current")).text
        return status["push-jobs"] == 0 and current == "11"

    await until(delivered, "all ten pings delivered")
    keys = deliveries(await schedule_of(ln.client, pid))
    assert len(keys) == len(set(keys)) == 10
    assert await ln.node.store.records("push-job") == []


async def test_endless_ping_pong_is_cut_and_the_node_stays_responsive(
    live: Live, user_wallet: Wallet
) -> None:
    ln = await live(push_max_messages=25)
    forever = (
        "Handlers.add('Ping', { Action = 'Ping' }, function(m)\n"
        "  Send({ Target = m.From, Action = 'Ping' })\n"
        "end)"
    )
    a, b = await spawn_lua(ln, user_wallet), await spawn_lua(ln, user_wallet)
    for pid in (a, b):
        await send(ln, user_wallet, pid, forever)
    slot = await send(ln, user_wallet, a, f"Send({{ Target = '{b}', Action = 'Ping' }})")
    r = await ln.client.post(f"/{a}~process@1.0/push", params={"slot": slot})
    assert r.status_code == 200, r.text
    node, hops = r.json(), 0
    while "resulted-in" in node["1"]:
        node, hops = node["1"]["resulted-in"], hops + 1
    assert hops == 25 and node["1"]["status"] == 508 and "push limit" in node["1"]["reason"]
    assert (await ln.client.get("/~meta@1.0/info")).status_code == 200
