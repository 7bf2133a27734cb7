"""Push to processes on other nodes: two (or three) real nodes on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from aonode import wallet as wallet_mod
from aonode.codec import ans104
from aonode.config import NodeConfig, from_env, parse_scheduler_map
from aonode.errors import ConfigError
from aonode.http.server import free_port
from aonode.wallet import Wallet
from tests.conftest import LiveNode, sign_message
from tests.process.test_device_http import send, spawn_lua
from tests.push_helpers import deliveries, nodes, schedule_of, signer_of, tags_of, until

ANS = {"content-type": "application/ans104"}

# B answers a Hello with a Pong to the process that sent it (wherever it is).
HELLO = (
    "Handlers.add('Hello', { Action = 'Hello' }, function(m)\n"
    "  print('got: ' .. m.Data)\n"
    "  Send({ Target = m.From, Action = 'Pong', Data = 'pong' })\n"
    "end)"
)
# Both sides answer every Ping with a Ping: only the push limits end it.
FOREVER = (
    "Handlers.add('Ping', { Action = 'Ping' }, function(m)\n"
    "  Send({ Target = m.From, Action = 'Ping' })\n"
    "end)"
)


def ed() -> Wallet:
    return wallet_mod.generate("ed25519")


def url_of(port: int) -> str:
    return f"http://127.0.0.1:{port}"


async def push_message(
    ln: LiveNode, user: Wallet, pid: str, code: str, **params: Any
) -> httpx.Response:
    m = sign_message(user, pid, data=code.encode(), action="Eval")
    return await ln.client.post(
        f"/{pid}~process@1.0/push", content=m.item.raw, headers=ANS, params=params
    )


async def test_push_to_a_process_on_another_node(tmp_path: Path, user_wallet: Wallet) -> None:
    w1, w2 = ed(), ed()
    p1, p2 = free_port("127.0.0.1"), free_port("127.0.0.1")
    async with nodes(tmp_path) as serve_at:
        # each node maps the other's scheduler address to its URL
        n2 = await serve_at("n2", w2, p2, scheduler_map={w1.address: url_of(p1)})
        n1 = await serve_at("n1", w1, p1, scheduler_map={w2.address: url_of(p2)})
        b = await spawn_lua(n2, user_wallet)
        await send(n2, user_wallet, b, HELLO)
        a = await spawn_lua(n1, user_wallet)
        code = f"Send({{ Target = '{b}', Action = 'Hello', Data = 'hi' }})"
        r = await push_message(n1, user_wallet, a, code, **{"result-depth": 2})
        assert r.status_code == 200, r.text
        tree = r.json()
        hello = tree["1"]
        assert hello["target"] == b and hello["node"] == url_of(p2)
        assert "got: hi" in hello["resulted-in"]["results"]["output"]  # B's result, from node 2
        pong = hello["resulted-in"]["1"]  # and B's answer, delivered back to node 1
        assert pong["target"] == a and pong["node"] == url_of(p1)
        assert "results" not in pong["resulted-in"]  # depth 2: below result-depth
        # B's schedule on node 2 holds the message, signed by node 1 and traceable
        on_b = await schedule_of(n2.client, b)
        delivered = [x for x in on_b if x["message"] == hello["id"]]
        assert len(delivered) == 1 and delivered[0]["slot"] == hello["slot"]
        assert signer_of(delivered[0]) == w1.address
        tags = tags_of(delivered[0])
        assert tags["From-Process"] == a and tags["From-Slot"] == str(tree["slot"])
        on_a = await schedule_of(n1.client, a)
        assert signer_of(next(x for x in on_a if x["message"] == pong["id"])) == w2.address
        # pushing the slot again delivers nothing twice: the same tree comes back
        again = await n1.client.post(f"/{a}~process@1.0/push", params={"slot": tree["slot"]})
        assert again.status_code == 200, again.text
        assert again.json()["1"]["id"] == hello["id"]
        assert again.json()["1"]["resulted-in"]["1"]["id"] == pong["id"]
        assert len(await schedule_of(n2.client, b)) == len(on_b)
        assert len(await schedule_of(n1.client, a)) == len(on_a)


async def test_push_finds_remote_targets_through_location_records(
    tmp_path: Path, user_wallet: Wallet
) -> None:
    """No map entry for the target: its definition and scheduler location are looked up.

    n1 knows only a hub (n3); the hub serves B's definition and n2's signed
    location record; n1 checks both and delivers to n2.  Then n1 itself
    holds the records (a fresh node, no map at all).
    """
    w1, w2, w3 = ed(), ed(), ed()
    p3 = free_port("127.0.0.1")
    async with nodes(tmp_path) as serve_at:
        n2 = await serve_at("n2", w2, free_port("127.0.0.1"))
        n3 = await serve_at("n3", w3, p3)
        n1 = await serve_at("n1", w1, free_port("127.0.0.1"), scheduler_map={w3.address: n3.url})
        b = await spawn_lua(n2, user_wallet)
        definition = (await n2.client.get(f"/~message@1.0/{b}")).json()
        record = (await n2.client.get("/~scheduler@1.0/location")).json()["message"]
        assert (await n3.client.post("/~message@1.0/store", json=definition)).status_code == 200
        assert (await n3.client.post("/~scheduler@1.0/location", json=record)).status_code == 200
        a = await spawn_lua(n1, user_wallet)
        r = await push_message(n1, user_wallet, a, f"Send({{ Target = '{b}', Action = 'Hi' }})")
        assert r.status_code == 200, r.text
        assert r.json()["1"]["node"] == n2.url and "resulted-in" in r.json()["1"]
        # a node holding the records itself needs no other node
        n4 = await serve_at("n4", ed(), free_port("127.0.0.1"))
        assert (await n4.client.post("/~message@1.0/store", json=definition)).status_code == 200
        assert (await n4.client.post("/~scheduler@1.0/location", json=record)).status_code == 200
        c = await spawn_lua(n4, user_wallet)
        r = await push_message(n4, user_wallet, c, f"Send({{ Target = '{b}', Action = 'Hi' }})")
        assert r.status_code == 200, r.text
        assert r.json()["1"]["node"] == n2.url and "resulted-in" in r.json()["1"]
        assert len(deliveries(await schedule_of(n2.client, b))) == 2
        # an unknown target stays a 404 entry
        nobody = "x" * 43
        r = await push_message(n4, user_wallet, c, f"Send({{ Target = '{nobody}' }})")
        assert r.json()["1"]["status"] == 404


async def test_unreachable_remote_sync_reports_async_waits(
    tmp_path: Path, user_wallet: Wallet
) -> None:
    w1, w2 = ed(), ed()
    p2 = free_port("127.0.0.1")
    async with nodes(tmp_path) as serve_at:
        n2 = await serve_at("n2", w2, p2)
        b = await spawn_lua(n2, user_wallet)
        await n2.close()  # node 2 is down from here on
        n1 = await serve_at(
            "n1", w1, free_port("127.0.0.1"), scheduler_map={b: url_of(p2)}, push_retry_seconds=0.2
        )
        a = await spawn_lua(n1, user_wallet)
        send_b = f"Send({{ Target = '{b}', Action = 'Hi' }})"
        # sync: bounded retries, then an error entry that says so
        r = await push_message(n1, user_wallet, a, send_b)
        assert r.status_code == 200, r.text
        entry = r.json()["1"]
        assert entry["response"] == "error" and entry["status"] in (502, 504)
        assert entry["attempts"] == n1.node.push_limits.remote_attempts
        assert entry["node"] == url_of(p2) and entry["target"] == b
        sync_slot = r.json()["slot"]
        (sync_record,) = await n1.node.store.records("push-delivery", f"{a}/{sync_slot:012d}/")
        sync_id = ans104.parse(sync_record.value).id  # signed and kept, though not delivered
        # async: accepted, stays pending while node 2 is down
        r = await push_message(n1, user_wallet, a, send_b, **{"push-mode": "async"})
        assert r.status_code == 202, r.text
        slot = r.json()["slot"]
        assert n1.node.pusher.pending() == 1
        jobs = await n1.node.store.records("push-job")
        assert [j.key for j in jobs] == [f"{a}/{slot:012d}"]

        async def signed() -> bool:  # the walk got as far as the (durable) delivery
            return bool(await n1.node.store.records("push-delivery", f"{a}/{slot:012d}/"))

        await until(signed, "the async delivery was signed")
        assert n1.node.pusher.pending() == 1
        # node 2 comes back (same data, same port): the job completes
        n2 = await serve_at("n2", w2, p2)

        async def done() -> bool:
            return n1.node.pusher.pending() == 0

        await until(done, "the pending push completed")
        assert await n1.node.store.records("push-job") == []
        keys = deliveries(await schedule_of(n2.client, b))
        assert keys.count((a, str(slot), "1")) == 1
        assert len(keys) == 1  # a failed sync delivery waits for the next push of its slot
        again = await n1.client.post(f"/{a}~process@1.0/push", params={"slot": sync_slot})
        assert again.json()["1"]["id"] == sync_id and again.json()["1"]["node"] == url_of(p2)
        assert deliveries(await schedule_of(n2.client, b)).count((a, str(sync_slot), "1")) == 1
        # the node stayed responsive throughout
        assert (await n1.client.get("/~meta@1.0/info")).status_code == 200


async def test_ping_pong_between_nodes_is_cut_by_the_limit(
    tmp_path: Path, user_wallet: Wallet
) -> None:
    w1, w2 = ed(), ed()
    p1, p2 = free_port("127.0.0.1"), free_port("127.0.0.1")
    async with nodes(tmp_path) as serve_at:
        n2 = await serve_at("n2", w2, p2, scheduler_map={w1.address: url_of(p1)}, push_max_depth=6)
        n1 = await serve_at("n1", w1, p1, scheduler_map={w2.address: url_of(p2)}, push_max_depth=6)
        b = await spawn_lua(n2, user_wallet)
        await send(n2, user_wallet, b, FOREVER)
        a = await spawn_lua(n1, user_wallet)
        await send(n1, user_wallet, a, FOREVER)
        r = await push_message(n1, user_wallet, a, f"Send({{ Target = '{b}', Action = 'Ping' }})")
        assert r.status_code == 200, r.text
        node: dict[str, Any] = r.json()
        hops = 0
        while "resulted-in" in node["1"]:
            node = node["1"]["resulted-in"]
            hops += 1
        assert hops == 6  # the depth limit holds across nodes
        cut = node["1"]
        assert cut["response"] == "error" and cut["status"] == 508
        assert "push limit" in cut["reason"]
        for ln in (n1, n2):
            assert (await ln.client.get("/~meta@1.0/info")).status_code == 200


def test_scheduler_map_from_cli_and_env() -> None:
    pid = "p" * 43
    assert parse_scheduler_map([f"{pid}=http://127.0.0.1:9/"]) == {pid: "http://127.0.0.1:9"}
    env = {
        "AONODE_SCHEDULER_MAP": f"{pid}=http://a:1, ADDR=https://b",
        "AONODE_PUSH_MAX_DEPTH": "7",
    }
    config = from_env(NodeConfig(), env).validated()
    assert config.scheduler_map == {pid: "http://a:1", "ADDR": "https://b"}
    assert config.push_max_depth == 7
    for bad in ("no-equals", "k=ftp://x", "=http://x"):
        with pytest.raises(ConfigError):
            parse_scheduler_map([bad])
